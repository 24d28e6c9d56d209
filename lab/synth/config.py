"""Settings of the synthetic gait lab (loadable from the ``[synth]`` table of a TOML file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from forcecast.edge.schema import PLACES

SPEED_FACTORS = {"slow": 0.75, "comfortable": 1.0, "fast": 1.25}
"""Walking speed of each condition relative to the subject's comfortable speed."""

Preset = Literal["easy", "hard"]
Mounting = Literal["nominal", "arbitrary"]
PRESETS: dict[str, dict[str, object]] = {
    "easy": {"mounting": "nominal", "vendor_frames": False, "soft_tissue": 0.0, "unknown_mass_fraction": 0.0},
    "hard": {"mounting": "arbitrary", "vendor_frames": True, "soft_tissue": 1.0, "unknown_mass_fraction": 0.25},
}
"""What each preset sets for the fields left unset (``None``); any field set explicitly wins."""


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
    preset
        ``easy`` (the demo lab: sensors strapped on within a few degrees of the nominal frame, known
        masses) or ``hard`` (what real recordings hold: see the fields below). It supplies the value of
        every field below that is left unset.
    mounting
        ``nominal`` (a few degrees of misalignment) or ``arbitrary``: each sensor sits on its segment's
        surface (lateral thigh and shank, dorsal foot, sacrum) turned by any angle about the surface
        normal and tilted by its curvature, drawn per subject session.
    vendor_frames
        Sensor axes follow a vendor's convention (an axis permutation with sign flips, one vendor per
        session) instead of the housing's nominal x-forward, z-out.
    soft_tissue
        Scale of soft-tissue motion of each sensor against its bone (0 = rigid): a slow wobble (about
        1° rms at 1-3 Hz) and a damped oscillation after every heel strike (thigh most, foot least).
    unknown_mass_fraction
        Share of subjects whose body mass is written blank in ``subjects.csv`` (as when nobody weighed
        them; their forces still follow their true mass).
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
    preset: Preset = "easy"
    mounting: Mounting | None = None
    vendor_frames: bool | None = None
    soft_tissue: float | None = None
    unknown_mass_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.mounting not in ("nominal", "arbitrary"):
            raise ValueError(f"mounting must be nominal or arbitrary, got {self.mounting!r}")
        if self.soft_tissue is None or not 0.0 <= self.soft_tissue <= 3.0:
            raise ValueError(f"soft_tissue must be 0..3, got {self.soft_tissue}")
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
        for name in ("control_fraction", "unknown_hka_fraction", "unknown_mass_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be 0..1, got {getattr(self, name)}")


def hard_preset(**overrides: Any) -> SynthConfig:
    """The hard preset (see :class:`SynthConfig`), with any field overridden (checked by the config itself)."""
    return SynthConfig(preset="hard", **overrides)
