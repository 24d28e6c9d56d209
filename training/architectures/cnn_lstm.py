"""The 2D-CNN-LSTM (Sugiarto et al. 2025): convolutions across axes, then channels, an LSTM over time."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """2D convolution over time × channels, max-pooling in time, and an unrolled LSTM's last state.

    The first convolution spans the three axes of each sensor quantity (stride 3 across channels), the
    second all of them. The LSTM is unrolled: with a fixed window Keras 3 then converts to TFLite builtin
    ops that full-int8 quantisation handles, where the default ``WHILE`` loop does not.

    Raises
    ------
    ValueError
        If the channels are not x/y/z triplets or the window is not a multiple of the time pools.
    """
    from keras import layers

    f1, f2 = config.conv_filters
    p1, p2 = config.time_pools
    k = config.kernel_size
    if n_channels % 3:
        raise ValueError(f"cnn_lstm needs channels in x/y/z triplets, got {n_channels}")
    if window % (p1 * p2):
        raise ValueError(f"cnn_lstm needs the window ({window}) to be a multiple of the time pools {p1}x{p2}")
    h = layers.Reshape((window, n_channels, 1))(imu)
    h = layers.ZeroPadding2D(((k // 2, k // 2), (0, 0)))(h)
    h = layers.Conv2D(f1, (k, 3), strides=(1, 3), activation="relu", name="conv_axes")(h)
    h = layers.MaxPooling2D((p1, 1))(h)
    h = layers.ZeroPadding2D(((k // 2, k // 2), (0, 0)))(h)
    h = layers.Conv2D(f2, (k, n_channels // 3), activation="relu", name="conv_channels")(h)
    h = layers.MaxPooling2D((p2, 1))(h)
    h = layers.Reshape((window // (p1 * p2), f2))(h)
    return layers.LSTM(config.lstm_units, unroll=True, name="lstm")(h)
