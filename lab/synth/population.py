"""Virtual subjects: anthropometrics, knee alignment, OA status and personal idiosyncrasies."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.schema import PLACES
from forcecast.lab.dataset.subjects import Subject
from forcecast.lab.synth.config import SynthConfig

AffectedSide = Literal["left", "right", "none"]

FloatArray = NDArray[np.float64]

VENDOR_FRAMES = tuple(
    np.array(m, dtype=np.float64)
    for m in (
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # as the housing: x forward, z out of the face
        [[0, 1, 0], [1, 0, 0], [0, 0, -1]],  # x and y swapped, z into the skin (north-east-down style)
        [[0, -1, 0], [1, 0, 0], [0, 0, 1]],  # turned 90° in the housing
        [[0, 0, 1], [1, 0, 0], [0, 1, 0]],  # cyclic: the long axis is z
        [[1, 0, 0], [0, -1, 0], [0, 0, -1]],  # upside down
    )
)
"""Vendor axis conventions: column k is the vendor's axis k in the housing's nominal frame (all proper rotations)."""
SURFACE_NORMALS = {
    "foot": (0.3, 0.0, 1.0),
    "shank": (0.0, -1.0, 0.0),
    "thigh": (0.0, -1.0, 0.0),
    "pelvis": (-1.0, 0.0, 0.0),
}
"""Outward normal of the skin where each sensor sits, right side, segment frame (x fwd, y left, z up)."""


@dataclass(frozen=True)
class SensorMount:
    """How one IMU sits on its segment for a whole session (fixed per subject).

    Attributes
    ----------
    misalignment_deg
        Roll, pitch, yaw of the sensor relative to the nominal anatomical frame.
    acc_bias, gyr_bias
        Turn-on biases (m/s², rad/s) per axis.
    acc_scale, gyr_scale
        Scale-factor errors per axis (1 = perfect).
    placement
        For arbitrary mountings: the sensor's axes in its segment's frame (columns), replacing
        ``misalignment_deg``; vendor axis conventions included. ``None``: nominal mounting.
    """

    misalignment_deg: tuple[float, float, float]
    acc_bias: tuple[float, float, float]
    gyr_bias: tuple[float, float, float]
    acc_scale: tuple[float, float, float]
    gyr_scale: tuple[float, float, float]
    placement: tuple[tuple[float, float, float], ...] | None = None


@dataclass(frozen=True)
class VirtualSubject:
    """A simulated person with everything the generator needs, hidden truths included.

    Attributes
    ----------
    subject_id, body_mass_kg, height_m, affected_side
        As written to ``subjects.csv``.
    hka_deg
        True alignment of the index (affected, or right for controls) knee, varus positive.
    hka_known
        Whether ``hka_deg`` is written to ``subjects.csv`` (else blank).
    contralateral_hka_deg
        Alignment of the other knee (not in ``subjects.csv``).
    severity
        OA severity 0..1 (0 for controls); scales the gait adaptations of the affected side.
    comfortable_speed_mps
        Self-selected walking speed.
    imu_rate_hz
        IMU rate of this subject's session.
    ml_gain
        Personal factor on medio-lateral force (foot placement, footwear): invisible to the IMUs.
    peak_offset_bw
        Personal offset of the first vertical peak.
    thrust
        Whether the knee shows a visible varus thrust in early stance (not all varus knees do).
    mounts
        Sensor mounting per place.
    seed
        Seed for trial-level randomness (noise, stride variability).
    mass_known
        Whether ``body_mass_kg`` is written to ``subjects.csv`` (else blank: nobody weighed them).
    """

    subject_id: str
    body_mass_kg: float
    height_m: float
    hka_deg: float
    hka_known: bool
    affected_side: AffectedSide
    contralateral_hka_deg: float
    severity: float
    comfortable_speed_mps: float
    imu_rate_hz: float
    ml_gain: float
    peak_offset_bw: float
    thrust: bool
    mounts: dict[str, SensorMount] = field(default_factory=dict)
    seed: int = 0
    mass_known: bool = True

    @property
    def group(self) -> str:
        """``knee_oa`` or ``control``."""
        return "control" if self.affected_side == "none" else "knee_oa"

    def leg_hka_deg(self, side: str) -> float:
        """True alignment of the ``l`` or ``r`` knee."""
        index_side = {"left": "l", "right": "r"}.get(self.affected_side, "r")
        return self.hka_deg if side == index_side else self.contralateral_hka_deg

    def leg_severity(self, side: str) -> float:
        """OA severity of the ``l`` or ``r`` knee."""
        return self.severity if {"left": "l", "right": "r"}.get(self.affected_side) == side else 0.0

    def as_subject(self) -> Subject:
        """The row of ``subjects.csv`` (what a lab would know about this person).

        The mass is the true one even when ``mass_known`` is false: the dataset writer blanks it.
        """
        return Subject(
            self.subject_id,
            round(self.body_mass_kg, 1),
            round(self.height_m, 3),
            round(self.hka_deg, 1) if self.hka_known else None,
            self.affected_side,
            {"group": self.group},
        )


def make_subject(config: SynthConfig, index: int) -> VirtualSubject:
    """Draw subject number ``index`` (1-based); independent of how many subjects are drawn."""
    rng = np.random.default_rng([config.seed, index, 0x5EED])
    is_control = rng.random() < config.control_fraction
    height = float(np.clip(rng.normal(1.70, 0.09), 1.50, 1.95))
    bmi = float(np.clip(rng.normal(27.0 if not is_control else 24.5, 3.5), 19.0, 38.0))
    mass = bmi * height**2
    side: AffectedSide
    if is_control:
        side, severity = "none", 0.0
        hka = float(np.clip(rng.normal(1.2, 2.0), -4.0, 5.0))
        contralateral = hka + float(rng.normal(0.0, 0.7))
    else:
        side = "left" if rng.random() < 0.5 else "right"
        severity = float(rng.uniform(0.3, 1.0))
        # Medial OA (varus) is about three times as common as lateral OA (valgus).
        hka = float(rng.uniform(2.0, 12.0)) if rng.random() < 0.72 else float(rng.uniform(-8.0, -2.0))
        contralateral = 0.6 * hka + float(rng.normal(0.0, 1.5))
    speed = 1.36 * np.sqrt(height / 1.70) * (1.0 - 0.15 * severity) + rng.normal(0.0, 0.06)
    mounts = {place: _mount(rng) for place in PLACES}
    # What the hard lab adds is drawn from a stream of its own, so the easy lab's subjects stay as they were.
    extra = np.random.default_rng([config.seed, index, 0x4A2D])
    unknown_mass = config.unknown_mass_fraction
    assert unknown_mass is not None  # SynthConfig.__post_init__ fills it from the preset
    mass_known = bool(extra.random() >= unknown_mass)
    vendor = VENDOR_FRAMES[int(extra.integers(len(VENDOR_FRAMES)))] if config.vendor_frames else np.eye(3)
    if config.mounting == "arbitrary" or config.vendor_frames:
        mounts = {
            place: replace(
                mount,
                placement=_rows(
                    (_arbitrary_placement(place, extra) if config.mounting == "arbitrary" else np.eye(3)) @ vendor
                ),
            )
            for place, mount in mounts.items()
        }
    return VirtualSubject(
        subject_id=f"S{index:02d}",
        body_mass_kg=mass,
        height_m=height,
        hka_deg=hka,
        hka_known=bool(rng.random() >= config.unknown_hka_fraction),
        affected_side=side,
        contralateral_hka_deg=contralateral,
        severity=severity,
        comfortable_speed_mps=float(np.clip(speed, 0.85, 1.65)),
        imu_rate_hz=float(config.imu_rates_hz[int(rng.integers(len(config.imu_rates_hz)))]),
        ml_gain=float(np.exp(rng.normal(0.0, 0.15))),
        peak_offset_bw=float(rng.normal(0.0, 0.03)),
        thrust=bool(hka > 3.0 and rng.random() < 0.4),
        mounts=mounts,
        seed=int(rng.integers(2**31)),
        mass_known=mass_known,
    )


def _mount(rng: np.random.Generator) -> SensorMount:
    def triple(scale: float, loc: float = 0.0) -> tuple[float, float, float]:
        a, b, c = (float(v) for v in rng.normal(loc, scale, 3))
        return a, b, c

    roll, pitch = (float(v) for v in np.clip(rng.normal(0.0, 4.0, 2), -10.0, 10.0))
    yaw = float(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0))
    return SensorMount(
        misalignment_deg=(roll, pitch, yaw),
        acc_bias=triple(0.08),
        gyr_bias=triple(0.008),
        acc_scale=triple(0.01, 1.0),
        gyr_scale=triple(0.01, 1.0),
    )


def _arbitrary_placement(place: str, rng: np.random.Generator) -> FloatArray:
    """The housing's axes in the segment frame: face on the skin, turned any angle about the normal, tilted.

    The housing's z points out of the skin; it is turned uniformly about that normal (how the strap went
    on) and tilted by the local curvature of the skin (about 8° rms, at most 20°).
    """
    segment = place.rsplit("_", 1)[-1]
    normal = np.array(SURFACE_NORMALS[segment], dtype=np.float64)
    if place.startswith("l_"):
        normal[1] = -normal[1]  # the lateral side of the left leg is +y
    z = normal / np.linalg.norm(normal)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    base = np.column_stack([x, np.cross(z, x), z])
    turn = _axis_angle(z, rng.uniform(0.0, 2.0 * np.pi))
    tilt_axis = np.cross(z, rng.normal(size=3))
    tilt = _axis_angle(tilt_axis / np.linalg.norm(tilt_axis), np.deg2rad(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0)))
    return tilt @ turn @ base


def _axis_angle(axis: FloatArray, angle: float) -> FloatArray:
    """Rotation by ``angle`` (rad) about unit ``axis`` (Rodrigues)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _rows(matrix: FloatArray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(r[0]), float(r[1]), float(r[2])) for r in matrix)
