"""Plate contacts, their assignment to one foot, and each leg's force with known zeros and unknowns.

A plate contact (vertical force above the threshold) is given to a foot only when it is *clean*:
exactly one foot touches the plate during it (a heel or toe marker at rest over the plate), and that
foot's heel and toe markers lie inside the plate. Anything else (two feet on one plate, a foot
partly off the plate, markers missing) leaves that stance unknown. A leg's force is then: the
plate's force over its clean contacts, 0 N where the foot is certainly in swing, NaN everywhere
else.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forcecast.lab.dataset.importers.gait import mask_at, runs
from forcecast.lab.dataset.importers.recording import FloatArray, Plate, Recording

MERGE_GAP_S = 0.03
"""Loaded runs of one plate closer than this are one contact."""
MIN_CONTACT_S = 0.05
TOUCH_MARGIN_M = 0.02
"""A marker this close outside a plate's edge counts as touching it (sole around the marker)."""
STILL_SPEED_MPS = 0.25
"""A heel or toe marker slower than this rests on the ground (a swinging foot moves at metres per second)."""
MIN_TOUCH_FRAMES = 3
MAX_AIR_GAP_S = 0.4
"""Longest stretch between a clean contact and the detected swing next to it that is taken as air."""
PAD_S = 0.02
"""Known 0 N kept either side of a clean contact (the plate reads nothing there)."""


@dataclass(frozen=True)
class Contact:
    """One plate contact.

    Attributes
    ----------
    plate
        Plate number.
    start, stop
        Force-sample indices (stop exclusive).
    side
        ``l`` or ``r`` when clean, else ``None``.
    reason
        Why it is not clean (empty when clean).
    touching
        The feet that may have been on the plate (both when the markers cannot tell).
    """

    plate: int
    start: int
    stop: int
    side: str | None
    reason: str = ""
    touching: tuple[str, ...] = ("l", "r")


def plate_contacts(plate: Plate, time_s: FloatArray, threshold_n: float) -> list[tuple[int, int]]:
    """Index ranges in which the plate is loaded (short gaps merged, blips dropped)."""
    starts, stops = runs(plate.force_n[:, 2] > threshold_n)
    merged: list[list[int]] = []
    for a, b in zip(starts, stops, strict=True):
        if merged and time_s[a] - time_s[merged[-1][1] - 1] < MERGE_GAP_S:
            merged[-1][1] = int(b)
        else:
            merged.append([int(a), int(b)])
    return [(a, b) for a, b in merged if time_s[b - 1] - time_s[a] >= MIN_CONTACT_S]


def assign_contacts(
    recording: Recording,
    swing: dict[str, NDArray[np.bool_] | None],
    threshold_n: float,
    margin_m: float,
) -> list[Contact]:
    """Every plate contact of the trial, each clean (with its foot) or not (with the reason)."""
    out = []
    t_force, t_marker = recording.force_time_s, recording.marker_time_s
    still = {role: _still(xyz, t_marker) for role, xyz in recording.markers.items()}
    for plate in recording.plates:
        for a, b in plate_contacts(plate, t_force, threshold_n):
            frames = np.flatnonzero((t_marker >= t_force[a]) & (t_marker <= t_force[b - 1]))
            out.append(_assign(plate, a, b, frames, recording, swing, still, margin_m))
    return out


def _still(xyz: FloatArray, time_s: FloatArray) -> NDArray[np.bool_]:
    """Frames in which a marker is (nearly) at rest: a foot on the ground rests on its heel or toe."""
    speed = np.full(time_s.size, np.inf)
    valid = np.flatnonzero(np.all(np.isfinite(xyz), axis=1))
    if valid.size >= 3:
        speed[valid] = np.linalg.norm(np.gradient(xyz[valid], time_s[valid], axis=0), axis=1)
    return speed < STILL_SPEED_MPS


def _assign(
    plate: Plate,
    a: int,
    b: int,
    frames: NDArray[np.intp],
    recording: Recording,
    swing: dict[str, NDArray[np.bool_] | None],
    still: dict[str, NDArray[np.bool_]],
    margin_m: float,
) -> Contact:
    if frames.size < 2:
        return Contact(plate.number, a, b, None, "no marker frames during the contact")
    touching: dict[str, NDArray[np.intp]] = {}
    for side in ("l", "r"):
        heel, toe = recording.markers.get(f"{side}_heel"), recording.markers.get(f"{side}_toe")
        if heel is None or toe is None:
            return Contact(plate.number, a, b, None, f"no heel and toe markers for the {side} foot")
        in_swing = swing.get(side)
        airborne = np.zeros(frames.size, dtype=bool) if in_swing is None else in_swing[frames]
        on_heel = plate.contains(heel[frames, :2], -TOUCH_MARGIN_M) & still[f"{side}_heel"][frames]
        on_toe = plate.contains(toe[frames, :2], -TOUCH_MARGIN_M) & still[f"{side}_toe"][frames]
        hits = frames[(on_heel | on_toe) & ~airborne]
        if hits.size >= MIN_TOUCH_FRAMES:
            touching[side] = hits
    if len(touching) == 2:
        return Contact(plate.number, a, b, None, "both feet on the plate")
    feet = tuple(touching)
    if not touching:
        return Contact(plate.number, a, b, None, "no foot found on the plate (markers missing or outside)")
    side, hits = next(iter(touching.items()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        heel = np.nanmedian(recording.markers[f"{side}_heel"][hits, :2], axis=0)
        toe = np.nanmedian(recording.markers[f"{side}_toe"][hits, :2], axis=0)
    if not (np.all(np.isfinite(heel)) and np.all(np.isfinite(toe))):
        return Contact(plate.number, a, b, None, f"{side} heel or toe marker missing during the contact", feet)
    if not (plate.contains(heel, margin_m) and plate.contains(toe, margin_m)):
        return Contact(plate.number, a, b, None, f"{side} foot partly off the plate", feet)
    return Contact(plate.number, a, b, side, "", feet)


def leg_axes(direction: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Lab-frame unit vectors (3D) of forward progression and of the walker's left."""
    forward = np.array([direction[0], direction[1], 0.0])
    left = np.array([-direction[1], direction[0], 0.0])
    return forward, left


def to_leg_frame(force: FloatArray, side: str, direction: FloatArray) -> FloatArray:
    """Lab-frame force ``(n, 3)`` on the subject as ``(v, ap, ml)`` with ml medial positive for that leg."""
    forward, left = leg_axes(direction)
    medial = left if side == "r" else -left
    return np.column_stack([force[:, 2], force @ forward, force @ medial])


def leg_forces(
    recording: Recording,
    contacts: list[Contact],
    swing_force_time: dict[str, NDArray[np.bool_]],
    direction: FloatArray,
    threshold_n: float,
    everywhere: bool,
) -> dict[str, FloatArray]:
    """Each leg's ``(v, ap, ml)`` force on ``recording.force_time_s``: known, 0 N in swing, NaN unknown."""
    n = recording.force_time_s.size
    out: dict[str, FloatArray] = {}
    pad = round(PAD_S * _rate(recording.force_time_s))
    for side in ("l", "r"):
        leg = np.full((n, 3), np.nan)
        if side in swing_force_time:
            leg[swing_force_time[side]] = 0.0
        if side in recording.foot_force:
            lab = recording.foot_force[side]
            if everywhere:
                leg = to_leg_frame(_zeroed(lab, threshold_n), side, direction)
            else:
                starts, stops = runs(lab[:, 2] > threshold_n)
                for a, b in zip(starts, stops, strict=True):
                    lo, hi = max(0, a - pad), min(n, b + pad)
                    leg[lo:hi] = to_leg_frame(_zeroed(lab[lo:hi], threshold_n), side, direction)
        out[side] = leg
    for contact in contacts:
        if contact.side is None:
            continue
        plate = next(p for p in recording.plates if p.number == contact.plate)
        lo, hi = max(0, contact.start - pad), min(n, contact.stop + pad)
        out[contact.side][lo:hi] = to_leg_frame(_zeroed(plate.force_n[lo:hi], threshold_n), contact.side, direction)
        if contact.side in swing_force_time:
            _air_around(out[contact.side], swing_force_time[contact.side], lo, hi, recording.force_time_s)
    for contact in contacts:  # an unclean contact is unknown even where swing was claimed
        if contact.side is None:
            for side in contact.touching:
                stance = out[side][contact.start : contact.stop]
                claimed_zero = np.all(stance == 0.0, axis=1)
                stance[claimed_zero] = np.nan
    return out


def _air_around(leg: FloatArray, swing: NDArray[np.bool_], lo: int, hi: int, time_s: FloatArray) -> None:
    """0 N between a clean contact and the swings either side of it.

    A clean contact is the whole stance of that foot: it landed on the plate at the force onset and
    left it at the offset, so from the end of the swing before until the onset, and from the offset
    until the next swing, the foot is in the air. Gaps longer than :data:`MAX_AIR_GAP_S` (a swing
    missed) are left unknown.
    """
    starts, stops = runs(swing)
    before = stops[stops <= lo]
    if before.size and time_s[lo] - time_s[before[-1] - 1] <= MAX_AIR_GAP_S:
        gap = leg[before[-1] : lo]
        gap[np.isnan(gap[:, 0])] = 0.0
    after = starts[starts >= hi]
    if after.size and time_s[after[0]] - time_s[hi - 1] <= MAX_AIR_GAP_S:
        gap = leg[hi : after[0]]
        gap[np.isnan(gap[:, 0])] = 0.0


def swing_on_force_time(
    recording: Recording,
    swing_markers: dict[str, NDArray[np.bool_] | None],
    swing_imu: dict[str, NDArray[np.bool_] | None],
) -> dict[str, NDArray[np.bool_]]:
    """Swing masks on the force time base, from markers where available, else from the IMU."""
    out = {}
    for side in ("l", "r"):
        mask = swing_markers.get(side)
        if mask is not None:
            out[side] = mask_at(recording.force_time_s, recording.marker_time_s, mask)
            continue
        imu_mask = swing_imu.get(side)
        if imu_mask is not None and recording.imu is not None:
            out[side] = mask_at(recording.force_time_s, recording.imu.time_s, imu_mask)
    return out


def _zeroed(force: FloatArray, threshold_n: float) -> FloatArray:
    out = np.array(force, copy=True)
    out[~(out[:, 2] >= threshold_n)] = 0.0
    return out


def _rate(time_s: FloatArray) -> float:
    return 1.0 / float(np.median(np.diff(time_s))) if time_s.size > 1 else 1.0
