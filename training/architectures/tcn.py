"""Temporal convolutional network (Bai, Kolter & Koltun 2018): dilated causal convolutions with shortcuts."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig

MAX_LEVELS = 10


def receptive_field(kernel_size: int, levels: int) -> int:
    """Samples one output of a TCN sees: two convolutions per level, dilation ``2**level``."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


def levels_for(window: int, kernel_size: int) -> int:
    """The fewest levels whose receptive field covers ``window`` samples (at least 1, at most :data:`MAX_LEVELS`)."""
    levels = 1
    while receptive_field(kernel_size, levels) < window and levels < MAX_LEVELS:
        levels += 1
    return levels


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """Residual levels of two causal ``kernel_size`` convolutions (``conv_filters[1]`` filters, dilation 1, 2, 4...).

    Each level adds its input (projected by a 1×1 convolution where the width changes) to its output;
    the newest time step of the last level, which has seen the whole window, is the feature vector.

    Raises
    ------
    ValueError
        If ``kernel_size`` is 1 (no receptive field to grow).
    """
    from keras import layers

    if config.kernel_size < 2:
        raise ValueError("tcn needs kernel_size >= 3: a 1-sample kernel sees nothing of the past")
    filters = config.conv_filters[1]
    h = imu
    for level in range(levels_for(window, config.kernel_size)):
        dilation = 2**level
        f = layers.Conv1D(filters, config.kernel_size, padding="causal", dilation_rate=dilation, activation="relu")(h)
        f = layers.Conv1D(filters, config.kernel_size, padding="causal", dilation_rate=dilation, activation="relu")(f)
        shortcut = h if h.shape[-1] == filters else layers.Conv1D(filters, 1, name=f"tcn_shortcut{level}")(h)
        h = layers.Activation("relu")(layers.Add()([shortcut, f]))
    newest = layers.Cropping1D((window - 1, 0))(h)
    return layers.Flatten()(newest)
