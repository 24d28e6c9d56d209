"""A small transformer encoder over patches of the window (Vaswani et al. 2017; Zerveas et al. 2021)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.training.config import ModelConfig


def positional_encoding(tokens: int, width: int) -> NDArray[np.float32]:
    """The sinusoidal positional encoding, ``(tokens, width)``: sine on even features, cosine on odd ones."""
    position = np.arange(tokens, dtype=np.float64)[:, None]
    feature = np.arange(width)[None, :]
    angle = position / np.power(10000.0, (2 * (feature // 2)) / width)
    return np.where(feature % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """Patch embedding, positional encoding, ``encoder_blocks`` encoder blocks, flattened tokens.

    A patch is ``time_pools[0] * time_pools[1]`` samples, embedded by a strided convolution into
    ``conv_filters[1]`` features. Each block is multi-head self-attention (``attention_heads``) and a
    feed-forward layer four times as wide, each with a residual sum and batch normalisation (which, unlike
    layer normalisation, folds into int8 multiplies and adds). Flattening keeps each token's place.

    Raises
    ------
    ValueError
        If the window is not a whole number of patches.
    """
    from keras import layers, ops

    width = config.conv_filters[1]
    patch = int(np.prod(config.time_pools))
    if window % patch:
        raise ValueError(f"transformer needs the window ({window}) to be a multiple of the patch {patch}")
    tokens = window // patch
    h = layers.Conv1D(width, patch, strides=patch, name="patch_embedding")(imu)
    h = ops.add(h, positional_encoding(tokens, width)[None])
    for block in range(config.encoder_blocks):
        attended = layers.MultiHeadAttention(
            config.attention_heads, width // config.attention_heads, name=f"attention{block}"
        )(h, h)
        h = layers.BatchNormalization()(layers.Add()([h, attended]))
        f = layers.Dense(4 * width, activation="relu")(h)
        f = layers.Dense(width)(f)
        h = layers.BatchNormalization()(layers.Add()([h, f]))
    return layers.Flatten()(h)
