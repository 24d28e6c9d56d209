"""Gait events of a lab trial: walking direction, and when each foot is certainly in the air (swing).

Swing is found from the foot markers when there are some (the foot moves fast forward), else from
the shank (or foot) gyroscope (the leg swings through fast). Both rules are conservative: they
mark only the middle of swing, so that no sample of stance is ever taken for 0 N; the edges of
swing stay unknown.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from forcecast.lab.dataset.importers.recording import FloatArray, Recording, up_rotation
from forcecast.lab.dataset.trial import Stream

MIN_WALK_M = 0.5
"""A trial whose feet move less than this is not walking (static, range of motion)."""
SWING_SPEED_FRACTION = 0.45
"""Swing: foot speed above this share of its 95th percentile (markers)."""
MIN_SWING_SPEED_MPS = 0.6
GYRO_SWING_FRACTION = 0.6
"""Swing: shank angular speed above this share of its 95th percentile (no markers)."""
MIN_SWING_S = 0.08
SWING_TRIM_S = 0.03
"""Gyroscope swing runs are shortened by this much at each end."""

_AXIS_VECTORS = {"x": 0, "y": 1, "z": 2}


def foot_centre(recording: Recording, side: str) -> FloatArray | None:
    """Mean of the heel and toe markers of one foot (either one alone where the other is missing)."""
    parts = [recording.markers[k] for k in (f"{side}_heel", f"{side}_toe") if k in recording.markers]
    if not parts:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames where both markers are missing stay NaN
        return np.nanmean(np.stack(parts), axis=0)


def walking_direction(recording: Recording, setting: str, up_axis: str) -> tuple[FloatArray | None, str]:
    """Unit vector (lab x, y) of progression and how it was found.

    Returns ``(None, reason)`` when the trial shows no walking (feet moving less than
    :data:`MIN_WALK_M`) or when nothing tells the direction.
    """
    if setting != "auto":
        vector = np.zeros(3)
        vector[_AXIS_VECTORS[setting[1]]] = 1.0 if setting[0] == "+" else -1.0
        turned = up_rotation(up_axis) @ vector
        if abs(turned[2]) > 0.5:
            raise ValueError(f"walking_direction {setting!r} is the up axis")
        return turned[:2] / np.linalg.norm(turned[:2]), f"set to {setting} in the mapping"
    centres = [c for side in ("l", "r") if (c := foot_centre(recording, side)) is not None]
    if centres:
        track = np.nanmean(np.stack(centres), axis=0)[:, :2]
        valid = np.flatnonzero(np.all(np.isfinite(track), axis=1))
        if valid.size >= 4:
            span = max(1, valid.size // 5)
            start = np.median(track[valid[:span]], axis=0)
            stop = np.median(track[valid[-span:]], axis=0)
            moved = stop - start
            if np.linalg.norm(moved) < MIN_WALK_M:
                return (
                    None,
                    f"static: the feet move {np.linalg.norm(moved):.2f} m (no walking; standing still serves to weigh)",
                )
            return moved / np.linalg.norm(moved), "from the foot markers"
    points = _cop_sequence(recording)
    if len(points) >= 2:
        moved = points[-1] - points[0]
        if np.linalg.norm(moved) >= 0.3:
            return moved / np.linalg.norm(moved), "from the sequence of centres of pressure"
    return (
        None,
        "cannot tell the walking direction (no foot markers, one plate contact or none): set [lab] walking_direction",
    )


def _cop_sequence(recording: Recording) -> list[FloatArray]:
    events: list[tuple[float, FloatArray]] = []
    sources = [p.cop_m for p in recording.plates] + list(recording.foot_cop.values())
    forces = [p.force_n for p in recording.plates] + [recording.foot_force[s] for s in recording.foot_cop]
    for cop, force in zip(sources, forces, strict=True):
        loaded = force[:, 2] > 20.0
        starts, stops = runs(loaded)
        for a, b in zip(starts, stops, strict=True):
            if b - a >= 3 and np.isfinite(cop[a:b, :2]).any():
                events.append((float(recording.force_time_s[a]), np.nanmedian(cop[a:b, :2], axis=0)))
    events.sort(key=lambda e: e[0])
    return [p for _, p in events]


def swing_from_markers(recording: Recording, side: str, direction: FloatArray) -> NDArray[np.bool_] | None:
    """Marker frames in which the foot is certainly in swing (fast forward motion), or ``None`` without markers."""
    centre = foot_centre(recording, side)
    if centre is None or recording.marker_time_s.size < 5:
        return None
    along = centre[:, :2] @ direction
    speed = np.full(along.size, np.nan)
    valid = np.isfinite(along)
    index = np.flatnonzero(valid)
    if index.size < 5:
        return None
    speed[index] = np.gradient(along[index], recording.marker_time_s[index])
    # A gap between valid frames is not motion we saw: no swing claimed across it.
    gaps = np.diff(index) > 1
    speed[index[1:][gaps]] = np.nan
    speed[index[:-1][gaps]] = np.nan
    finite = speed[np.isfinite(speed)]
    if finite.size == 0:
        return None
    threshold = max(MIN_SWING_SPEED_MPS, SWING_SPEED_FRACTION * float(np.percentile(finite, 95)))
    with np.errstate(invalid="ignore"):
        swing = speed > threshold
    return _min_runs(swing, recording.marker_time_s, MIN_SWING_S, 0.0)


def swing_from_gyro(imu: Stream, side: str) -> NDArray[np.bool_] | None:
    """IMU samples in which the leg is certainly in swing, from the shank (else foot) gyroscope norm."""
    for segment in ("shank", "foot"):
        names = [f"{side}_{segment}_gyr_{a}" for a in "xyz"]
        if all(n in imu.columns for n in names):
            norm = np.linalg.norm(np.column_stack([imu.column(n) for n in names]), axis=1)
            finite = norm[np.isfinite(norm)]
            if finite.size < 10:
                return None
            threshold = GYRO_SWING_FRACTION * float(np.percentile(finite, 95))
            with np.errstate(invalid="ignore"):
                swing = norm > threshold
            return _min_runs(swing, imu.time_s, MIN_SWING_S, SWING_TRIM_S)
    return None


def mask_at(times: FloatArray, mask_times: FloatArray, mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A mask defined on ``mask_times`` evaluated at ``times`` (true only inside true runs)."""
    out = np.zeros(times.size, dtype=bool)
    starts, stops = runs(mask)
    half = 0.5 * float(np.median(np.diff(mask_times))) if mask_times.size > 1 else 0.0
    for a, b in zip(starts, stops, strict=True):
        lo, hi = mask_times[a] - half, mask_times[b - 1] + half
        out[np.searchsorted(times, lo) : np.searchsorted(times, hi, side="right")] = True
    return out


def runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start (inclusive) and stop (exclusive) indices of runs of True."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _min_runs(mask: NDArray[np.bool_], time_s: FloatArray, min_s: float, trim_s: float) -> NDArray[np.bool_]:
    out = np.zeros_like(mask)
    starts, stops = runs(mask)
    for a, b in zip(starts, stops, strict=True):
        lo, hi = time_s[a] + trim_s, time_s[b - 1] - trim_s
        if hi - lo >= min_s:
            out[np.searchsorted(time_s, lo) : np.searchsorted(time_s, hi, side="right")] = True
    return out
