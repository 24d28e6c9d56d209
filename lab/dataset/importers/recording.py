"""What an importer reads from one lab file, before gait events, contacts and sync are worked out.

All quantities are SI and the lab frame is turned so that ``z`` points up (``x``, ``y`` horizontal,
right-handed). IMU channels are in each sensor's own frame, named as in format v1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from forcecast.lab.dataset.trial import Stream

FloatArray = NDArray[np.float64]
HOLD_FRACTION = 0.5
"""A channel block is sample-and-hold when more than this share of rows repeat the previous row."""


@dataclass(frozen=True)
class Plate:
    """One force plate over a trial (lab frame, z up).

    Attributes
    ----------
    number
        1-based plate number as in the file.
    corners_m
        Shape ``(4, 3)``: the plate's corners.
    force_n
        Shape ``(n, 3)``: force on the subject (z up positive when loaded).
    cop_m
        Shape ``(n, 3)``: centre of pressure (NaN when unloaded).
    """

    number: int
    corners_m: FloatArray
    force_n: FloatArray
    cop_m: FloatArray

    def contains(self, xy: FloatArray, margin_m: float = 0.0) -> NDArray[np.bool_]:
        """Whether points ``(k, 2)`` lie inside the plate's outline shrunk by ``margin_m``."""
        lo = self.corners_m[:, :2].min(axis=0) + margin_m
        hi = self.corners_m[:, :2].max(axis=0) - margin_m
        with np.errstate(invalid="ignore"):
            return np.all((xy >= lo) & (xy <= hi), axis=-1)


@dataclass(frozen=True)
class Recording:
    """One lab file's content, normalised.

    Attributes
    ----------
    source
        The file (for messages).
    imu
        IMU stream (format v1 channels, sensor frames), de-duplicated if it was sample-and-hold;
        ``None`` if the file has no IMU channels mapped.
    force_time_s
        Time base of ``plates`` / ``foot_force``.
    plates
        Force plates (unassigned contacts), for C3D and per-plate tables.
    foot_force, foot_cop
        Force already assigned to each foot (``l``/``r``), lab frame, e.g. from OpenSim files.
    marker_time_s, markers
        Foot markers (``l_heel``, ``l_toe``, ``r_heel``, ``r_toe``), shape ``(m, 3)``, NaN when missing.
    notes
        What was done on reading (e.g. sample-and-hold removed), for the import report.
    """

    source: str
    imu: Stream | None
    force_time_s: FloatArray
    plates: tuple[Plate, ...] = ()
    foot_force: dict[str, FloatArray] = field(default_factory=dict)
    foot_cop: dict[str, FloatArray] = field(default_factory=dict)
    marker_time_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    markers: dict[str, FloatArray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def up_rotation(up_axis: str) -> FloatArray:
    """Rotation taking lab coordinates with ``up_axis`` up to coordinates with z up (right-handed)."""
    if up_axis == "z":
        return np.eye(3)
    if up_axis == "y":  # (x, y, z) -> (x, -z, y): OpenSim's y-up becomes z-up, x stays forward
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    if up_axis == "x":
        return np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    raise ValueError(f"up axis must be x, y or z, got {up_axis!r}")


def missing_markers(points: FloatArray) -> FloatArray:
    """Markers with exact zeros on all three axes (how many systems write a gap) turned into NaN."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[np.all(out == 0.0, axis=-1)] = np.nan
    return out


def remove_sample_and_hold(
    time_s: FloatArray, values: FloatArray, source: str = ""
) -> tuple[FloatArray, FloatArray, float | None]:
    """Undo sample-and-hold: channels recorded at a high (analog) rate that repeat a slower sensor's samples.

    A row is a new sample when any channel differs from the row before. When most rows are
    repeats, the new samples' times are fitted by a regular grid ``t0 + k / rate`` (the sensor's own
    clock) and the held signal is read once per grid step, so the resampler downstream is fed the
    sensor's samples rather than a staircase.

    Parameters
    ----------
    time_s
        Analog sample times, shape ``(n,)``.
    values
        Shape ``(n, c)``; NaN allowed (a row with NaN counts as a new sample).
    source
        For messages.

    Returns
    -------
    time_s, values, rate_hz
        The de-duplicated samples and the sensor's estimated rate, or the input unchanged and
        ``None`` when the block is not sample-and-hold.
    """
    if values.shape[0] < 4:
        return time_s, values, None
    same = np.all(values[1:] == values[:-1], axis=1)
    if float(np.mean(same)) <= HOLD_FRACTION:
        return time_s, values, None
    changes = np.flatnonzero(~same) + 1  # rows where a new sample shows up (row 0 is just the record's start)
    if changes.size < 2:  # a dead (constant) sensor: nothing to recover; the dataset check reports it
        return time_s, values, None
    shown = time_s[changes]
    # The sensor's period is not a whole number of analog samples (e.g. 104 Hz held at 1 kHz gives
    # steps of 9 and 10 samples): take it from the median step first, then refine it over the whole
    # recording, counting any step of about two periods as a repeated true value.
    step = float(np.median(np.diff(shown)))
    k = np.cumsum(np.concatenate([[0.0], np.maximum(1.0, np.rint(np.diff(shown) / step))]))
    step = float(shown[-1] - shown[0]) / float(k[-1])
    k = np.rint((shown - shown[0]) / step)
    # Least-squares line through (k, time): the sensor's own period and phase.
    slope, intercept = np.polyfit(k, shown, 1)
    # The value held at the record's start is the sample just before the first change, unless the
    # system wrote zeros until the sensor's stream began.
    first_k = 0 if np.all(values[0] == 0.0) else -1
    grid_t = intercept + slope * np.arange(first_k, int(k[-1]) + 1)
    dt_analog = float(np.median(np.diff(time_s)))
    # Each grid step reads the row where its sample showed up (the nearest change, within half a
    # period); a step without a change (the sensor repeated a value) reads the held value.
    nearest = np.clip(np.searchsorted(shown, grid_t), 1, shown.size - 1)
    nearest = np.where(np.abs(shown[nearest - 1] - grid_t) < np.abs(shown[nearest] - grid_t), nearest - 1, nearest)
    held = np.clip(np.searchsorted(time_s, grid_t + 1.5 * dt_analog, side="right") - 1, 0, time_s.size - 1)
    index = np.where(np.abs(shown[nearest] - grid_t) < 0.5 * slope, changes[nearest], held)
    keep = grid_t <= time_s[-1]
    return grid_t[keep], values[index[keep]], 1.0 / float(slope)


def held_imu(
    time_s: FloatArray, values: FloatArray, columns: tuple[str, ...], source: str = ""
) -> tuple[Stream, str | None]:
    """An IMU stream from analog channels, with sample-and-hold undone per sensor.

    Wireless sensors each hold their own samples, so their steps need not fall on the same analog
    rows: each place (its six channels) is de-duplicated on its own. When every place is held at
    (nearly) one rate, all are put on the grid of the place with the most samples, each taking its
    own sample nearest in time (at most half a period away, never interpolated). When none is held,
    the channels are kept at the analog rate.

    Returns
    -------
    stream, note
        The IMU stream (format v1 columns) and a note for the import report (``None`` if not held).
    """
    places: dict[str, list[int]] = {}
    for j, column in enumerate(columns):
        places.setdefault(column.rsplit("_", 2)[0], []).append(j)
    found = {p: remove_sample_and_hold(time_s, values[:, index], source) for p, index in places.items()}
    rates = [rate for _, _, rate in found.values() if rate is not None]
    if not rates:
        return Stream(time_s, columns, values, source), None
    if len(rates) != len(places) or max(rates) > 1.01 * min(rates):
        shown = ", ".join(f"{p} {r:.2f} Hz" if r else f"{p} not held" for p, (_, _, r) in found.items())
        raise ValueError(f"{source}: IMU channels are held at different rates ({shown}): cannot share one time base")
    reference = max(found, key=lambda p: found[p][0].size)
    grid = found[reference][0]
    out = np.empty((grid.size, len(columns)))
    for place, index in places.items():
        t, v, rate = found[place]
        assert rate is not None
        k = np.clip(np.searchsorted(t, grid), 1, t.size - 1)
        k = np.where(np.abs(t[k - 1] - grid) <= np.abs(t[k] - grid), k - 1, k)
        block = v[k].copy()
        block[np.abs(t[k] - grid) > 0.5 / rate + 1e-9] = np.nan  # a place that started late or ended early
        out[:, index] = block
    complete = np.flatnonzero(np.all(np.isfinite(out), axis=1))
    if complete.size == 0:
        raise ValueError(f"{source}: the IMU sensors' samples never overlap in time")
    span = slice(int(complete[0]), int(complete[-1]) + 1)  # where every sensor has its samples
    grid, out = grid[span], out[span]
    note = (
        f"IMU channels were sample-and-hold: kept the sensors' own samples at {1.0 / np.median(np.diff(grid)):.2f} Hz"
    )
    return Stream(grid, columns, out, source), note
