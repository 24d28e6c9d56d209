"""The host's report and analytics on the clinic's records: database rows → typed records → pages and plots.

The daily report is the host's (:func:`forcecast.host_app.report.build_report`), fed from the clinic database through
an :class:`~forcecast.host_app.analytics.InMemoryRecords` of the patient's last 28 days (waveforms of the day only).
The comparison of two days or two ISO weeks uses the same day analytics. The CPU-heavy parts (decoding, pandas,
matplotlib) run in the default executor, never on the event loop; nothing is cached between requests.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any, TypeVar

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forcecast.clinic.dashboard.attention import DayFigures
from forcecast.clinic.dashboard.queries import Patient, StoredRecord
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.records import EventRecord, RecordError, StepRecord, SummaryRecord, loads
from forcecast.host_app.analytics import (
    AnalyticsConfig,
    DayData,
    InMemoryRecords,
    PatientContext,
    day_bounds,
    day_metrics,
    load_day,
)
from forcecast.host_app.report import TREND_DAYS, build_report
from forcecast.host_app.store import DatedRecord

log = logging.getLogger(__name__)
RECORD_TYPES: dict[str, type[StepRecord] | type[SummaryRecord] | type[EventRecord]] = {
    "step": StepRecord,
    "summary": SummaryRecord,
    "event": EventRecord,
}
WAVEFORM_POINTS = 101
MAX_EXPORT_DAYS = 366
DPI = 96
T = TypeVar("T")


class PeriodError(ForcecastValueError):
    """A day or week the comparison cannot read (the message names the text and the forms accepted)."""

    reason = "bad_period"


async def off_loop(work: Callable[..., T], *args: Any) -> T:
    """Run CPU-heavy work in the default executor (the event loop keeps serving other requests)."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(work, *args))


def source_of(patient: Patient, rows: Iterable[StoredRecord], devices: list[dict[str, Any]]) -> InMemoryRecords:
    """The rows as a record source for the host analytics, under the patient's code (undecodable rows left out).

    A step's waveform comes from the row's waveform column (float32, 3 × 101), or from its payload if it has one.
    """
    found: list[tuple[str, DatedRecord[Any]]] = []
    skipped = 0
    for row in rows:
        kind = RECORD_TYPES.get(row.kind)
        try:
            if kind is None:
                raise RecordError("unknown_kind", f"kind {row.kind!r} unknown")
            record = kind.from_payload(loads(row.payload))
        except RecordError as exc:
            skipped += 1
            log.warning(
                "patient %s: %s record of %s at %s left out: %s", patient.id, row.kind, row.device_id, row.t_host, exc
            )
            continue
        waveform = row.waveform
        if waveform is None and isinstance(record, StepRecord) and record.waveform_bw is not None:
            curves = record.waveform_bw
            if all(len(curve) == WAVEFORM_POINTS for curve in curves):
                waveform = np.asarray(curves, dtype="<f4").tobytes()
        found.append((patient.code, DatedRecord(row.device_id, row.t_host, record, waveform)))
    if skipped:
        log.warning("patient %s: %d record(s) could not be decoded", patient.id, skipped)
    return InMemoryRecords(found, devices)


def context_of(patient: Patient) -> PatientContext:
    """What the clinic knows of the patient, for the top of the report."""
    side = patient.affected_side if patient.affected_side in ("left", "right", "none") else None
    return PatientContext(
        affected_side=side,  # type: ignore[arg-type]
        hka_deg=patient.hka_deg,
        body_mass_kg=patient.body_mass_kg,
        height_m=patient.height_m,
        feedback_limit_bw=patient.feedback_limit_bw,
        source="the clinic's patient record",
    )


def report_window(day: date, tz: tzinfo) -> tuple[float, float, float]:
    """``(trend start, day start, day end)`` in Unix seconds: the records a day's report reads."""
    first, _ = day_bounds(day - timedelta(days=TREND_DAYS - 1), tz)
    start, end = day_bounds(day, tz)
    return first, start, end


def render_report(source: InMemoryRecords, patient: Patient, day: date, tz: tzinfo) -> str:
    """The host's daily report HTML for the patient's day (CPU-heavy: call through :func:`off_loop`)."""
    report = build_report(
        source, patient.code, day, tz, source="the clinic server's database", context=context_of(patient)
    )
    return report.html


# ---------------------------------------------------------------- trend plot of the patient page


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def trend_png(days: list[DayFigures], last_day: date, n_days: int, limit_bw: float | None) -> str:
    """Steps, mean peak (with the feedback limit) and wear time per day as one PNG data URI."""
    span = [last_day - timedelta(days=k) for k in range(n_days - 1, -1, -1)]
    by_day = {d.day: d for d in days}
    x = pd.to_datetime(pd.Series(span))
    steps = np.array([by_day[d].steps if d in by_day else 0 for d in span], dtype=float)
    peaks = np.array([_nan(by_day[d].peak_bw_mean) if d in by_day else math.nan for d in span])
    wear = np.array([by_day[d].wear_min / 60.0 if d in by_day else 0.0 for d in span])
    figure = Figure(figsize=(11.0, 2.8))
    axes = figure.subplots(1, 3)
    axes[0].bar(x, steps, color="#4c72b0", width=0.8)
    axes[0].set_title("steps per day", fontsize=10)
    axes[1].plot(x, peaks, "o-", color="#dd8452", markersize=3, label="mean peak")
    if limit_bw is not None:
        axes[1].axhline(limit_bw, color="#b3261e", linestyle="--", linewidth=1, label=f"limit {limit_bw:.2f} BW")
        axes[1].legend(fontsize=8, loc="lower left")
    axes[1].set_title("mean peak vertical force (BW)", fontsize=10)
    axes[2].bar(x, wear, color="#55a868", width=0.8)
    axes[2].set_title("wear time (h per day)", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
        ax.tick_params(axis="x", labelsize=8)
    missing = [d for d in span if d not in by_day]
    for d in missing:
        axes[2].axvspan(
            pd.Timestamp(d) - pd.Timedelta(hours=12),
            pd.Timestamp(d) + pd.Timedelta(hours=12),
            color="#d0d0d0",
            alpha=0.5,
            linewidth=0,
        )
    figure.tight_layout()
    return _png(figure)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


# ---------------------------------------------------------------- comparing two days or two weeks

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A day or an ISO week: what the comparison reads."""

    label: str
    title: str
    days: tuple[date, ...]

    @property
    def first(self) -> date:
        """Its first day."""
        return self.days[0]

    @property
    def last(self) -> date:
        """Its last day."""
        return self.days[-1]


def parse_period(text: str) -> Period:
    """``YYYY-MM-DD`` (a day) or ``YYYY-Www`` (an ISO week, Monday to Sunday).

    Raises
    ------
    PeriodError
        Naming the text and the forms accepted.
    """
    value = text.strip()
    week = _WEEK.match(value.upper())
    try:
        if week:
            monday = date.fromisocalendar(int(week[1]), int(week[2]), 1)
            days = tuple(monday + timedelta(days=k) for k in range(7))
            return Period(value.upper(), f"week {week[2]} of {week[1]} ({days[0]:%d %b}–{days[-1]:%d %b})", days)
        day = date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{text!r} is neither a day (2026-03-09) nor an ISO week (2026-W11)") from None
    if len(value) != 10:
        raise PeriodError(f"{text!r} is neither a day (2026-03-09) nor an ISO week (2026-W11)")
    return Period(day.isoformat(), day.strftime("%A %d %B %Y"), (day,))


@dataclass(frozen=True)
class PeriodFigures:
    """One period's figures for the comparison (None: unknown, e.g. no steps)."""

    period: Period
    days_with_data: int
    steps_per_day: float | None
    walking_min_per_day: float | None
    wear_h_per_day: float | None
    peak_bw_mean: float | None
    peak_n_mean: float | None
    loading_rate_bw_s_mean: float | None
    impulse_bws_mean: float | None
    peak_ml_bw_mean: float | None
    load_bws_per_day: float | None
    asymmetry: float | None
    cadence_spm: float | None
    cues_per_day: float | None
    peaks: np.ndarray


@dataclass(frozen=True)
class CompareRow:
    """One line of the comparison table, every cell already text."""

    key: str
    title: str
    a: str
    b: str
    difference: str


COMPARED: tuple[tuple[str, str, str, int], ...] = (
    ("steps_per_day", "Steps per day", "", 0),
    ("walking_min_per_day", "Walking time per day", " min", 0),
    ("wear_h_per_day", "Wear time per day", " h", 1),
    ("cadence_spm", "Cadence", " /min", 1),
    ("peak_bw_mean", "Peak vertical force", " BW", 3),
    ("peak_n_mean", "Peak vertical force in newtons", " N", 0),
    ("loading_rate_bw_s_mean", "Loading rate", " BW/s", 2),
    ("impulse_bws_mean", "Vertical impulse per step", " BW·s", 3),
    ("load_bws_per_day", "Load per day (cumulative impulse)", " BW·s", 0),
    ("peak_ml_bw_mean", "Peak medial-lateral force", " BW", 3),
    ("asymmetry", "Asymmetry of the first peak (R−L)/max", " %", 1),
    ("cues_per_day", "Biofeedback cues per day", "", 1),
)


def period_figures(source: InMemoryRecords, patient: Patient, period: Period, tz: tzinfo) -> PeriodFigures:
    """The period's figures from the day analytics (CPU-heavy: call through :func:`off_loop`)."""
    config = AnalyticsConfig()
    datas: list[DayData] = [load_day(source, patient.code, day, tz, waveforms=False) for day in period.days]
    metrics = [day_metrics(data, config) for data in datas]
    with_data = [(d, m) for d, m in zip(datas, metrics, strict=True) if m.steps > 0 or m.wear_min > 0]
    steps = pd.concat([d.steps for d, _ in with_data], ignore_index=True) if with_data else datas[0].steps
    n_days = len(with_data)

    def per_day(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    def step_mean(column: str) -> float | None:
        values = steps[column].dropna() if column in steps else pd.Series(dtype=float)
        return float(values.mean()) if len(values) else None

    asymmetry = None
    if not steps.empty and {"l", "r"} <= set(steps["leg"]):
        left = float(steps.loc[steps["leg"] == "l", "peak1_bw"].mean())
        right = float(steps.loc[steps["leg"] == "r", "peak1_bw"].mean())
        if max(left, right) > 0:
            asymmetry = (right - left) / max(left, right) * 100.0
    cadences = [(m.cadence_spm, m.steps) for _, m in with_data if m.cadence_spm is not None]
    cadence = sum(c * n for c, n in cadences) / sum(n for _, n in cadences) if cadences else None
    return PeriodFigures(
        period=period,
        days_with_data=n_days,
        steps_per_day=per_day([m.steps for _, m in with_data]),
        walking_min_per_day=per_day([m.walking_min for _, m in with_data]),
        wear_h_per_day=per_day([m.wear_min / 60.0 for _, m in with_data]),
        peak_bw_mean=step_mean("peak_bw"),
        peak_n_mean=step_mean("peak_n"),
        loading_rate_bw_s_mean=step_mean("loading_rate_bw_s"),
        impulse_bws_mean=step_mean("impulse_v_bws"),
        peak_ml_bw_mean=step_mean("peak_ml_bw"),
        load_bws_per_day=per_day([m.load_bws for _, m in with_data]),
        asymmetry=asymmetry,
        cadence_spm=cadence,
        cues_per_day=per_day([float(m.cues) for _, m in with_data]),
        peaks=steps["peak_bw"].dropna().to_numpy(dtype=float) if "peak_bw" in steps else np.empty(0),
    )


def _cell(value: float | None, unit: str, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}{unit}"


def compare_rows(a: PeriodFigures, b: PeriodFigures) -> list[CompareRow]:
    """The comparison table: both periods and the difference (absolute, and relative where it means something)."""
    rows = []
    for key, title, unit, digits in COMPARED:
        first, second = getattr(a, key), getattr(b, key)
        difference = "–"
        if first is not None and second is not None:
            delta = second - first
            delta = 0.0 if abs(delta) < 0.5 * 10**-digits else delta  # no "-0"
            difference = f"{delta:+,.{digits}f}{unit}"
            if key != "asymmetry" and abs(first) >= 10**-digits:
                difference += f" ({delta / abs(first) * 100:+.0f} %)"
        rows.append(CompareRow(f"{key}", title, _cell(first, unit, digits), _cell(second, unit, digits), difference))
    return rows


def compare_png(a: PeriodFigures, b: PeriodFigures) -> str:
    """Peak distributions of the two periods, overlaid, as a PNG data URI."""
    figure = Figure(figsize=(8.0, 3.0))
    ax = figure.subplots()
    both = np.concatenate([a.peaks, b.peaks])
    if both.size:
        bins = np.linspace(float(both.min()) - 0.02, float(both.max()) + 0.02, 40).tolist()
        for figures, colour in ((a, "#4c72b0"), (b, "#dd8452")):
            if figures.peaks.size:
                ax.hist(
                    figures.peaks,
                    bins=bins,
                    weights=np.full(figures.peaks.size, 100.0 / figures.peaks.size),
                    alpha=0.55,
                    color=colour,
                    label=f"{figures.period.label} (median {np.median(figures.peaks):.2f} BW, "
                    f"n={figures.peaks.size:,})",
                )
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no steps in either period", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("peak vertical force per step (BW)")
    ax.set_ylabel("% of the period's steps")
    ax.set_title("distribution of step peaks", fontsize=10)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


# ---------------------------------------------------------------- CSV export

EXPORT_COLUMNS: tuple[str, ...] = (
    "time",
    "t_host",
    "device_id",
    "leg",
    "stance_s",
    "peak1_bw",
    "peak2_bw",
    "peak1_n",
    "peak2_n",
    "loading_rate_bw_s",
    "impulse_v_bws",
    "impulse_brake_bws",
    "impulse_prop_bws",
    "peak_ml_bw",
    "peak_ml_n",
    "asymmetry_peak1",
    "flags",
    "calibrated",
    "model_version",
)


def _safe_text(value: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def steps_csv(rows: Iterable[StoredRecord], tz: tzinfo, patient_code: str) -> tuple[str, int]:
    """The step records as CSV text (times in the clinic's zone) and how many steps it holds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("patient", *EXPORT_COLUMNS))
    count = 0
    for row in rows:
        if row.kind != "step":
            continue
        try:
            record = StepRecord.from_payload(loads(row.payload))
        except RecordError as exc:
            log.warning("export: step of %s at %s left out: %s", row.device_id, row.t_host, exc)
            continue
        cells: list[Any] = [
            _safe_text(patient_code),
            datetime.fromtimestamp(row.t_host, tz).isoformat(timespec="milliseconds"),
            f"{row.t_host:.3f}",
            _safe_text(row.device_id),
        ]
        for name in EXPORT_COLUMNS[3:]:
            value = getattr(record, name)
            if name == "flags":
                value = _safe_text(";".join(value))
            elif isinstance(value, str):
                value = _safe_text(value)
            cells.append("" if value is None else value)
        writer.writerow(cells)
        count += 1
    return buffer.getvalue(), count
