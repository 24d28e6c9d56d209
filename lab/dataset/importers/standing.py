"""Whether a static lab trial is quiet standing, fit to give the sensors' up axis (``segment_v1`` alignment).

A trial whose feet do not travel is either quiet standing (a static or calibration trial) or a
range-of-motion trial (joints swung through on the spot). Both are useless as training windows, but
quiet standing is exactly what the ``segment_v1`` alignment takes gravity from; a range-of-motion
trial would feed the alignment's walking statistics with rotations about arbitrary axes and spoil its
medio-lateral axis. The IMU tells them apart with the alignment's own thresholds
(:class:`forcecast.edge.dsp.segment_alignment.AlignmentSettings`): for every sensor with both an accelerometer
and a gyroscope, the gyroscope RMS over the trailing ``activity_window_s`` must stay under
``min_activity_rads`` (what the alignment counts as walking) for all but :data:`MAX_MOVING_SHARE` of
the samples (stepping onto the plates), and the sensor must show at least ``min_standing_s`` of quiet
standing in bouts of ``min_standing_bout_s`` (gyroscope RMS under ``max_standing_rads``,
acceleration within ``max_standing_acc_error`` of g).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forcecast.edge.dsp.segment_alignment import DEFAULT_SETTINGS, AlignmentSettings
from forcecast.edge.schema import GRAVITY_MPS2, SENSOR_AXES, imu_column, parse_column
from forcecast.lab.dataset.importers.gait import runs
from forcecast.lab.dataset.trial import Stream

MAX_MOVING_SHARE = 0.2
"""A static trial may move (gyroscope RMS above the alignment's walking threshold) for this share of its samples:
stepping onto and off the plates, which the trailing 1 s window stretches to about 1.5 s at each end of a
10 s trial. Those samples join the alignment's walking statistics, a small part of a session's walking."""

POWER_CAP = 1e4
"""Squared angular rate cap, (rad/s)² (100 rad/s): keeps running sums exact to far below the thresholds."""


@dataclass(frozen=True)
class StandingCheck:
    """What the IMU of a static trial shows.

    Attributes
    ----------
    quiet
        Whether the trial is quiet standing for every sensor (``reason`` empty) or not.
    reason
        Why not (naming the sensor and the figure), empty when ``quiet``.
    standing_s
        Per sensor place: seconds of quiet standing in bouts long enough for the alignment.
    moving_share
        Per sensor place: share of samples the alignment would count as walking.
    """

    quiet: bool
    reason: str
    standing_s: dict[str, float]
    moving_share: dict[str, float]

    def describe(self) -> str:
        """One line for the import report: the shortest standing and the largest moving share."""
        if not self.standing_s:
            return self.reason
        place = min(self.standing_s, key=lambda p: self.standing_s[p])
        moving = max(self.moving_share.values())
        return (
            f"quiet standing {self.standing_s[place]:.1f} s (least: {place}) over {len(self.standing_s)} sensor(s), "
            f"moving {100.0 * moving:.0f} % at most"
        )


def check_quiet_standing(imu: Stream, settings: AlignmentSettings = DEFAULT_SETTINGS) -> StandingCheck:
    """Judge whether ``imu`` (one trial, sensor frames, m/s² and rad/s) is quiet standing.

    Parameters
    ----------
    imu
        The trial's IMU stream (format v1 columns); rows with NaN count as neither moving nor standing.
    settings
        The alignment's thresholds (``segment_v1`` by default).

    Returns
    -------
    StandingCheck
        ``quiet`` is true when every sensor with an accelerometer and a gyroscope stands still long
        enough and moves for at most :data:`MAX_MOVING_SHARE` of the samples.
    """
    if imu.time_s.size < 2:
        return StandingCheck(False, f"{imu.time_s.size} IMU sample(s): too short to show standing", {}, {})
    step = float(np.median(np.diff(imu.time_s)))
    if not (np.isfinite(step) and step > 0.0):
        return StandingCheck(False, f"IMU time does not increase (median step {step} s)", {}, {})
    rate = 1.0 / step
    specs = [parse_column(c) for c in imu.columns]
    places = dict.fromkeys(spec.place for spec in specs if spec is not None and spec.kind == "imu")
    standing_s: dict[str, float] = {}
    moving_share: dict[str, float] = {}
    for place in places:
        names = [imu_column(place, kind, axis) for kind in ("acc", "gyr") for axis in SENSOR_AXES]
        if not all(name in imu.columns for name in names):
            continue
        acc = imu.select(tuple(names[:3])).values
        gyr = imu.select(tuple(names[3:])).values
        rms = _trailing_rms(gyr, max(1, round(settings.activity_window_s * rate)))
        valid = np.isfinite(rms) & np.all(np.isfinite(acc), axis=1)
        moving = valid & (rms > settings.min_activity_rads)
        with np.errstate(over="ignore", invalid="ignore"):
            gravity_error = np.abs(np.linalg.norm(np.where(valid[:, None], acc, 0.0), axis=1) - GRAVITY_MPS2)
        quiet = valid & (rms < settings.max_standing_rads) & (gravity_error < settings.max_standing_acc_error)
        starts, stops = runs(quiet)
        lengths = (stops - starts) / rate
        standing_s[place] = float(lengths[lengths >= settings.min_standing_bout_s].sum())
        moving_share[place] = float(moving.sum()) / float(max(valid.sum(), 1))
    if not standing_s:
        return StandingCheck(False, "no sensor has both an accelerometer and a gyroscope mapped", {}, {})
    problems = []
    moving_places = [p for p, share in moving_share.items() if share > MAX_MOVING_SHARE]
    if moving_places:
        shares = ", ".join(f"{p} {100.0 * moving_share[p]:.0f} %" for p in moving_places)
        problems.append(
            f"moves (gyroscope RMS over {settings.min_activity_rads:g} rad/s) for more than "
            f"{100.0 * MAX_MOVING_SHARE:.0f} % of the trial: {shares}"
        )
    still_places = [p for p, t in standing_s.items() if t < settings.min_standing_s and p not in moving_places]
    if still_places:
        times = ", ".join(f"{p} {standing_s[p]:.1f} s" for p in still_places)
        problems.append(
            f"stands still for less than {settings.min_standing_s:g} s (bouts of {settings.min_standing_bout_s:g} s, "
            f"gyroscope RMS under {settings.max_standing_rads:g} rad/s, 1 g): {times}"
        )
    if problems:
        return StandingCheck(False, "not quiet standing: " + "; ".join(problems), standing_s, moving_share)
    return StandingCheck(True, "", standing_s, moving_share)


def _trailing_rms(gyr: np.ndarray, window: int) -> np.ndarray:
    """Gyroscope magnitude RMS over the trailing ``window`` rows (NaN where the window holds a non-finite row).

    The power is capped at :data:`POWER_CAP` before the running sum, so one huge glitch cannot hide the
    samples after it by cancellation (a capped sample is far above any threshold anyway).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # absurd values are not quiet: inf/NaN, never a warning
        power = np.sum(gyr * gyr, axis=1)
    bad = ~np.isfinite(power)
    sums = np.concatenate([[0.0], np.cumsum(np.where(bad, 0.0, np.minimum(power, POWER_CAP)))])
    bad_rows = np.concatenate([[0], np.cumsum(bad)])
    ends = np.arange(1, power.size + 1)
    starts = np.maximum(ends - window, 0)
    out = np.sqrt(np.maximum(sums[ends] - sums[starts], 0.0) / (ends - starts))
    out[bad_rows[ends] - bad_rows[starts] > 0] = np.nan
    return out
