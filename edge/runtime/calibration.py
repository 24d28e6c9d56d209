"""Calibration from a quiet-standing pose: gyro bias and the tilt that puts gravity on +z.

While the wearer stands still, every sensor's angular rate is its bias and its acceleration is
gravity. Subtracting the bias and rotating each sensor by the smallest rotation that takes the
measured gravity direction onto +z removes the static part of the mounting error (roll and pitch;
rotation about the vertical is not observable from gravity and is left alone). Training data come
from sensors scattered a few degrees around the nominal frame, so calibrated data sit at the centre
of what the model has seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.schema import GRAVITY_MPS2, SENSOR_AXES, imu_column

FloatArray = NDArray[np.float64]

MAX_GYRO_RMS = 0.15
"""rad/s: more angular motion than this (about 9 °/s) and the pose was not still."""
MAX_ACC_SPREAD = 0.6
"""m/s²: standard deviation of the acceleration norm allowed while still."""
GRAVITY_TOLERANCE = 1.5
"""m/s²: a still sensor must read |g| within this (else the range or scaling is wrong)."""
MAX_TILT_DEG = 35.0
"""A sensor tilted more than this from its nominal frame is mounted wrongly (upside down, rotated)."""


class CalibrationError(ForcecastValueError):
    """The calibration pose was unusable; the message names the sensor and what was wrong."""

    reason = "calibration_failed"


@dataclass(frozen=True)
class PlaceCalibration:
    """One sensor's correction: ``v_nominal = rotation @ (v_sensor - bias)`` (bias for the gyro only)."""

    gyro_bias: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    tilt_deg: float


@dataclass(frozen=True)
class Calibration:
    """Per-place corrections for a stream with the given columns."""

    columns: tuple[str, ...]
    places: dict[str, PlaceCalibration]
    _matrix_t: FloatArray = field(init=False, repr=False, compare=False)
    _offset: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One (C, C) matrix and one offset for all places: a single matrix product per chunk.
        size = len(self.columns)
        matrix, offset = np.eye(size), np.zeros(size)
        index = {c: i for i, c in enumerate(self.columns)}
        for place, cal in self.places.items():
            rotation = np.asarray(cal.rotation)
            for kind in ("acc", "gyr"):
                rows = [index[imu_column(place, kind, a)] for a in SENSOR_AXES]
                matrix[np.ix_(rows, rows)] = rotation
                if kind == "gyr":
                    offset[rows] = rotation @ np.asarray(cal.gyro_bias)
        object.__setattr__(self, "_matrix_t", matrix.T.copy())
        object.__setattr__(self, "_offset", offset)

    def apply(self, values: FloatArray) -> FloatArray:
        """Correct samples (rows, columns as :attr:`columns`); returns a new array."""
        if not self.places:
            return np.asarray(values, dtype=np.float64)
        return values @ self._matrix_t - self._offset

    def describe(self) -> dict[str, dict[str, float]]:
        """Tilt and gyro bias per place, for logs and records."""
        return {
            p: {
                "tilt_deg": round(c.tilt_deg, 2),
                "gyro_bias_dps": round(float(np.rad2deg(np.linalg.norm(c.gyro_bias))), 3),
            }
            for p, c in self.places.items()
        }


def identity(columns: tuple[str, ...]) -> Calibration:
    """No correction (used when there was no still pose to calibrate from)."""
    return Calibration(columns, {})


def estimate(
    columns: tuple[str, ...], values: FloatArray, align_gravity: bool = True, max_tilt_deg: float | None = MAX_TILT_DEG
) -> Calibration:
    """Calibrate every place in ``columns`` from samples of a still pose.

    Parameters
    ----------
    columns
        Format-v1 IMU columns of ``values``.
    values
        Shape ``(n, len(columns))``, quiet standing, NaN rows allowed (ignored).
    align_gravity
        Also rotate gravity onto +z; if false only the gyro bias is removed.
    max_tilt_deg
        Refuse a sensor tilted more than this from its nominal frame; ``None`` accepts any mounting (the
        model's contract asks for segment alignment, which finds the sensor's frame while walking).

    Raises
    ------
    CalibrationError
        If a sensor moved, reads an implausible gravity, or is tilted beyond ``MAX_TILT_DEG``.
    """
    index = {c: i for i, c in enumerate(columns)}
    places = list(dict.fromkeys(c.rsplit("_", 2)[0] for c in columns))
    good = np.all(np.isfinite(values), axis=1)
    if good.sum() < 10:
        raise CalibrationError(f"only {int(good.sum())} valid samples in the calibration pose; need at least 10")
    result = {}
    for place in places:
        acc = values[good][:, [index[imu_column(place, "acc", a)] for a in SENSOR_AXES]]
        gyr = values[good][:, [index[imu_column(place, "gyr", a)] for a in SENSOR_AXES]]
        bias = gyr.mean(axis=0)
        motion = float(np.sqrt(np.mean(np.sum((gyr - bias) ** 2, axis=1))))
        norm = np.linalg.norm(acc, axis=1)
        if motion > MAX_GYRO_RMS or float(norm.std()) > MAX_ACC_SPREAD:
            raise CalibrationError(
                f"{place}: moved during calibration (gyro {motion:.2f} rad/s rms, |acc| spread "
                f"{norm.std():.2f} m/s²); stand still"
            )
        gravity = acc.mean(axis=0)
        magnitude = float(np.linalg.norm(gravity))
        if abs(magnitude - GRAVITY_MPS2) > GRAVITY_TOLERANCE:
            raise CalibrationError(
                f"{place}: reads |g| = {magnitude:.2f} m/s² standing still, expected {GRAVITY_MPS2:.2f}; "
                "check the accelerometer range and units"
            )
        up = gravity / magnitude
        tilt = float(np.rad2deg(np.arccos(np.clip(up[2], -1.0, 1.0))))
        if max_tilt_deg is not None and tilt > max_tilt_deg:
            raise CalibrationError(
                f"{place}: tilted {tilt:.0f}° from its nominal frame (gravity reads {np.round(gravity, 2).tolist()} "
                "m/s², expected about (0, 0, 9.81)); check how the sensor is mounted (hardware/README.md)"
            )
        rotation = _rotation_onto_z(up) if align_gravity else np.eye(3)
        result[place] = PlaceCalibration(
            _triple(bias),
            tuple(_triple(row) for row in rotation),
            tilt,
        )
    return Calibration(columns, result)


def _triple(values: FloatArray) -> tuple[float, float, float]:
    """A 3-vector as a tuple of floats (raises ValueError if it has another length)."""
    x, y, z = (float(v) for v in values)
    return x, y, z


def _rotation_onto_z(up: FloatArray) -> FloatArray:
    """Smallest rotation taking unit vector ``up`` onto (0, 0, 1) (Rodrigues' formula)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    cos = float(up @ z)
    if cos < -0.999999:  # upside down: any half turn about a horizontal axis will do
        return np.diag([1.0, -1.0, -1.0])
    skew = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    rotation: FloatArray = np.eye(3) + skew + skew @ skew / (1.0 + cos)
    return rotation
