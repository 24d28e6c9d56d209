"""The model contract: everything a device must know to feed a model and read its output.

It travels with every trained model (``RUN/contract.json``) and, from the quantisation step on,
inside every model package. The device compares it with its own sensors and refuses a mismatch
with a message naming the field, instead of silently feeding a model the wrong thing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.config import ConfigError, from_dict
from forcecast.edge.contract_limits import layout_problems, normalisation_problems, notes_problems, timing_problems
from forcecast.edge.dsp.resample import ANTIALIAS_FRACTION, FILTER_ORDER
from forcecast.edge.dsp.segment_alignment import ALIGNMENTS
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.features import OUTPUT_AXES, STATIC_FEATURES, STATIC_UNITS, input_channels

CONTRACT_VERSION = 1


class ContractError(ForcecastValueError):
    """A model contract is incomplete, inconsistent, or does not fit the device."""

    reason = "contract_invalid"


@dataclass(frozen=True)
class Normalisation:
    """Per-feature ``(x - mean) / std`` applied before the model (outputs: the inverse after it)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        problems = normalisation_problems(self.mean, self.std)
        if problems:
            raise ValueError("; ".join(problems))

    def apply(self, values: NDArray[np.floating]) -> NDArray[np.float32]:
        """Normalise (last axis = features)."""
        normalised: NDArray[np.float32] = ((values - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)
        return normalised

    def invert(self, values: NDArray[np.floating]) -> NDArray[np.float64]:
        """Undo :meth:`apply`."""
        restored: NDArray[np.float64] = np.asarray(values, dtype=np.float64) * np.asarray(self.std)
        restored += np.asarray(self.mean)
        return restored

    @classmethod
    def fit(cls, values: NDArray[np.floating], min_std: float = 1e-3) -> Normalisation:
        """Mean and std of ``values`` (rows = samples), ignoring NaN; tiny std is floored."""
        mean = np.nanmean(values, axis=0)
        std = np.maximum(np.nanstd(values, axis=0), min_std)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))


@dataclass(frozen=True)
class ModelContract:
    """What a model expects and produces.

    Attributes
    ----------
    rate_hz
        Sampling rate of the model's input and output.
    leg_places
        Leg-relative sensor places (``ipsi_shank``, ``contra_thigh``, ``pelvis``...). Channels are
        each place's acc x/y/z (m/s², gravity included) then gyr x/y/z (rad/s), in the sensor frame,
        mirrored across the sagittal plane for left-leg predictions (see :mod:`forcecast.edge.features`).
    window
        Input length in samples.
    out_len
        Output samples per inference (the device's hop).
    delay
        How many samples the newest output lies behind the newest input (0 = fully causal).
    static_features
        Static features in input order (empty if the model takes none); see ``STATIC_UNITS``.
    inputs, static, targets
        Normalisation of IMU channels, static features and outputs.
    output_axes
        ``v``, ``ap``, ``ml`` (up, forward, medial), in body weights.
    alignment
        How IMU data are rotated before mirroring: ``none`` (the sensor frame as recorded, after the
        device's gravity calibration), ``segment_v1`` (each sensor rotated into its segment's frame by
        :mod:`forcecast.edge.dsp.segment_alignment`, gravity from standing) or ``segment_v1_walking`` (the same,
        gravity from the walking posture). Older contracts lack the field and mean ``none``.
    """

    rate_hz: float
    leg_places: tuple[str, ...]
    window: int
    out_len: int
    delay: int
    static_features: tuple[str, ...]
    inputs: Normalisation
    static: Normalisation | None
    targets: Normalisation
    output_axes: tuple[str, ...] = OUTPUT_AXES
    output_unit: str = "body weight"
    antialias: str = f"causal Butterworth order {FILTER_ORDER} at {ANTIALIAS_FRACTION} x target Nyquist"
    alignment: str = "none"
    version: int = CONTRACT_VERSION
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = timing_problems(self.rate_hz, self.window, self.out_len, self.delay)
        try:
            channels = input_channels(self.leg_places)
        except ValueError as exc:
            problems.append(f"leg_places: {exc}")
            channels = ()
        if channels and len(self.inputs.mean) != len(channels):
            problems.append(f"inputs normalisation has {len(self.inputs.mean)} values for {len(channels)} channels")
        unknown = [f for f in self.static_features if f not in STATIC_FEATURES]
        if unknown:
            problems.append(f"static_features: unknown {', '.join(unknown)}")
        if self.static_features and (self.static is None or len(self.static.mean) != len(self.static_features)):
            problems.append("static normalisation must have one value per static feature")
        if len(self.targets.mean) != len(self.output_axes):
            problems.append("targets normalisation must have one value per output axis")
        problems += layout_problems(self.leg_places, self.static_features, self.output_axes, self.output_unit)
        problems += notes_problems(self.notes)
        if self.alignment not in ALIGNMENTS:
            problems.append(
                f"alignment: {self.alignment!r} is not implemented by this software (it knows "
                f"{', '.join(ALIGNMENTS)}); update the device software or use a model trained with one of those"
            )
        if problems:
            raise ContractError("; ".join(problems))

    @property
    def channels(self) -> tuple[str, ...]:
        """Input channel names in order."""
        return input_channels(self.leg_places)

    @property
    def latency_s(self) -> float:
        """Algorithmic latency of the oldest output sample of a block (delay + block wait)."""
        return (self.delay + self.out_len - 1) / self.rate_hz

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), with units spelled out for people reading it."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        data["static_units"] = {f: STATIC_UNITS[f] for f in self.static_features}
        return data

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "contract") -> ModelContract:
        """Read from plain data, naming the field of anything missing, wrong or out of bounds.

        Bounds: see :mod:`forcecast.edge.contract_limits`. ``channels``, when present, must be the channels
        ``leg_places`` gives.
        """
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
        listed = data.get("channels")
        data = {k: v for k, v in data.items() if k not in ("channels", "static_units")}
        missing = [
            f for f in ("rate_hz", "leg_places", "window", "out_len", "delay", "inputs", "targets") if f not in data
        ]
        if missing:
            raise ContractError(f"{where}: missing field(s) {', '.join(missing)}")
        problems = [p for name in ("inputs", "static", "targets") for p in _raw_normalisation_problems(data, name)]
        if problems:
            raise ContractError(f"{where}: {'; '.join(problems)}")
        try:
            contract = from_dict(cls, data, f"{where}: ")
        except ConfigError as exc:
            raise ContractError(str(exc)) from None
        except ContractError as exc:
            raise ContractError(f"{where}: {exc}") from None
        except OverflowError as exc:
            raise ContractError(f"{where}: a number is out of range ({exc})") from None
        if listed is not None and listed != list(contract.channels):
            raise ContractError(f"{where}: channels {listed!r} are not the channels of leg_places {contract.channels}")
        if contract.version != CONTRACT_VERSION:
            raise ContractError(
                f"{where}: version {contract.version} is not supported (this software reads {CONTRACT_VERSION})"
            )
        return contract

    @classmethod
    def load(cls, path: Path) -> ModelContract:
        """Read a JSON file written by :meth:`save`."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ContractError(f"{path}: not found") from None
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path))


def _raw_normalisation_problems(data: dict[str, Any], name: str) -> list[str]:
    """Out-of-bounds constants of normalisation ``name`` as read, named by field (``targets.std[2]``)."""
    value = data.get(name)
    if not isinstance(value, dict):
        return []
    mean, std = value.get("mean"), value.get("std")
    if not isinstance(mean, list | tuple) or not isinstance(std, list | tuple):
        return []
    return normalisation_problems(mean, std, f"{name}.")
