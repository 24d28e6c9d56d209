"""Content checks of a trial: units, NaN runs, dropouts, force coverage.

Unit slips are caught by physics, not by guessing from column names: a still or walking body
feels about 1 g, a shank turns at a few rad/s, and a foot carries about body weight.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.schema import GRAVITY_MPS2, SENSOR_AXES, parse_column
from forcecast.lab.dataset.problems import Problem
from forcecast.lab.dataset.subjects import Subject
from forcecast.lab.dataset.trial import Stream, Trial

ACC_NORM_RANGE = (3.0, 30.0)
"""Plausible median |acc| in m/s² for a body-worn sensor (gravity plus motion)."""
GYR_P99_LIMIT = 40.0
"""rad/s: a shank in walking peaks near 6 rad/s; beyond this the unit is wrong."""
FORCE_PEAK_BW_RANGE = (0.3, 6.0)
"""Plausible 99th percentile of vertical force in body weights when a foot is loaded."""
GAP_FACTOR = 3.0
"""A time step longer than this many median steps is a dropout."""
ZERO_FORCE_RUN_S = 5.0
"""Exactly 0 N for this long in every axis looks like a missing plate written as 0 instead of NaN."""
MAX_LISTED = 5
LAG_WARN_S = 0.02
"""An estimated IMU lag beyond this (either way) is reported; the estimate itself is good to about 10 ms."""
LAG_MIN_CONTACTS = 3
ACC_LIMIT_MPS2 = 50.0 * GRAVITY_MPS2
"""|acc| beyond 50 g is not a body-worn sensor in walking (heel-strike peaks stay under 20 g): a spike."""
GYR_LIMIT_RADPS = 50.0
"""|gyr| beyond 50 rad/s (about 2900 deg/s) is beyond any limb: a spike."""
FORCE_LIMIT_BW = 20.0
"""|force| beyond 20 body weights is impossible in walking (running peaks near 3 BW)."""
FORCE_LIMIT_N = 20_000.0
"""|force| beyond 20 kN is impossible for any person, whatever the body mass."""
NEGATIVE_V_LIMIT_BW = 0.1
"""Vertical force below -0.1 BW is beyond plate noise: a foot cannot pull on the ground."""
NEGATIVE_V_LIMIT_N = 100.0
"""The same without a body mass: -100 N."""


def check_trial(trial: Trial, subject: Subject | None) -> list[Problem]:
    """All content problems of one trial (structure is already checked by ``read_trial``)."""
    problems = _imu_problems(trial.imu)
    problems += _gap_problems(trial.imu)
    if trial.force is not None:
        if trial.force.source != trial.imu.source:
            problems += _gap_problems(trial.force)
        problems += _force_problems(trial.force, subject)
    return problems


def lag_problems(trial: Trial, lag_s: float, contacts: int) -> list[Problem]:
    """A warning when the IMU clock is found to lag (or lead) the force clock by more than :data:`LAG_WARN_S`.

    ``lag_s`` and ``contacts`` come from :func:`forcecast.lab.dataset.importers.sync.trial_lag` (force onsets
    against the foot/shank accelerometer's heel-strike shocks).
    """
    if trial.force is None or contacts < LAG_MIN_CONTACTS or not abs(lag_s) > LAG_WARN_S:
        return []
    return [
        Problem(
            trial.imu.source,
            f"the IMU lags the force by {1000 * lag_s:.0f} ms (heel-strike shocks vs force onsets at {contacts} "
            "contacts): correct it (forcecast data import --imu-lag auto) or the model learns a delayed force",
            column="time_s",
            severity="warning",
        )
    ]


def _imu_problems(imu: Stream) -> list[Problem]:
    problems: list[Problem] = []
    for j, column in enumerate(imu.columns):
        problems += _nan_runs(imu.values[:, j], imu.source, column)
        problems += _infinities(imu.values[:, j], imu.source, column)
    groups: dict[tuple[str, str], list[int]] = {}
    for j, column in enumerate(imu.columns):
        spec = parse_column(column)
        if spec is not None:
            groups.setdefault((spec.place, spec.quantity), []).append(j)
    for (place, quantity), index in groups.items():
        if len(index) != len(SENSOR_AXES):
            continue
        block = imu.values[:, index]
        finite = block[np.all(np.isfinite(block), axis=1)]
        if finite.shape[0] == 0:
            continue
        column = imu.columns[index[0]]
        if quantity == "acc":
            units = _acc_units(finite, imu.source, place, column)
        else:
            units = _gyr_units(finite, imu.source, place, column)
        problems += units or _impossible_imu(block, imu.source, place, quantity, column)
    return problems


def _impossible_imu(block: NDArray[np.float64], source: str, place: str, quantity: str, column: str) -> list[Problem]:
    """Samples whose magnitude no body-worn sensor reaches (in units that otherwise look right)."""
    limit, unit = (ACC_LIMIT_MPS2, "m/s² (50 g)") if quantity == "acc" else (GYR_LIMIT_RADPS, "rad/s")
    with np.errstate(over="ignore", invalid="ignore"):
        norm = np.linalg.norm(np.where(np.isfinite(block), block, 0.0), axis=1)
    rows = np.flatnonzero(norm > limit)
    if rows.size == 0:
        return []
    return [
        Problem(
            source,
            f"{place}_{quantity} magnitude is physically impossible in {rows.size} sample(s) (largest "
            f"{float(np.max(norm[rows])):.3g}, limit {limit:g} {unit}; first at {_rows_text(rows)}): a spike or "
            "a corrupt sample; remove it or write NaN",
            int(rows[0]) + 1,
            column,
        )
    ]


def _infinities(values: NDArray[np.float64], source: str, column: str, what: str = "IMU") -> list[Problem]:
    rows = np.flatnonzero(np.isinf(values))
    if rows.size == 0:
        return []
    return [
        Problem(
            source,
            f"{rows.size} infinite {what} value(s) (inf) at {_rows_text(rows)}: a sensor cannot read infinity; "
            "write NaN for a missing sample",
            int(rows[0]) + 1,
            column,
        )
    ]


def _rows_text(rows: NDArray[np.intp]) -> str:
    """``row 5, row 9 and 3 more`` (1-based data rows)."""
    listed = ", ".join(f"row {int(r) + 1}" for r in rows[:MAX_LISTED])
    return listed + (f" and {rows.size - MAX_LISTED} more" if rows.size > MAX_LISTED else "")


def _acc_units(block: NDArray[np.float64], source: str, place: str, column: str) -> list[Problem]:
    norm = np.linalg.norm(block, axis=1)
    median = float(np.median(norm))
    if ACC_NORM_RANGE[0] <= median <= ACC_NORM_RANGE[1]:
        return []
    if 0.3 <= median < ACC_NORM_RANGE[0]:
        hint = "looks like g: multiply by 9.80665"
    elif 3000 <= median <= 30000:
        hint = "looks like mm/s² or milli-g: about 1000× too large"
    elif median < 0.3:
        hint = "far too small: is gravity removed? format v1 keeps gravity in acc"
    else:
        hint = "far too large"
    row = int(np.argmax(np.abs(norm - GRAVITY_MPS2))) + 1
    return [
        Problem(source, f"{place}_acc median magnitude is {median:.4g}, expected about 9.8 m/s² ({hint})", row, column)
    ]


def _gyr_units(block: NDArray[np.float64], source: str, place: str, column: str) -> list[Problem]:
    p99 = float(np.percentile(np.abs(block), 99))
    if p99 <= GYR_P99_LIMIT:
        return []
    hint = "looks like mrad/s: about 1000× too large" if p99 > 2000 else "looks like deg/s: multiply by π/180"
    row = int(np.argmax(np.max(np.abs(block), axis=1))) + 1
    return [Problem(source, f"{place}_gyr 99th percentile is {p99:.4g}, expected rad/s ({hint})", row, column)]


def _force_problems(force: Stream, subject: Subject | None) -> list[Problem]:
    problems: list[Problem] = []
    for j, column in enumerate(force.columns):
        problems += _infinities(force.values[:, j], force.source, column, "force")
        problems += _impossible_force(force.values[:, j], force.source, column, subject)
    for side in sorted({c[0] for c in force.columns}):
        v_name = f"{side}_grf_v"
        if v_name not in force.columns:
            continue
        v = force.column(v_name)
        finite = v[np.isfinite(v)]
        if finite.size == 0:
            problems.append(
                Problem(force.source, "no force samples at all (every value NaN)", column=v_name, severity="warning")
            )
            continue
        problems += _zero_runs(force, side)
        problems += _negative_vertical(v, force.source, v_name, subject)
        if subject is None:
            continue
        loaded = finite[finite > 0]
        if loaded.size == 0 and np.any(finite < 0):
            problems.append(
                Problem(force.source, "vertical force is never positive: is 'v' pointing down?", column=v_name)
            )
        if loaded.size == 0:
            continue
        peak_bw = float(np.percentile(loaded, 99)) / subject.body_weight_n
        if not FORCE_PEAK_BW_RANGE[0] <= peak_bw <= FORCE_PEAK_BW_RANGE[1]:
            hint = _force_unit_hint(float(np.percentile(loaded, 99)), subject.body_weight_n)
            row = int(np.nanargmax(v)) + 1
            problems.append(
                Problem(
                    force.source,
                    f"vertical force peaks at {peak_bw:.3g} body weights for {subject.body_mass_kg:g} kg "
                    f"(expected {FORCE_PEAK_BW_RANGE[0]:g}..{FORCE_PEAK_BW_RANGE[1]:g}; {hint})",
                    row,
                    v_name,
                )
            )
    return problems


def _impossible_force(values: NDArray[np.float64], source: str, column: str, subject: Subject | None) -> list[Problem]:
    """Force samples beyond 20 kN, or beyond 20 body weights when the body mass is known."""
    limit = FORCE_LIMIT_N if subject is None else min(FORCE_LIMIT_N, FORCE_LIMIT_BW * subject.body_weight_n)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(np.isfinite(values) & (np.abs(values) > limit))
    if rows.size == 0:
        return []
    why = (
        f"{FORCE_LIMIT_N:g} N"
        if subject is None
        else f"{limit:.4g} N = min({FORCE_LIMIT_BW:g} BW, {FORCE_LIMIT_N:g} N)"
    )
    return [
        Problem(
            source,
            f"force is physically impossible in {rows.size} sample(s) (largest |value| "
            f"{float(np.max(np.abs(values[rows]))):.3g} N, limit {why}; first at {_rows_text(rows)}): a spike, a "
            "corrupt sample or a unit slip",
            int(rows[0]) + 1,
            column,
        )
    ]


def _negative_vertical(v: NDArray[np.float64], source: str, column: str, subject: Subject | None) -> list[Problem]:
    """Vertical force pulling down beyond plate noise (a warning: a zero offset or a flipped axis)."""
    limit = NEGATIVE_V_LIMIT_N if subject is None else NEGATIVE_V_LIMIT_BW * subject.body_weight_n
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(np.isfinite(v) & (v < -limit))
    if rows.size == 0:
        return []
    return [
        Problem(
            source,
            f"vertical force below -{limit:.4g} N in {rows.size} sample(s) (lowest {float(np.min(v[rows])):.4g} N; "
            f"first at {_rows_text(rows)}): a foot cannot pull on the ground; check the plate's zero offset",
            int(rows[0]) + 1,
            column,
            "warning",
        )
    ]


def _force_unit_hint(peak: float, body_weight_n: float) -> str:
    """Name the unit slip that best explains a vertical force peak (a walking peak is ≈1.1 BW)."""
    hypotheses = {
        "looks like mN: about 1000× too large": peak / 1000.0 / body_weight_n,
        "looks like kN: about 1000× too small": peak * 1000.0 / body_weight_n,
        "looks like body weights: multiply by body mass × 9.81": peak,
        "looks like kgf: multiply by 9.81": peak * GRAVITY_MPS2 / body_weight_n,
    }
    best, value = min(hypotheses.items(), key=lambda item: abs(np.log(max(item[1], 1e-12) / 1.1)))
    if FORCE_PEAK_BW_RANGE[0] <= value <= FORCE_PEAK_BW_RANGE[1]:
        return best
    return "check the unit and the body mass in subjects.csv"


def _zero_runs(force: Stream, side: str) -> list[Problem]:
    columns = [c for c in force.columns if c.startswith(side + "_")]
    block = np.column_stack([force.column(c) for c in columns])
    zero = np.all(block == 0.0, axis=1)
    starts, stops = _runs(zero)
    rate = force.rate_hz
    for start, stop in zip(starts, stops, strict=True):
        if (stop - start) / rate >= ZERO_FORCE_RUN_S:
            return [
                Problem(
                    force.source,
                    f"force is exactly 0 N on all axes for {(stop - start) / rate:.1f} s (rows {start + 1}-{stop}): "
                    "if no foot was on the plate, write NaN (missing), not 0 (a real value)",
                    start + 1,
                    columns[0],
                    "warning",
                )
            ]
    return []


def _nan_runs(values: NDArray[np.float64], source: str, column: str) -> list[Problem]:
    starts, stops = _runs(np.isnan(values))
    if starts.size == 0:
        return []
    listed = ", ".join(
        f"rows {a + 1}-{b}" if b - a > 1 else f"row {a + 1}"
        for a, b in zip(starts[:MAX_LISTED], stops[:MAX_LISTED], strict=True)
    )
    more = f" and {starts.size - MAX_LISTED} more" if starts.size > MAX_LISTED else ""
    total = int(np.sum(stops - starts))
    return [
        Problem(
            source,
            f"{total} missing IMU sample(s) (NaN) in {starts.size} run(s): {listed}{more}",
            int(starts[0]) + 1,
            column,
        )
    ]


def _gap_problems(stream: Stream) -> list[Problem]:
    steps = np.diff(stream.time_s)
    if steps.size == 0:
        return []
    median = float(np.median(steps))
    gaps = np.flatnonzero(steps > GAP_FACTOR * median)
    if gaps.size == 0:
        return []
    longest = int(gaps[np.argmax(steps[gaps])])
    return [
        Problem(
            stream.source,
            f"{gaps.size} dropout(s) in time (steps over {GAP_FACTOR:g}× the median {median * 1000:.3g} ms); "
            f"longest {steps[longest]:.3f} s after {stream.time_s[longest]:.3f} s",
            int(gaps[0]) + 2,
            "time_s",
            "warning",
        )
    ]


def _runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start (inclusive) and stop (exclusive) indices of runs of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
