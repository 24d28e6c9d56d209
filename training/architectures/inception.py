"""InceptionTime (Ismail Fawaz et al. 2020), scaled down, pooled in time and flattened."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig

MODULES_PER_SHORTCUT = 3


def module_kernels(kernel_size: int) -> tuple[int, int, int]:
    """The three parallel kernel sizes (the original's 40, 20, 10, as odd sizes around ``kernel_size``)."""
    return 4 * kernel_size - 1, 2 * kernel_size - 1, kernel_size


def _module(x: Any, filters: int, kernel_size: int) -> Any:
    """One Inception module: bottleneck, three convolutions and a max-pool branch, concatenated, BN, ReLU."""
    from keras import layers

    bottleneck = layers.Conv1D(filters, 1, padding="same", use_bias=False)(x) if x.shape[-1] > 1 else x
    branches = [
        layers.Conv1D(filters, k, padding="same", use_bias=False)(bottleneck) for k in module_kernels(kernel_size)
    ]
    pooled = layers.MaxPooling1D(3, strides=1, padding="same")(x)
    branches.append(layers.Conv1D(filters, 1, padding="same", use_bias=False)(pooled))
    h = layers.Concatenate()(branches)
    return layers.Activation("relu")(layers.BatchNormalization()(h))


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """``inception_modules`` modules of ``conv_filters[0]`` filters per branch, a shortcut around every three.

    After each group of three, its input (1×1 convolution and batch normalisation to the width of four
    branches) is added and the sum max-pooled by the next of ``time_pools``; the result is flattened.
    """
    from keras import layers

    filters = config.conv_filters[0]
    h = imu
    for group in range(config.inception_modules // MODULES_PER_SHORTCUT):
        shortcut_in = h
        for _ in range(MODULES_PER_SHORTCUT):
            h = _module(h, filters, config.kernel_size)
        shortcut = layers.BatchNormalization()(layers.Conv1D(h.shape[-1], 1, use_bias=False)(shortcut_in))
        h = layers.Activation("relu")(layers.Add()([shortcut, h]))
        if group < len(config.time_pools):
            h = layers.MaxPooling1D(config.time_pools[group])(h)
    return layers.Flatten()(h)
