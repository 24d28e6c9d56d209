"""Recurrent baselines: one LSTM or GRU layer over the raw window."""

from __future__ import annotations

from typing import Any

from forcecast.training.config import ModelConfig


def lstm_backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """The last state of an unrolled LSTM with ``lstm_units`` units over the whole window."""
    from keras import layers

    return layers.LSTM(config.lstm_units, unroll=True, name="lstm")(imu)


def gru_backbone(imu: Any, config: ModelConfig, window: int, n_channels: int) -> Any:
    """The last state of an unrolled GRU with ``lstm_units`` units over the whole window.

    Unrolled like the LSTM, so the int8 conversion sees plain matrix products and gates, not a loop.
    """
    from keras import layers

    return layers.GRU(config.lstm_units, unroll=True, name="gru")(imu)
