"""Training configuration: data windows, architecture, optimisation and splits (TOML-loadable).

A run's resolved configuration is saved as ``RUN/config.toml`` and can be passed back with
``--config`` to repeat it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, time
from pathlib import Path, PurePath
from typing import Any, Literal

import tomli_w

from forcecast.edge.config import ConfigError, from_dict, load_config, to_dict
from forcecast.edge.features import LEG_PLACES

Architecture = Literal["cnn_lstm", "lstm", "gru", "cnn1d", "tcn", "resnet1d", "inception", "transformer"]
"""The model zoo (:mod:`forcecast.training.architectures` describes each, with its literature reference)."""
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
    alignment
        ``none`` (IMU data in the sensor frame as recorded), ``segment_v1`` or ``segment_v1_walking``:
        every sensor rotated into its segment's frame by the device's estimator
        (:mod:`forcecast.edge.dsp.segment_alignment`), one estimate per subject session from all of its trials,
        before left legs are mirrored; gravity from a static trial (``segment_v1``, every subject needs
        one) or from the walking posture (``segment_v1_walking``). Recorded in the contract; the device
        then aligns its own stream the same way.
    short_trials
        What to do with a leg sequence shorter than the window: ``pad`` repeats its first sample
        before it (``window - delay - out_len`` samples, targets unknown there) so every sample can
        be an output; ``skip`` leaves it out. Either way the count is warned about and recorded.
    """

    rate_hz: float = 100.0
    leg_places: tuple[str, ...] = ("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis")
    window: int = 128
    out_len: int = 4
    delay: int = 2
    train_stride: int = 16
    include_static_trials: bool = True
    alignment: Literal["none", "segment_v1", "segment_v1_walking"] = "none"
    short_trials: Literal["pad", "skip"] = "pad"

    def __post_init__(self) -> None:
        if self.short_trials not in ("pad", "skip"):
            raise ValueError(f"short_trials must be 'pad' or 'skip', got {self.short_trials!r}")
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

    Architecture-specific depths: ``resnet_blocks`` (ResNet-1D residual blocks of three convolutions),
    ``inception_modules`` (InceptionTime modules, a shortcut around every three) and ``encoder_blocks`` /
    ``attention_heads`` (the transformer; its model width is ``conv_filters[1]``, divisible by the heads).
    The TCN's depth follows from the window: enough dilated levels for its receptive field to cover it.
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
    resnet_blocks: int = 3
    inception_modules: int = 6
    encoder_blocks: int = 2
    attention_heads: int = 4

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
        if not 1 <= self.resnet_blocks <= 8:
            raise ValueError(f"resnet_blocks must be in [1, 8], got {self.resnet_blocks}")
        if self.inception_modules < 3 or self.inception_modules % 3 or self.inception_modules > 12:
            raise ValueError(f"inception_modules must be 3, 6, 9 or 12, got {self.inception_modules}")
        if not 1 <= self.encoder_blocks <= 4:
            raise ValueError(f"encoder_blocks must be in [1, 4], got {self.encoder_blocks}")
        if self.attention_heads < 1 or (
            self.architecture == "transformer" and self.conv_filters[1] % self.attention_heads
        ):
            raise ValueError(
                f"attention_heads must be >= 1 and divide the transformer width conv_filters[1] "
                f"({self.conv_filters[1]}), got {self.attention_heads}"
            )


@dataclass(frozen=True)
class FitConfig:
    """Optimisation.

    Training length is counted in gradient steps, not in passes over the data: an epoch has
    ``max(ceil(windows / train_stride / batch_size), ceil(min_steps / epochs))`` steps, so a small
    dataset still gets at least ``min_steps`` updates over a full run (early stopping may end it
    sooner; metrics.json records the steps run).

    ``init_from`` names a run folder whose ``model.keras`` weights (and normalisation) start this
    run (fine-tuning, see :mod:`forcecast.training.finetune`); ``freeze`` holds layer-name patterns
    (``fnmatch``, e.g. ``"conv*"``) whose weights then stay fixed.
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 10
    seed: int = 0
    strategy: Strategy = "none"
    min_steps: int = 600
    init_from: str = ""
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or not self.learning_rate > 0:
            raise ValueError("epochs, batch_size, patience and learning_rate must be positive")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")
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
    val_block_share
        With only two subjects (one trains, one is the naive test) no subject is left for
        validation: the trailing ``val_block_share`` of each training sequence (after a one-window
        gap) is held out as the validation block instead.

    Subjects are drawn stratified by affected side and group (``subjects.csv`` column ``group``
    when present), so each set gets its share of every stratum.
    """

    test_subjects: tuple[str, ...] = ()
    test_fraction: float = 0.2
    val_fraction: float = 0.12
    exposed_fraction: float = 0.15
    exposed_train_share: float = 0.5
    val_block_share: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.val_block_share < 1.0:
            raise ValueError(f"val_block_share must be in (0, 1), got {self.val_block_share}")
        for name in ("test_fraction", "val_fraction", "exposed_fraction", "exposed_train_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training batches (never of validation or test), seeded by ``[fit] seed``.

    All off (0) by default. Suggested for small cohorts: ``rotation_deg = 5``, ``noise_sd = 0.02``,
    ``time_warp = 0.05``, ``magnitude_sd = 0.03``.

    Attributes
    ----------
    rotation_deg
        Each sensor's acc and gyr triplets are rotated together by one random rotation per window:
        a uniformly random axis, an angle uniform in ``±rotation_deg`` (strap-on differences).
    noise_sd
        Gaussian noise added to every normalised input channel, in training SDs.
    time_warp
        Each window is resampled in time by a factor uniform in ``1 ± time_warp``, anchored at its
        newest sample; its target block is resampled alike (cadence differences).
    magnitude_sd
        Each sensor's acc and gyr are scaled by ``1 + N(0, magnitude_sd)`` (one factor per quantity).
    """

    rotation_deg: float = 0.0
    noise_sd: float = 0.0
    time_warp: float = 0.0
    magnitude_sd: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rotation_deg <= 45.0:
            raise ValueError(f"rotation_deg must be in [0, 45], got {self.rotation_deg}")
        if not 0.0 <= self.time_warp < 0.5:
            raise ValueError(f"time_warp must be in [0, 0.5), got {self.time_warp}")
        if self.noise_sd < 0.0 or self.magnitude_sd < 0.0:
            raise ValueError("noise_sd and magnitude_sd must be >= 0")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is switched on."""
        return any(v > 0 for v in (self.rotation_deg, self.noise_sd, self.time_warp, self.magnitude_sd))


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


QUICK = {"epochs": 4, "patience": 2, "min_steps": 200}
"""``--quick``: a smoke run that still writes every output (few epochs, sparser windows)."""


def quick(config: TrainConfig) -> TrainConfig:
    """The ``--quick`` variant of ``config``."""
    return replace(
        config,
        fit=replace(
            config.fit,
            epochs=QUICK["epochs"],
            patience=QUICK["patience"],
            min_steps=min(config.fit.min_steps, QUICK["min_steps"]),
        ),
        data=replace(config.data, train_stride=max(config.data.train_stride, 24)),
    )


def load_train_config(path: Path | None) -> TrainConfig:
    """Defaults, or ``path``'s top-level tables ``[data]``, ``[model]``, ``[fit]``, ``[split]``, ``[augment]``."""
    return TrainConfig() if path is None else load_config(TrainConfig, path)


def dump_toml(config: object, title: str = "forcecast training configuration (resolved)") -> str:
    """TOML text of a resolved configuration dataclass, written by tomli-w and checked to read back the same.

    TOML has no null: a field whose value is ``None`` is left out, which reads back as its default, so this
    holds only where the default is ``None`` too. Paths are written as text.

    Parameters
    ----------
    config
        A configuration dataclass instance (e.g. :class:`TrainConfig`), possibly nested.
    title
        The comment at the top (one ``#`` line per line of it).

    Returns
    -------
    str
        TOML that :func:`~forcecast.edge.config.from_dict` (and so :func:`load_train_config` for a
        :class:`TrainConfig`) turns back into an equal object.

    Raises
    ------
    ConfigError
        If a value cannot be written so that it reads back equal (``None`` in a list or where the default
        is not ``None``, a NaN, a NUL character...): the message names the key.
    """
    comment = "".join(f"# {line}\n" for line in title.splitlines())
    text = comment + tomli_w.dumps(_toml_ready(to_dict(config), ""))
    try:
        back = from_dict(type(config), tomllib.loads(text), "written TOML: ")
    except ConfigError as exc:
        raise ConfigError(f"cannot write the configuration as TOML: {exc}") from None
    if back != config:
        changed = _first_difference(to_dict(config), to_dict(back), "")
        raise ConfigError(f"cannot write the configuration as TOML: {changed} would not read back the same")
    return text


def _toml_ready(value: Any, where: str) -> Any:
    """``value`` with ``None`` fields left out and paths as text; ``None`` anywhere else is an error."""
    if isinstance(value, dict):
        return {key: _toml_ready(v, f"{where}{key}.") for key, v in value.items() if v is not None}
    if isinstance(value, list):
        if any(v is None for v in value):
            raise ConfigError(f"cannot write the configuration as TOML: {where[:-1]} holds None (TOML has no null)")
        return [_toml_ready(v, where) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if not isinstance(value, str | int | float | date | time):
        raise ConfigError(f"cannot write the configuration as TOML: {where[:-1]} is a {type(value).__name__}")
    return value


def _first_difference(wanted: Any, got: Any, where: str) -> str:
    """The dotted key of the first value that differs between two plain-data configs."""
    if isinstance(wanted, dict) and isinstance(got, dict):
        for key, value in wanted.items():
            if value != got.get(key):
                return _first_difference(value, got.get(key), f"{where}{key}.")
    return f"{where.rstrip('.')} = {wanted!r} (reads back as {got!r})"
