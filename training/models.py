"""Keras models of the zoo, all built from one :class:`ModelConfig`.

The architectures (backbones) live in :mod:`forcecast.training.architectures`, one module per family,
with a registry of what each is and where it comes from: ``cnn_lstm`` (the 2D-CNN-LSTM that was best for
3D GRF in walking, Sugiarto et al. 2025), ``lstm``, ``gru``, ``cnn1d``, ``tcn``, ``resnet1d``,
``inception`` and ``transformer``. Every model here is that backbone plus the same static-feature branch
(a small dense layer fused with the backbone's features when ``use_static`` is true) and the same head;
outputs are ``out_len × 3`` normalised GRF samples.

Training uses :func:`masked_mse`: target samples that are unknown (NaN, overground stance off the
force plates) give no gradient, per output sample and axis.

Recurrent layers are unrolled (``unroll=True``): with a fixed window, Keras 3 then converts to TFLite
builtin ops that full-int8 quantisation handles, where the default ``WHILE`` loop does not (see README).
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
    """An uncompiled ``keras.Model`` with inputs ``imu`` (and ``static``) and output ``grf_block``.

    Parameters
    ----------
    config
        Architecture and its hyper-parameters.
    window, n_channels
        Input window length (samples) and IMU channels.
    n_static
        Static features (used when ``config.use_static``).
    out_len
        Output samples per window.

    Raises
    ------
    ValueError
        If the architecture cannot take this input (named by the backbone), or ``use_static`` is set
        without static features.
    forcecast.edge.config.ConfigError
        If the architecture is not in the zoo.
    """
    import keras
    from keras import layers

    from forcecast.training.architectures import architecture

    spec = architecture(config.architecture)
    imu = keras.Input((window, n_channels), name="imu")
    h = spec.backbone(imu, config, window, n_channels)
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
