"""Daily gait-load analytics from the host store (pandas): what a physiotherapist reads in the report.

A day is cut on the host's clock in the patient's time zone. Per day:

- **Activity**: steps (stance phases of the monitored legs), bouts (runs of steps without a pause
  longer than ``bout_gap_s``, at least ``min_bout_steps``), walking time (sum of bout durations),
  cadence (120 / median stride time within bouts, steps per minute for both feet).
- **Load per step**: the highest vertical peak per step (the larger of its two peaks; BW and N), the
  first vertical peak (loading response), loading rate, vertical impulse, peak medial-lateral force;
  the day's cumulative vertical impulse.
- **Gait phases** (see :func:`gait_phases`): stance time, and stance, swing and double-support
  percentages of the gait cycle, from the contact times of both legs within bouts.
- **Asymmetry** (R − L) / max(R, L) of the mean first peak, when both legs were monitored.
- **Data quality**: recorded time (the span of the device's GRF summaries: the time it was worn and
  running), gaps without data, quality events (dropouts, NaN runs, saturation, clock jumps), flagged
  steps, biofeedback cues.
- **Trend** against the patient's own baseline: the median of the previous ``baseline_days`` days
  with data (at least ``baseline_min_days`` of them) and a band of ``band_mads`` scaled MADs (at least
  ``band_min_fraction`` of the median); a day outside the band is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forcecast.edge.records import WAVEFORM_AXES, EventRecord, EventType, StepRecord, SummaryRecord
from forcecast.host_app.store import DatedRecord

R = TypeVar("R", StepRecord, SummaryRecord, EventRecord)

QUALITY_EVENTS: tuple[str, ...] = tuple(
    str(e)
    for e in (
        EventType.DROPOUT,
        EventType.NAN,
        EventType.SATURATION,
        EventType.CLOCK_JUMP,
        EventType.CALIBRATION_SKIPPED,
    )
)
TREND_METRICS: dict[str, str] = {
    "steps": "steps",
    "walking_min": "walking time (min)",
    "peak_bw_mean": "highest vertical peak per step, day mean (BW)",
    "loading_rate_bw_s_mean": "loading rate, day mean (BW/s)",
    "load_bws": "cumulative vertical impulse (BW·s)",
    "asymmetry": "first-peak asymmetry (R−L)/max",
}
HIGHER = "higher"
LOWER = "lower"
TREND_MEANING: dict[str, dict[str, tuple[str, str]]] = {
    "steps": {HIGHER: ("good", "more walking than usual"), LOWER: ("alert", "less walking than usual")},
    "walking_min": {HIGHER: ("good", "more walking than usual"), LOWER: ("alert", "less walking than usual")},
    "peak_bw_mean": {
        HIGHER: ("alert", "more force through the leg per step than usual"),
        LOWER: ("info", "less force per step than usual (offloading; ask whether it is pain)"),
    },
    "loading_rate_bw_s_mean": {
        HIGHER: ("alert", "harder heel strikes than usual"),
        LOWER: ("good", "softer heel strikes than usual"),
    },
    "load_bws": {
        HIGHER: ("info", "more total load than usual (more walking, or heavier steps)"),
        LOWER: ("info", "less total load than usual"),
    },
}
"""What a day above (``higher``) or below (``lower``) the patient's usual range means, per trend metric:
``(flag level, words)``. Asymmetry is judged by its distance from zero (see :func:`add_trend_flags`)."""
FLAG_LEVELS: dict[str, str] = {
    "alert": "concerning: look at this",
    "caution": "data quality: the figures may be incomplete",
    "good": "good news",
    "info": "for information",
}
"""Flag levels, most pressing first, and what each means (the report's legend)."""


class RecordSource(Protocol):
    """Where the analytics read a patient's records: the host store, the clinic's database, a list in memory.

    :class:`~forcecast.host_app.store.HostStore` satisfies it, and so does :class:`InMemoryRecords`.
    """

    def dated_records(
        self, patient_id: str, record_type: type[R], start: float, end: float, waveforms: bool = False, /
    ) -> list[DatedRecord[R]]:
        """One patient's records of a type with ``start <= t_host < end``, ordered by ``t_host``.

        The type is ``StepRecord``, ``SummaryRecord`` or ``EventRecord``; a step's ``waveform`` is filled
        only when ``waveforms`` is true.
        """
        ...

    def devices(self) -> list[dict[str, Any]]:
        """Every device known, as dicts.

        Each has ``device_id`` and, where known, ``info`` (firmware ...), ``last_seen_utc`` and
        ``clock_offset_ms`` (what the report's provenance table shows).
        """
        ...


class InMemoryRecords:
    """A :class:`RecordSource` over records already in memory (e.g. read from the clinic's database).

    Parameters
    ----------
    records
        ``(patient_id, DatedRecord)`` pairs, of any record type, in any order.
    devices
        What :meth:`devices` answers (see :meth:`RecordSource.devices`).
    """

    def __init__(
        self, records: Iterable[tuple[str, DatedRecord[Any]]], devices: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        self._records: dict[tuple[str, type], list[DatedRecord[Any]]] = {}
        for patient_id, dated in records:
            self._records.setdefault((patient_id, type(dated.record)), []).append(dated)
        for found in self._records.values():
            found.sort(key=lambda dated: dated.t_host)
        self._devices = [dict(d) for d in devices]

    def dated_records(
        self, patient_id: str, record_type: type[R], start: float, end: float, waveforms: bool = False, /
    ) -> list[DatedRecord[R]]:
        """The patient's records of ``record_type`` with ``start <= t_host < end`` (waveforms dropped unless asked)."""
        found = self._records.get((patient_id, record_type), [])
        chosen = [d for d in found if start <= d.t_host < end]
        if not waveforms:
            chosen = [DatedRecord(d.device_id, d.t_host, d.record) if d.waveform is not None else d for d in chosen]
        return chosen

    def devices(self) -> list[dict[str, Any]]:
        """The devices given at construction (copies)."""
        return [dict(d) for d in self._devices]


Side = Literal["left", "right", "none"]


@dataclass(frozen=True)
class PatientContext:
    """What the report shows about the patient at its top (every field optional: ``None`` = unknown).

    Attributes
    ----------
    affected_side
        ``left``, ``right`` or ``none`` (the leg under treatment; marked in the plots).
    hka_deg
        Hip-knee-ankle angle of the affected knee (varus positive), the model's knee-alignment feature.
    body_mass_kg, height_m
        Static features; body mass converts BW to newtons.
    feedback_limit_bw
        Biofeedback cue limit on the vertical force (BW); drawn on the force plots.
    source
        Where the context came from, in words (``"the clinic's patient record"``, ``"the step records"``).
    """

    affected_side: Side | None = None
    hka_deg: float | None = None
    body_mass_kg: float | None = None
    height_m: float | None = None
    feedback_limit_bw: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.affected_side not in (None, "left", "right", "none"):
            raise ValueError(f"affected_side: {self.affected_side!r} is not left, right or none")
        for name in ("body_mass_kg", "height_m", "feedback_limit_bw"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: {value!r} must be a positive number")
        if self.hka_deg is not None and not (math.isfinite(self.hka_deg) and -30 <= self.hka_deg <= 30):
            raise ValueError(f"hka_deg: {self.hka_deg!r} is outside -30..30°")

    @property
    def affected_leg(self) -> str | None:
        """``l`` or ``r`` for an affected side, else None."""
        return {"left": "l", "right": "r"}.get(self.affected_side or "")

    def merged(self, fallback: PatientContext) -> PatientContext:
        """A copy with every unknown field taken from ``fallback`` (both sources named when both gave)."""
        names = ("affected_side", "hka_deg", "body_mass_kg", "height_m", "feedback_limit_bw")
        values = {n: getattr(self, n) if getattr(self, n) is not None else getattr(fallback, n) for n in names}
        used = [self.source] + ([fallback.source] if any(getattr(self, n) is None for n in names) else [])
        return PatientContext(**values, source="; ".join(s for s in used if s))


@dataclass(frozen=True)
class AnalyticsConfig:
    """Thresholds of the daily analytics (see the module docstring)."""

    bout_gap_s: float = 5.0
    min_bout_steps: int = 4
    coverage_gap_s: float = 60.0
    baseline_days: int = 28
    baseline_min_days: int = 5
    band_mads: float = 2.5
    band_min_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.bout_gap_s <= 0 or self.min_bout_steps < 1 or self.coverage_gap_s <= 0:
            raise ValueError("bout_gap_s and coverage_gap_s must be > 0 and min_bout_steps ≥ 1")
        if not 1 <= self.baseline_min_days <= self.baseline_days or self.band_mads <= 0:
            raise ValueError("need 1 ≤ baseline_min_days ≤ baseline_days and band_mads > 0")


@dataclass
class DayData:
    """One patient's records of one day, as tables (host-clock Unix seconds in ``t``)."""

    patient_id: str
    day: date
    tz: tzinfo
    start: float
    end: float
    steps: pd.DataFrame
    summaries: pd.DataFrame
    events: pd.DataFrame
    waveforms: dict[str, np.ndarray]
    """Per axis (``v``, ``ap``, ``ml``): steps × 101 stance waveform in BW, rows as in ``steps``."""


@dataclass
class Flag:
    """Something the clinician should look at."""

    level: str
    """One of :data:`FLAG_LEVELS`: ``alert`` (a concerning change, data missing), ``caution`` (data quality),
    ``good`` (good news) or ``info``."""
    message: str


@dataclass
class DayMetrics:
    """Everything the report shows for one day."""

    patient_id: str
    day: date
    steps: int
    steps_by_leg: dict[str, int]
    bouts: int
    walking_min: float
    longest_bout_min: float
    cadence_spm: float | None
    peak_bw_mean: float | None
    peak_bw_sd: float | None
    peak_n_mean: float | None
    loading_rate_bw_s_mean: float | None
    impulse_bws_mean: float | None
    peak_ml_bw_mean: float | None
    load_bws: float
    asymmetry: float | None
    wear_min: float
    gaps: list[tuple[float, float]]
    quality: dict[str, int]
    flagged_steps: int
    cues: int
    devices: list[str]
    model_versions: list[str]
    first_peak_bw_mean: float | None = None
    stance_s_mean: float | None = None
    stance_pct: float | None = None
    swing_pct: float | None = None
    double_support_pct: float | None = None
    gait_cycles: int = 0
    """Strides (same-leg contact to contact within a bout) the gait-phase percentages are measured on."""
    flags: list[Flag] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = dict(self.__dict__)
        out["day"] = self.day.isoformat()
        out["flags"] = [f.__dict__ for f in self.flags]
        return out


def zone(name: str | None) -> tzinfo:
    """The named IANA time zone, or this computer's."""
    if name:
        return ZoneInfo(name)
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def day_bounds(day: date, tz: tzinfo) -> tuple[float, float]:
    """Unix seconds of local midnight at the start and end of ``day`` (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.timestamp(), end.timestamp()


AXES = WAVEFORM_AXES
GRAVITY_MPS2 = 9.80665
_STEP_COLUMNS = {
    "leg": str,
    "stance_s": float,
    "peak1_bw": float,
    "peak2_bw": float,
    "peak1_n": float,
    "peak2_n": float,
    "loading_rate_bw_s": float,
    "impulse_v_bws": float,
    "peak_ml_bw": float,
    "peak_ml_n": float,
}


def load_day(store: RecordSource, patient_id: str, day: date, tz: tzinfo, waveforms: bool = True) -> DayData:
    """Read one day of one patient from the host store (``waveforms=False`` for the trend: faster)."""
    start, end = day_bounds(day, tz)
    fields = (*_STEP_COLUMNS, "flags", "model_version")
    raw = store.dated_records(patient_id, StepRecord, start, end, waveforms)
    steps = pd.DataFrame(
        [(r.device_id, r.t_host, *(getattr(r.record, f) for f in fields)) for r in raw],
        columns=["device_id", "t", *fields],
    )
    for name, kind in _STEP_COLUMNS.items():
        steps[name] = pd.to_numeric(steps[name], errors="coerce") if kind is float else steps[name].astype(str)
    steps["flagged"] = steps.pop("flags").map(bool)
    steps["model_version"] = steps["model_version"].fillna("").astype(str)
    steps["peak_bw"] = steps[["peak1_bw", "peak2_bw"]].max(axis=1)
    steps["peak_n"] = steps[["peak1_n", "peak2_n"]].max(axis=1)
    curves = np.full((len(raw), 3, 101), np.nan)
    if waveforms:
        for row, dated in enumerate(raw):
            if dated.waveform is not None:
                curves[row] = np.frombuffer(dated.waveform, dtype="<f4").reshape(3, 101)
    summaries = pd.DataFrame(
        [
            (r.device_id, r.t_host, r.record.start_s, r.record.end_s)
            for r in store.dated_records(patient_id, SummaryRecord, start, end)
        ],
        columns=["device_id", "t", "start_s", "end_s"],
    )
    summaries["duration_s"] = pd.to_numeric(summaries["end_s"]) - pd.to_numeric(summaries["start_s"])
    events = pd.DataFrame(
        [
            (r.device_id, r.t_host, str(r.record.event), r.record.limit_bw)
            for r in store.dated_records(patient_id, EventRecord, start, end)
        ],
        columns=["device_id", "t", "event", "limit_bw"],
    )
    events["limit_bw"] = pd.to_numeric(events["limit_bw"], errors="coerce")
    return DayData(
        patient_id, day, tz, start, end, steps, summaries, events, {a: curves[:, k] for k, a in enumerate(AXES)}
    )


def context_from_day(data: DayData) -> PatientContext:
    """What the day's records tell about the patient.

    Body mass is a step's newtons over its body weights, over g; the feedback limit is the last cue's
    ``limit_bw``. The rest stays unknown: devices keep it to themselves (device info carries no personal data).
    """
    ratio = (data.steps["peak1_n"] / data.steps["peak1_bw"]).replace([np.inf, -np.inf], np.nan).dropna()
    body_mass = round(float(ratio.median()) / GRAVITY_MPS2, 1) if len(ratio) else None
    limits = data.events.loc[data.events["event"] == str(EventType.CUE), "limit_bw"].dropna()
    limit = float(limits.iloc[-1]) if len(limits) and float(limits.iloc[-1]) > 0 else None
    if body_mass is not None and body_mass <= 0:
        body_mass = None
    known = body_mass is not None or limit is not None
    return PatientContext(
        body_mass_kg=body_mass, feedback_limit_bw=limit, source="the device's records" if known else ""
    )


def find_bouts(steps: pd.DataFrame, config: AnalyticsConfig) -> pd.DataFrame:
    """Walking bouts: ``start``, ``end`` (last contact + its stance), ``steps``, ``duration_s``."""
    columns = ["start", "end", "steps", "duration_s"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    ordered = steps.sort_values("t")
    t = ordered["t"].to_numpy()
    finish = t + ordered["stance_s"].fillna(0.0).to_numpy()
    bout_id = np.concatenate([[0], np.cumsum(np.diff(t) > config.bout_gap_s)])
    grouped = pd.DataFrame({"bout": bout_id, "t": t, "finish": finish}).groupby("bout")
    bouts = pd.DataFrame({"start": grouped["t"].min(), "end": grouped["finish"].max(), "steps": grouped.size()})
    bouts = bouts[bouts["steps"] >= config.min_bout_steps].reset_index(drop=True)
    bouts["duration_s"] = bouts["end"] - bouts["start"]
    return bouts[columns]


def cadence(steps: pd.DataFrame, bouts: pd.DataFrame) -> float | None:
    """Steps per minute of both feet: 120 / median stride time (same-leg contacts within a bout)."""
    if steps.empty or bouts.empty:
        return None
    t = steps["t"].to_numpy()
    index = np.searchsorted(bouts["start"].to_numpy(), t, side="right") - 1
    inside = (index >= 0) & (t <= bouts["end"].to_numpy()[np.clip(index, 0, None)])
    chosen = pd.DataFrame({"bout": index[inside], "leg": steps["leg"].to_numpy()[inside], "t": t[inside]})
    chosen = chosen.sort_values(["bout", "leg", "t"])
    strides = chosen.groupby(["bout", "leg"])["t"].diff().dropna().to_numpy()
    return round(120.0 / float(np.median(strides)), 1) if strides.size else None


@dataclass(frozen=True)
class GaitPhases:
    """Stance, swing and double support as percentages of the gait cycle (see :func:`gait_phases`)."""

    stance_pct: float | None
    swing_pct: float | None
    double_support_pct: float | None
    cycles: int


MAX_STRIDE_S = 2.5
"""A same-leg contact-to-contact interval longer than this is a pause, not a gait cycle."""
NEIGHBOURS = 3
"""The other leg's stances that can overlap one stance: the last few starting before it ends (stances are
shorter than a cycle, so at most two overlap; one more for a misdetected step)."""


def gait_phases(steps: pd.DataFrame, bouts: pd.DataFrame) -> GaitPhases:
    """Stance, swing and double-support percentages of the gait cycle, from the steps' contact times.

    A gait cycle is one leg's initial contact to its next one within a bout (at most :data:`MAX_STRIDE_S`).
    Stance % is that contact's stance time over the cycle, swing % the rest. Double support % is the time,
    within the cycle's stance, that the other leg's stance overlaps it (initial plus terminal double
    support), over the cycle: it needs both legs monitored, else it is None. Each figure is the median over
    the day's cycles of both legs.
    """
    if steps.empty or bouts.empty:
        return GaitPhases(None, None, None, 0)
    ordered = steps.dropna(subset=["t", "stance_s"]).sort_values("t")
    t = ordered["t"].to_numpy()
    index = np.searchsorted(bouts["start"].to_numpy(), t, side="right") - 1
    inside = (index >= 0) & (t <= bouts["end"].to_numpy()[np.clip(index, 0, None)])
    ordered = ordered.assign(bout=index)[inside]
    intervals = {
        str(leg): (g["t"].to_numpy(), g["t"].to_numpy() + g["stance_s"].to_numpy()) for leg, g in ordered.groupby("leg")
    }
    stance_pct: list[float] = []
    double_pct: list[float] = []
    for leg, group in ordered.groupby("leg"):
        contact = group["t"].to_numpy()
        stance = group["stance_s"].to_numpy()
        same_bout = np.diff(group["bout"].to_numpy()) == 0
        cycle = np.diff(contact)
        valid = same_bout & (cycle > 0) & (cycle <= MAX_STRIDE_S) & (stance[:-1] < cycle)
        stance_pct += list(100.0 * stance[:-1][valid] / cycle[valid])
        other = [k for k in intervals if k != str(leg)]
        if len(other) != 1:
            continue
        other_start, other_end = intervals[other[0]]
        chosen = np.flatnonzero(valid)
        a, b = contact[chosen], contact[chosen] + stance[chosen]
        # the other leg's stances that can overlap [a, b): the last NEIGHBOURS starting before b
        last = np.searchsorted(other_start, b, side="left") - 1
        overlap = np.zeros(chosen.size)
        for back in range(NEIGHBOURS):
            j = last - back
            ok = j >= 0
            jj = np.clip(j, 0, None)
            overlap += np.where(
                ok, np.clip(np.minimum(other_end[jj], b) - np.maximum(other_start[jj], a), 0.0, None), 0
            )
        double_pct += list(100.0 * overlap / cycle[chosen])
    if not stance_pct:
        return GaitPhases(None, None, None, 0)
    stance_median = round(float(np.median(stance_pct)), 1)
    double = round(float(np.median(double_pct)), 1) if double_pct else None
    return GaitPhases(stance_median, round(100.0 - stance_median, 1), double, len(stance_pct))


def _mean(series: pd.Series, digits: int = 3) -> float | None:
    values = series.dropna()
    return round(float(values.mean()), digits) if len(values) else None


def coverage_gaps(data: DayData, config: AnalyticsConfig) -> list[tuple[float, float]]:
    """Stretches longer than ``coverage_gap_s`` between GRF summaries (device off, not worn, out of range)."""
    if data.summaries.empty:
        return []
    spans = data.summaries.sort_values("t")
    starts = spans["t"].to_numpy()
    ends = starts + spans["duration_s"].to_numpy()
    previous_end = np.maximum.accumulate(ends)[:-1]
    return [
        (float(a), float(b)) for a, b in zip(previous_end, starts[1:], strict=True) if b - a > config.coverage_gap_s
    ]


def day_metrics(data: DayData, config: AnalyticsConfig | None = None) -> DayMetrics:
    """The day's figures (no baseline flags; see :func:`add_trend_flags`)."""
    config = config or AnalyticsConfig()
    steps = data.steps
    bouts = find_bouts(steps, config)
    by_leg = {str(leg): int(n) for leg, n in steps.groupby("leg").size().items()} if not steps.empty else {}
    asymmetry = None
    if {"l", "r"} <= set(by_leg):
        left = steps.loc[steps["leg"] == "l", "peak1_bw"].mean()
        right = steps.loc[steps["leg"] == "r", "peak1_bw"].mean()
        if max(left, right) > 0:
            asymmetry = round(float((right - left) / max(left, right)), 4)
    quality = {name: int((data.events["event"] == name).sum()) for name in QUALITY_EVENTS}
    phases = gait_phases(steps, bouts)
    metrics = DayMetrics(
        patient_id=data.patient_id,
        day=data.day,
        steps=len(steps),
        steps_by_leg=by_leg,
        bouts=len(bouts),
        walking_min=round(float(bouts["duration_s"].sum()) / 60.0, 2),
        longest_bout_min=round(float(bouts["duration_s"].max()) / 60.0, 2) if len(bouts) else 0.0,
        cadence_spm=cadence(steps, bouts),
        peak_bw_mean=_mean(steps["peak_bw"]),
        peak_bw_sd=round(float(steps["peak_bw"].std()), 3) if steps["peak_bw"].count() > 1 else None,
        peak_n_mean=_mean(steps["peak_n"], 1),
        loading_rate_bw_s_mean=_mean(steps["loading_rate_bw_s"], 2),
        impulse_bws_mean=_mean(steps["impulse_v_bws"], 4),
        peak_ml_bw_mean=_mean(steps["peak_ml_bw"], 4),
        load_bws=round(float(steps["impulse_v_bws"].sum()), 2),
        asymmetry=asymmetry,
        wear_min=round(float(data.summaries["duration_s"].sum()) / 60.0, 1),
        gaps=coverage_gaps(data, config),
        quality=quality,
        flagged_steps=int(steps["flagged"].sum()),
        cues=int((data.events["event"] == EventType.CUE).sum()),
        devices=sorted(set(steps["device_id"]) | set(data.summaries["device_id"])),
        model_versions=sorted(v for v in set(steps["model_version"]) if v),
        first_peak_bw_mean=_mean(steps["peak1_bw"]),
        stance_s_mean=_mean(steps["stance_s"]),
        stance_pct=phases.stance_pct,
        swing_pct=phases.swing_pct,
        double_support_pct=phases.double_support_pct,
        gait_cycles=phases.cycles,
    )
    if metrics.steps == 0:
        metrics.flags.append(Flag("alert", "no steps recorded this day"))
    if metrics.wear_min == 0 and metrics.steps == 0:
        metrics.flags.append(Flag("alert", "no data from the device this day (not worn, or not synced yet)"))
    lost = quality["dropout"] + quality["nan"]
    if lost:
        metrics.flags.append(
            Flag(
                "caution",
                f"{lost} sensor dropout(s)/NaN run(s); {metrics.flagged_steps} steps flagged "
                "(their forces are less certain)",
            )
        )
    if quality["saturation"]:
        metrics.flags.append(Flag("caution", f"{quality['saturation']} sensor saturation event(s): check the straps"))
    if quality["calibration_skipped"]:
        metrics.flags.append(Flag("caution", "calibration skipped at a start (the device was moving)"))
    return metrics


def daily_table(
    store: RecordSource,
    patient_id: str,
    last_day: date,
    days: int,
    tz: tzinfo,
    config: AnalyticsConfig | None = None,
    known: Mapping[date, DayMetrics] | None = None,
) -> pd.DataFrame:
    """One row of trend metrics per day for ``days`` days ending with ``last_day`` (NaN where no steps).

    ``known`` holds days already worked out (the report's own day), which are not read again.
    """
    rows = []
    known = known or {}
    for offset in range(days - 1, -1, -1):
        day = last_day - timedelta(days=offset)
        metrics = known.get(day) or day_metrics(load_day(store, patient_id, day, tz, waveforms=False), config)
        has_data = metrics.steps > 0
        rows.append(
            {"day": day, "has_data": has_data}
            | {key: (getattr(metrics, key) if has_data else math.nan) for key in TREND_METRICS}
        )
    table = pd.DataFrame(rows).set_index("day")
    return table.astype({key: float for key in TREND_METRICS})


@dataclass(frozen=True)
class Baseline:
    """A metric's baseline: median and band over the previous days with data."""

    metric: str
    days: int
    median: float
    low: float
    high: float


def baselines(table: pd.DataFrame, day: date, config: AnalyticsConfig | None = None) -> dict[str, Baseline]:
    """Baseline per metric from the days before ``day`` (empty when fewer than ``baseline_min_days``)."""
    config = config or AnalyticsConfig()
    window = table[(table.index < day) & (table.index >= day - timedelta(days=config.baseline_days))]
    window = window[window["has_data"]]
    out = {}
    for metric in TREND_METRICS:
        values = window[metric].dropna().to_numpy()
        if values.size < config.baseline_min_days:
            continue
        median = float(np.median(values))
        spread = config.band_mads * 1.4826 * float(np.median(np.abs(values - median)))
        half = max(spread, config.band_min_fraction * abs(median))
        out[metric] = Baseline(metric, int(values.size), median, median - half, median + half)
    return out


def number(value: float) -> str:
    """A figure for people: thousands separated, else three significant digits."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def add_trend_flags(
    metrics: DayMetrics, table: pd.DataFrame, config: AnalyticsConfig | None = None
) -> dict[str, Baseline]:
    """Flag the day's metrics outside the patient's baseline band; returns the baselines used."""
    config = config or AnalyticsConfig()
    found = baselines(table, metrics.day, config)
    if not found:
        days = int(table[table.index < metrics.day]["has_data"].sum())
        metrics.flags.append(
            Flag("info", f"no baseline yet: {days} earlier day(s) with data, {config.baseline_min_days} needed")
        )
        return found
    for metric, baseline in found.items():
        value = getattr(metrics, metric)
        if value is None or (isinstance(value, float) and math.isnan(value)) or metrics.steps == 0:
            continue
        if not baseline.low <= value <= baseline.high:
            direction = "above" if value > baseline.high else "below"
            level, meaning = _meaning(metric, value, baseline)
            metrics.flags.append(
                Flag(
                    level,
                    f"{meaning}: {TREND_METRICS[metric]} {number(value)} is {direction} the usual range "
                    f"{number(baseline.low)}–{number(baseline.high)} (median of {baseline.days} days: "
                    f"{number(baseline.median)})",
                )
            )
    return found


def _meaning(metric: str, value: float, baseline: Baseline) -> tuple[str, str]:
    """The flag level and words for a day outside the usual range (see :data:`TREND_MEANING`)."""
    if metric == "asymmetry":
        if abs(value) > abs(baseline.median):
            return "alert", "legs loaded less evenly than usual"
        return "good", "legs loaded more evenly than usual"
    return TREND_MEANING[metric][HIGHER if value > baseline.high else LOWER]
