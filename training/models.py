"""Keras architectures, all built from one :class:`ModelConfig`.

- ``cnn_lstm``: 2D convolution over time × channels (first across the three axes of each sensor
  quantity, then across all of them), max-pooling in time, an LSTM over the pooled sequence; the
  2D-CNN-LSTM that was best for 3D GRF in walking (Sugiarto et al. 2025).
- ``lstm``: an LSTM over the raw window.
- ``cnn1d``: 1D convolutions over time with channels as features.

Each takes the static features through a small dense branch fused with the sequence summary when
``use_static`` is true. Outputs are ``out_len × 3`` normalised GRF samples.

Training uses :func:`masked_mse`: target samples that are unknown (NaN, overground stance off the
force plates) give no gradient, per output sample and axis.

LSTMs are unrolled (``unroll=True``): with a fixed window, Keras 3 then converts to TFLite builtin
ops that full-int8 quantisation handles, where the default ``WHILE`` loop does not (see README).
"""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig


def masked_mse() -> Any:
    """Mean squared error over the known (finite) target values of a batch only.

    Unknown targets (NaN) contribute neither error nor gradient; the mean is taken over the known
    values of the whole batch, so a window with one known sample weighs that sample like any other.
    """
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="forcecast")
    class MaskedMSE(keras.losses.Loss):
        def __init__(self, name: str = "masked_mse", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            known = ops.isfinite(y_true)
            error = ops.where(known, y_pred - ops.where(known, y_true, ops.zeros_like(y_true)), 0.0)
            total = ops.cast(ops.size(y_true), y_pred.dtype)
            count = ops.maximum(ops.sum(ops.cast(known, y_pred.dtype)), 1.0)
            # Keras divides the sum of these values by their number: the result is the mean over known values.
            return ops.square(error) * (total / count)

    return MaskedMSE()


def build_model(config: ModelConfig, window: int, n_channels: int, n_static: int, out_len: int) -> Any:
    """A compiled-ready (uncompiled) ``keras.Model`` with inputs ``imu`` (and ``static``)."""
    import keras
    from keras import layers

    imu = keras.Input((window, n_channels), name="imu")
    f1, f2 = config.conv_filters
    p1, p2 = config.time_pools
    k = config.kernel_size
    if config.architecture == "cnn_lstm":
        if n_channels % 3:
            raise ValueError(f"cnn_lstm needs channels in x/y/z triplets, got {n_channels}")
        h = layers.Reshape((window, n_channels, 1))(imu)
        h = layers.ZeroPadding2D(((k // 2, k // 2), (0, 0)))(h)
        h = layers.Conv2D(f1, (k, 3), strides=(1, 3), activation="relu", name="conv_axes")(h)
        if window % (p1 * p2):
            raise ValueError(f"cnn_lstm needs the window ({window}) to be a multiple of the time pools {p1}x{p2}")
        h = layers.MaxPooling2D((p1, 1))(h)
        h = layers.ZeroPadding2D(((k // 2, k // 2), (0, 0)))(h)
        h = layers.Conv2D(f2, (k, n_channels // 3), activation="relu", name="conv_channels")(h)
        h = layers.MaxPooling2D((p2, 1))(h)
        h = layers.Reshape((window // (p1 * p2), f2))(h)
        h = layers.LSTM(config.lstm_units, unroll=True, name="lstm")(h)
    elif config.architecture == "lstm":
        h = layers.LSTM(config.lstm_units, unroll=True, name="lstm")(imu)
    elif config.architecture == "cnn1d":
        h = layers.Conv1D(f1, k, padding="same", activation="relu")(imu)
        h = layers.MaxPooling1D(2)(h)
        h = layers.Conv1D(f2, k, padding="same", activation="relu")(h)
        h = layers.MaxPooling1D(2)(h)
        h = layers.Conv1D(f2, k, padding="same", activation="relu")(h)
        h = layers.MaxPooling1D(2)(h)
        h = layers.Flatten()(h)
    else:
        raise ValueError(f"unknown architecture {config.architecture!r}")
    inputs = [imu]
    if config.use_static:
        if n_static == 0:
            raise ValueError("use_static is set but there are no static features")
        static = keras.Input((n_static,), name="static")
        inputs.append(static)
        s = layers.GaussianNoise(config.static_noise)(static) if config.static_noise > 0 else static
        s = layers.Dense(config.static_units, activation="relu", name="static_branch")(s)
        h = layers.Concatenate()([h, s])
    h = layers.Dense(config.dense_units, activation="relu")(h)
    if config.dropout > 0:
        h = layers.Dropout(config.dropout)(h)
    out = layers.Dense(out_len * 3, name="grf")(h)
    out = layers.Reshape((out_len, 3), name="grf_block")(out)
    name = f"{config.architecture}{'_static' if config.use_static else ''}"
    return keras.Model(inputs, out, name=name)
