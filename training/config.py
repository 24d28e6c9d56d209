"""Training configuration: data windows, architecture, optimisation and splits (TOML-loadable).

A run's resolved configuration is saved as ``RUN/config.toml`` and can be passed back with
``--config`` to repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from edge.config import load_config, to_dict
from edge.features import LEG_PLACES

Architecture = Literal["cnn_lstm", "lstm", "cnn1d"]
Strategy = Literal["none", "mirrored", "multi_worker"]


@dataclass(frozen=True)
class DataConfig:
    """How trials become windows.

    Attributes
    ----------
    rate_hz
        Model rate; trials are resampled to it (anti-aliased, causal for IMU).
    leg_places
        Sensors the model reads, relative to the predicted leg.
    window
        Input samples per window.
    out_len
        Output samples per window (the device's hop).
    delay
        Samples between the newest input and the newest output (0 = fully causal).
    train_stride
        On average one training window every ``train_stride`` samples per epoch (positions are
        redrawn each epoch, so every sample is seen over a few epochs).
    include_static_trials
        Train on quiet-standing trials too (they teach the model what standing looks like).
    """

    rate_hz: float = 100.0
    leg_places: tuple[str, ...] = ("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis")
    window: int = 128
    out_len: int = 4
    delay: int = 2
    train_stride: int = 16
    include_static_trials: bool = True

    def __post_init__(self) -> None:
        unknown = [p for p in self.leg_places if p not in LEG_PLACES]
        if unknown or not self.leg_places:
            raise ValueError(f"leg_places must be from {', '.join(LEG_PLACES)}, got {list(self.leg_places)}")
        if self.window < 16 or self.window % 4:
            raise ValueError(f"window must be a multiple of 4 and at least 16, got {self.window}")
        if self.out_len < 1 or self.delay < 0 or self.out_len + self.delay > self.window // 2:
            raise ValueError("need out_len >= 1, delay >= 0 and out_len + delay <= window / 2")
        if self.train_stride < 1:
            raise ValueError("train_stride must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (one config family for every architecture).

    ``static_noise`` is the standard deviation of Gaussian noise added to the normalised static
    features while training. Body mass, height and alignment together identify a training subject;
    without the noise the static branch learns to recognise people instead of the effect of their
    alignment, and subject-naive accuracy suffers.
    """

    architecture: Architecture = "cnn_lstm"
    use_static: bool = True
    conv_filters: tuple[int, ...] = (8, 16)
    kernel_size: int = 5
    time_pools: tuple[int, ...] = (2, 4)
    lstm_units: int = 32
    static_units: int = 8
    static_noise: float = 0.3
    dense_units: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if len(self.conv_filters) != 2 or any(f < 1 for f in self.conv_filters):
            raise ValueError("conv_filters must be two positive integers")
        if len(self.time_pools) != 2 or any(p < 1 for p in self.time_pools):
            raise ValueError("time_pools must be two positive integers")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd and positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.static_noise < 0.0:
            raise ValueError("static_noise must be >= 0")


@dataclass(frozen=True)
class FitConfig:
    """Optimisation.

    ``init_from`` names a run folder whose ``model.keras`` weights (and normalisation) start this
    run (fine-tuning, see :mod:`training.finetune`); ``freeze`` holds layer-name patterns
    (``fnmatch``, e.g. ``"conv*"``) whose weights then stay fixed.
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 10
    seed: int = 0
    strategy: Strategy = "none"
    init_from: str = ""
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or not self.learning_rate > 0:
            raise ValueError("epochs, batch_size, patience and learning_rate must be positive")
        if self.freeze and not self.init_from:
            raise ValueError("freeze needs init_from: only layers loaded from a trained run can be frozen")
        if any(not p.strip() for p in self.freeze):
            raise ValueError("freeze patterns must not be empty")


@dataclass(frozen=True)
class SplitConfig:
    """Subject-wise splits.

    Attributes
    ----------
    test_subjects
        Subject-naive test subjects; empty = draw ``test_fraction`` of the subjects by seed.
    test_fraction, val_fraction, exposed_fraction
        Shares of subjects held out as naive test, validation, and subject-exposed test.
    exposed_train_share
        Of each exposed subject's trials, the leading share that goes to training; the rest (after a
        one-window gap) is the subject-exposed test set.
    """

    test_subjects: tuple[str, ...] = ()
    test_fraction: float = 0.2
    val_fraction: float = 0.12
    exposed_fraction: float = 0.15
    exposed_train_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("test_fraction", "val_fraction", "exposed_fraction", "exposed_train_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    split: SplitConfig = field(default_factory=SplitConfig)


QUICK = {"epochs": 4, "patience": 2}
"""``--quick``: a smoke run that still writes every output (few epochs, sparser windows)."""


def quick(config: TrainConfig) -> TrainConfig:
    """The ``--quick`` variant of ``config``."""
    return replace(
        config,
        fit=replace(config.fit, **QUICK),
        data=replace(config.data, train_stride=max(config.data.train_stride, 24)),
    )


def load_train_config(path: Path | None) -> TrainConfig:
    """Defaults, or ``path``'s top-level tables ``[data]``, ``[model]``, ``[fit]``, ``[split]``."""
    return TrainConfig() if path is None else load_config(TrainConfig, path)


def dump_toml(config: TrainConfig) -> str:
    """TOML text of a resolved config (readable by :func:`load_train_config`)."""
    lines = ["# forcecast training configuration (resolved)"]
    for section, values in to_dict(config).items():
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
