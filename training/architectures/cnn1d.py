"""The 1D-CNN baseline: convolutions over time with the channels as features."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """Three ``kernel_size`` convolutions (``conv_filters[0]``, then ``[1]`` twice), each max-pooled by 2, flattened."""
    from keras import layers

    f1, f2 = config.conv_filters
    k = config.kernel_size
    h = imu
    for filters in (f1, f2, f2):
        h = layers.Conv1D(filters, k, padding="same", activation="relu")(h)
        h = layers.MaxPooling1D(2)(h)
    return layers.Flatten()(h)
