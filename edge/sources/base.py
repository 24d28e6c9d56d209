"""What every sensor source gives the runtime: timed blocks of IMU samples in format-v1 units.

A source yields :class:`Chunk` objects: sample times on the device's clock (seconds, float64) and
the values of format-v1 IMU columns (``r_shank_acc_x`` ...; acceleration in m/s² including gravity,
angular rate in rad/s, nominal sensor frame x anterior, y left, z up). Sources report what they
see (NaN for a sample a sensor failed to deliver, timestamps as the clock gave them); judging
dropouts, clock jumps and saturation is the runtime's job (:mod:`forcecast.edge.runtime.quality`), so every
source is checked the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import ForcecastRuntimeError

FloatArray = NDArray[np.float64]


class SourceError(ForcecastRuntimeError):
    """A source cannot start or continue (missing file, wrong chip, bus error); the message says which."""

    reason = "source_failed"


@dataclass(frozen=True)
class SubjectProfile:
    """What a replayed or synthetic source knows of the person it plays (the runtime's default patient).

    Attributes
    ----------
    subject_id
        Identifier (the folder name under ``trials/``).
    body_mass_kg, height_m
        Anthropometrics.
    hka_deg
        Frontal-plane hip-knee-ankle alignment, varus positive; ``None`` when unknown.
    affected_side
        ``"left"``, ``"right"`` or ``"none"``.
    """

    subject_id: str
    body_mass_kg: float
    height_m: float
    hka_deg: float | None
    affected_side: str


@dataclass(frozen=True)
class Chunk:
    """A block of samples, all columns sampled at the same instants.

    Attributes
    ----------
    time_s
        Shape ``(n,)``: sample times on the device clock, seconds.
    values
        Shape ``(n, len(columns))``: samples, NaN where a sensor delivered nothing.
    columns
        Format-v1 IMU column names of ``values``.
    """

    time_s: FloatArray
    values: FloatArray
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.time_s.ndim != 1 or self.values.shape != (self.time_s.size, len(self.columns)):
            raise ValueError(
                f"chunk shape mismatch: time {self.time_s.shape}, values {self.values.shape}, "
                f"{len(self.columns)} columns"
            )


class Source(Protocol):
    """A stream of IMU samples.

    Attributes
    ----------
    columns
        The format-v1 IMU columns every chunk carries, in order.
    rate_hz
        Nominal sample rate.
    acc_range_mps2, gyr_range_rads
        Full-scale ranges; a sample at (or within 1 % of) full scale is saturated.
    """

    columns: tuple[str, ...]
    rate_hz: float
    acc_range_mps2: float
    gyr_range_rads: float

    def chunks(self) -> Iterator[Chunk]:
        """Yield chunks until the source ends (replay) or is closed (live)."""
        ...

    def close(self) -> None:
        """Release the hardware or file; :meth:`chunks` then stops."""
        ...
