"""Time-series ResNet (Wang, Yan & Oates 2017), one-dimensional, pooled in time and flattened."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig


def block_kernels(kernel_size: int) -> tuple[int, int, int]:
    """Long, medium and short kernel of a residual block (the original's 8, 5, 3 around ``kernel_size``)."""
    return 2 * kernel_size - 1, kernel_size, 3


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """``resnet_blocks`` residual blocks, max-pooled by ``time_pools`` after the first two, flattened.

    A block is three convolutions (:func:`block_kernels`) with batch normalisation, ReLU between them,
    and a shortcut (1×1 convolution and batch normalisation where the width changes) added before the last
    ReLU. The first block has ``conv_filters[0]`` filters, the rest ``conv_filters[1]``. Batch normalisation
    folds into the convolutions on conversion.
    """
    from keras import layers

    f1, f2 = config.conv_filters
    h = imu
    for block in range(config.resnet_blocks):
        filters = f1 if block == 0 else f2
        f = h
        for j, kernel in enumerate(block_kernels(config.kernel_size)):
            f = layers.Conv1D(filters, kernel, padding="same", use_bias=False)(f)
            f = layers.BatchNormalization()(f)
            if j < 2:
                f = layers.Activation("relu")(f)
        shortcut = h
        if h.shape[-1] != filters:
            shortcut = layers.BatchNormalization()(layers.Conv1D(filters, 1, use_bias=False)(h))
        h = layers.Activation("relu")(layers.Add()([shortcut, f]))
        if block < len(config.time_pools):
            h = layers.MaxPooling1D(config.time_pools[block])(h)
    return layers.Flatten()(h)
