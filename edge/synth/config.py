"""Settings of the synthetic gait lab (loadable from the ``[synth]`` table of a TOML file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.schema import PLACES

SPEED_FACTORS = {"slow": 0.75, "comfortable": 1.0, "fast": 1.25}
"""Walking speed of each condition relative to the subject's comfortable speed."""


@dataclass(frozen=True)
class SynthConfig:
    """What the synthetic lab generates.

    Attributes
    ----------
    subjects
        Number of virtual subjects (``S01``, ``S02``, ...). Subject ``Sk`` is the same person
        whatever the total, so a larger cohort extends a smaller one.
    seed
        Master seed; the same seed gives byte-identical files.
    duration_s
        Length of each walking trial.
    speeds
        Walking conditions, from ``slow``, ``comfortable``, ``fast``.
    static_s
        Length of a quiet-standing calibration trial per subject (0 for none).
    force_rate_hz
        Force-plate (instrumented treadmill) rate.
    imu_rates_hz
        IMU rates; each subject's session uses one of them (as different labs would).
    places
        Sensor places to write.
    control_fraction
        Share of subjects without knee OA (``affected_side = none``).
    unknown_hka_fraction
        Share of subjects whose ``hka_deg`` is written blank (no radiograph); their forces still
        follow their true, hidden alignment.
    file_format
        ``csv`` or ``parquet``.
    """

    subjects: int = 20
    seed: int = 0
    duration_s: float = 60.0
    speeds: tuple[str, ...] = ("slow", "comfortable", "fast")
    static_s: float = 10.0
    force_rate_hz: float = 1000.0
    imu_rates_hz: tuple[float, ...] = (100.0, 104.0, 128.0, 200.0)
    places: tuple[str, ...] = PLACES
    control_fraction: float = 0.25
    unknown_hka_fraction: float = 0.0
    file_format: Literal["csv", "parquet"] = "csv"

    def __post_init__(self) -> None:
        if not 1 <= self.subjects <= 999:
            raise ValueError(f"subjects must be 1..999, got {self.subjects}")
        if not 2.0 <= self.duration_s <= 3600.0:
            raise ValueError(f"duration_s must be 2..3600 s, got {self.duration_s}")
        unknown = [s for s in self.speeds if s not in SPEED_FACTORS]
        if unknown or not self.speeds:
            raise ValueError(f"speeds must be from {', '.join(SPEED_FACTORS)}, got {list(self.speeds)}")
        if not 0.0 <= self.static_s <= 600.0:
            raise ValueError(f"static_s must be 0..600 s, got {self.static_s}")
        if not 200.0 <= self.force_rate_hz <= 4000.0:
            raise ValueError(f"force_rate_hz must be 200..4000 Hz, got {self.force_rate_hz}")
        if not self.imu_rates_hz or any(not 50.0 <= r <= self.force_rate_hz / 2 for r in self.imu_rates_hz):
            raise ValueError(
                f"imu_rates_hz must lie in 50..{self.force_rate_hz / 2:g} Hz, got {list(self.imu_rates_hz)}"
            )
        bad_places = [p for p in self.places if p not in PLACES]
        if bad_places or not self.places:
            raise ValueError(f"places must be from {', '.join(PLACES)}, got {list(self.places)}")
        for name in ("control_fraction", "unknown_hka_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be 0..1, got {getattr(self, name)}")
