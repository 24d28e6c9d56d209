"""The physiotherapist's daily report: one self-contained HTML file (plots embedded, no network, printable).

``forcecast host report --db FILE --patient ID --day YYYY-MM-DD [--out report.html] [--pdf]``.
Sections: flags, summary cards, the day's mean ± SD stance GRF per axis and leg, the distribution of
step peaks, load over the day, the 28-day trend against the patient's baseline, asymmetry, data
quality, and provenance (devices, model versions, software). Plots are matplotlib PNGs inlined as
data URIs; a few lines of script only check that every plot decoded and say so on the page if not.
The page is the Jinja2 template ``templates/report.html.j2`` (package data), rendered with autoescaping:
every patient id, flag message or device field is HTML-escaped by the engine, not by hand.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from forcecast.host_app.analytics import (
    AXES,
    FLAG_LEVELS,
    AnalyticsConfig,
    Baseline,
    DayData,
    DayMetrics,
    PatientContext,
    RecordSource,
    add_trend_flags,
    context_from_day,
    daily_table,
    day_metrics,
    load_day,
    number,
)
from forcecast.host_app.norms import DOUBLE_SUPPORT_PCT, HIGHEST_VERTICAL_PEAK_BW, STANCE_PCT, SWING_PCT

TREND_DAYS = 28
LEG_COLOURS = {"l": "#1f77b4", "r": "#d62728"}
LEG_NAMES = {"l": "left", "r": "right"}
AXIS_NAMES = {"v": "vertical", "ap": "anterior-posterior", "ml": "medial-lateral"}
DPI = 96
PAPER_SIZES = ("A4", "letter")


@dataclass(frozen=True)
class Card:
    """One summary card: ``id`` (the element id is ``card-<id>``), title, value and a line of detail."""

    id: str
    title: str
    value: str
    detail: str


@dataclass(frozen=True)
class DeviceRow:
    """One device in the provenance table, every cell already text."""

    id: str
    firmware: str
    last_seen: str
    clock_offset: str


@dataclass
class Report:
    """A rendered report and what went into it."""

    html: str
    metrics: DayMetrics
    plots: list[str]
    cards: list[str]
    seconds: float
    context: PatientContext = field(default_factory=PatientContext)


def build_report(
    store: RecordSource,
    patient_id: str,
    day: date,
    tz: tzinfo,
    config: AnalyticsConfig | None = None,
    source: str = "",
    context: PatientContext | None = None,
    paper: str = "A4",
) -> Report:
    """Compute the day's analytics and render the HTML.

    Parameters
    ----------
    store
        Where the records are: the host store, or any :class:`~forcecast.host_app.analytics.RecordSource`
        (the clinic server passes an :class:`~forcecast.host_app.analytics.InMemoryRecords`).
    patient_id, day, tz
        Whose day, cut at midnight in ``tz``.
    config
        Analytics thresholds (defaults: :class:`~forcecast.host_app.analytics.AnalyticsConfig`).
    source
        Where the records came from, in words (named in the provenance line).
    context
        The patient's affected side, knee alignment, body mass, height and feedback limit, shown at the top;
        a field left ``None`` is taken from the day's records where they tell it (body mass, cue limit).
    paper
        Printed page size (CSS ``@page size``: ``A4`` or ``letter``); a PDF comes out in this size.
    """
    if paper not in PAPER_SIZES:
        raise ValueError(f"paper: {paper!r} is not one of {', '.join(PAPER_SIZES)}")
    started = time.perf_counter()
    config = config or AnalyticsConfig()
    data = load_day(store, patient_id, day, tz)
    context = (context or PatientContext()).merged(context_from_day(data))
    metrics = day_metrics(data, config)
    table = daily_table(store, patient_id, day, TREND_DAYS, tz, config, known={day: metrics})
    found = add_trend_flags(metrics, table, config)
    devices = {d["device_id"]: d for d in store.devices()}
    affected = context.affected_leg
    limit = context.feedback_limit_bw
    with_data = int(table["has_data"].sum())
    plots = {
        "stance-curves": (
            "Mean stance curve ± SD per leg and axis",
            _stance_curves(data, affected, limit),
        ),
        "peak-distribution": (
            "Highest vertical peak per step: distribution",
            _peak_distribution(data, affected, limit),
        ),
        "gait-phases": ("Gait phases: stance, swing and double support", _gait_phases(metrics)),
        "load-over-day": ("Load over the day", _load_over_day(data, metrics, limit)),
        "trend": (
            f"Trend: the {TREND_DAYS} days to {day.isoformat()} (data on {with_data} of them)",
            _trend(table, found, day),
        ),
        "asymmetry": ("Left/right: first vertical peak (loading response)", _asymmetry(data, table, affected)),
    }
    cards = _cards(metrics, found, data, context)
    page = _page(data, metrics, plots, cards, devices, source, context, paper)
    return Report(page, metrics, list(plots), [c.id for c in cards], time.perf_counter() - started, context)


# ---------------------------------------------------------------- plots


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _empty(figure: Figure, message: str) -> str:
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#666")
    return _png(figure)


def leg_label(leg: str, affected: str | None) -> str:
    """``left``, ``right``, or ``left (affected)`` for the affected leg."""
    name = LEG_NAMES.get(leg, leg)
    return f"{name} (affected)" if leg == affected else name


def _leg_style(leg: str, affected: str | None) -> dict[str, Any]:
    """Line style of a leg: the affected leg drawn thicker."""
    return {"color": LEG_COLOURS.get(leg, "#555"), "linewidth": 2.6 if leg == affected else 1.4}


def _stance_curves(data: DayData, affected: str | None, limit: float | None) -> str:
    figure = Figure(figsize=(10.5, 3.6))
    axes = figure.subplots(1, 3)
    phase = np.linspace(0, 100, 101)
    legs = data.steps["leg"].to_numpy()
    for ax, axis in zip(axes, AXES, strict=True):
        curves = data.waveforms[axis]
        for leg in ("l", "r"):
            chosen = curves[legs == leg] if curves.shape[0] == legs.shape[0] else np.empty((0, 101))
            chosen = chosen[np.isfinite(chosen).all(axis=1)]
            if not chosen.shape[0]:
                continue
            mean, sd = chosen.mean(axis=0), chosen.std(axis=0)
            ax.fill_between(phase, mean - sd, mean + sd, color=LEG_COLOURS[leg], alpha=0.18, linewidth=0)
            label = f"mean stance curve, {leg_label(leg, affected)} (n={chosen.shape[0]}) ± SD"
            ax.plot(phase, mean, label=label, **_leg_style(leg, affected))
        if axis == "v" and limit is not None:
            ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1.2, label=f"feedback limit {limit:.2f} BW")
        ax.set_title(f"{AXIS_NAMES[axis]} GRF", fontsize=10)
        ax.set_xlabel("stance (% of contact)")
        ax.set_ylabel("force (BW)")
        ax.axhline(0, color="#999", linewidth=0.5)
        ax.grid(alpha=0.3)
    if data.steps.empty:
        axes[1].text(0.5, 0.5, "no steps this day", ha="center", va="center", transform=axes[1].transAxes)
        figure.tight_layout()
    else:
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
        figure.tight_layout(rect=(0, 0.1, 1, 1))
    return _png(figure)


def _peak_distribution(data: DayData, affected: str | None, limit: float | None) -> str:
    figure = Figure(figsize=(10.5, 3.0))
    if data.steps.empty:
        return _empty(figure, "no steps this day")
    ax = figure.subplots()
    peaks = data.steps["peak_bw"].dropna()
    low, high = float(peaks.min()) - 0.02, float(peaks.max()) + 0.02
    for mark in (limit, HIGHEST_VERTICAL_PEAK_BW.low):
        if mark is not None:
            low, high = min(low, mark - 0.02), max(high, mark + 0.02)
    bins = np.linspace(low, high, 40).tolist()
    for leg, group in data.steps.groupby("leg"):
        ax.hist(
            group["peak_bw"].dropna(),
            bins=bins,
            alpha=0.55,
            color=LEG_COLOURS.get(str(leg), "#555"),
            label=f"{leg_label(str(leg), affected)}: median {group['peak_bw'].median():.2f} BW",
        )
    if limit is not None:
        over = int((peaks > limit).sum())
        ax.axvline(limit, color="#d62728", linestyle="--", label=f"feedback limit {limit:.2f} BW ({over} steps over)")
    norm = HIGHEST_VERTICAL_PEAK_BW
    ax.axvline(norm.low, color="#2ca02c", linestyle=":", linewidth=1.5, label=norm.text())
    ax.set_xlabel("highest vertical peak per step (BW)")
    ax.set_ylabel("steps")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _gait_phases(m: DayMetrics) -> str:
    figure = Figure(figsize=(10.5, 2.4))
    ax = figure.subplots()
    rows = [
        ("stance", m.stance_pct, STANCE_PCT),
        ("swing", m.swing_pct, SWING_PCT),
        ("double support", m.double_support_pct, DOUBLE_SUPPORT_PCT),
    ]
    for y, (name, value, norm) in enumerate(rows):
        ax.axvspan(0, 0, alpha=0)  # keep the x range from 0
        ax.fill_betweenx([y - 0.4, y + 0.4], norm.low, norm.high, color="#2ca02c", alpha=0.3, linewidth=0)
        if value is not None:
            ax.barh(y, value, height=0.45, color="#4c72b0")
            ax.text(value + 0.8, y, f"{value:.0f} %", va="center", fontsize=9)
        else:
            ax.text(1, y, "needs both legs monitored" if name == "double support" else "no walking", va="center")
    ax.set_yticks(range(len(rows)), [name for name, _, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of the gait cycle (median of {m.gait_cycles} cycles)")
    ax.grid(alpha=0.3, axis="x")
    band = Patch(color="#2ca02c", alpha=0.3, label="healthy adults at 1.0–1.5 m/s (sources in the README)")
    ax.legend(handles=[Patch(color="#4c72b0", label="this day"), band], fontsize=8, loc="lower right")
    figure.tight_layout()
    return _png(figure)


def _load_over_day(data: DayData, metrics: DayMetrics, limit: float | None) -> str:
    figure = Figure(figsize=(10.5, 3.2))
    ax = figure.subplots()
    hours = (data.steps["t"].to_numpy() - data.start) / 3600.0
    edges = np.arange(0, 24.25, 0.25)
    counts, _ = np.histogram(hours, bins=edges)
    handles: list[Any] = [
        ax.bar(edges[:-1], counts, width=0.25, align="edge", color="#4c72b0", label="steps per 15 min")
    ]
    for gap_start, gap_end in metrics.gaps:
        ax.axvspan(
            (gap_start - data.start) / 3600, (gap_end - data.start) / 3600, color="#bbb", alpha=0.35, linewidth=0
        )
    if metrics.gaps:
        handles.append(Patch(color="#bbb", alpha=0.35, label="no data (device off, not worn or out of range)"))
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 2))
    ax.set_xlabel("time of day (h)")
    ax.set_ylabel("steps per 15 min")
    ax.grid(alpha=0.3, axis="y")
    if not data.steps.empty:
        twin = ax.twinx()
        bins = np.clip(np.digitize(hours, edges) - 1, 0, len(edges) - 2)
        means = np.full(len(edges) - 1, np.nan)
        binned = pd.Series(data.steps["peak_bw"].to_numpy()).groupby(bins).mean()
        means[binned.index.to_numpy()] = binned.to_numpy()
        # NaN in empty quarter hours breaks the line: no mean is drawn across a time without steps
        (line,) = twin.plot(
            edges[:-1] + 0.125,
            means,
            "o-",
            color="#dd8452",
            markersize=3,
            label="highest vertical peak per step, mean per 15 min (BW)",
        )
        handles.append(line)
        if limit is not None:
            handles.append(twin.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label="feedback limit"))
        twin.set_ylabel("force (BW)")
        finite = means[np.isfinite(means)]
        top = max([float(finite.max()) if finite.size else 1.0, limit or 0.0]) * 1.08
        twin.set_ylim(0, top)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.2), ncol=2, frameon=False)
    figure.tight_layout()
    return _png(figure)


def _day_axis(ax: Any, table: pd.DataFrame) -> None:
    """Show every day of the table on the x axis (days without data included)."""
    x = pd.to_datetime(pd.Series(table.index))
    ax.set_xlim(x.iloc[0] - pd.Timedelta(hours=12), x.iloc[-1] + pd.Timedelta(hours=12))
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def _trend(table: pd.DataFrame, found: dict[str, Baseline], day: date) -> str:
    figure = Figure(figsize=(10.5, 3.7))
    axes = figure.subplots(1, 2)
    x = pd.to_datetime(pd.Series(table.index))
    for ax, metric, label, unit in (
        (axes[0], "steps", "steps per day", "steps"),
        (axes[1], "peak_bw_mean", "highest vertical peak per step, day mean", "force (BW)"),
    ):
        values = table[metric].to_numpy()  # NaN on days without data: the line breaks there
        ax.plot(x, values, "o-", color="#4c72b0", markersize=3, label="days with data")
        ax.plot(x.iloc[-1:], values[-1:], "o", color="#d62728", markersize=7, label=f"this day ({day.isoformat()})")
        baseline = found.get(metric)
        if baseline is not None:
            ax.axhspan(
                baseline.low,
                baseline.high,
                color="#55a868",
                alpha=0.15,
                label=f"usual range (patient's baseline, {baseline.days} days)",
            )
            ax.axhline(baseline.median, color="#55a868", linewidth=1)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        _day_axis(ax, table)
    if not found:
        axes[1].text(0.5, 0.05, "no baseline yet", transform=axes[1].transAxes, ha="center", color="#666")
    handles, labels = axes[0].get_legend_handles_labels()
    for handle, label in zip(*axes[1].get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return _png(figure)


def _asymmetry(data: DayData, table: pd.DataFrame, affected: str | None) -> str:
    figure = Figure(figsize=(10.5, 3.2))
    axes = figure.subplots(1, 2)
    groups = [(str(leg), g["peak1_bw"].dropna().to_numpy()) for leg, g in data.steps.groupby("leg")]
    if groups:
        axes[0].boxplot([g for _, g in groups], tick_labels=[leg_label(leg, affected) for leg, _ in groups])
    else:
        axes[0].text(0.5, 0.5, "no steps this day", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("first vertical peak (BW)")
    axes[0].set_title("first vertical peak (loading response) per step", fontsize=10)
    x = pd.to_datetime(pd.Series(table.index))
    axes[1].axhline(0, color="#999", linewidth=0.8)
    values = table["asymmetry"].to_numpy() * 100
    known = np.isfinite(values)
    axes[1].plot(x, values, "o-", color="#8172b3", markersize=3)
    axes[1].set_ylabel("(R−L)/max(R,L) (%)")
    axes[1].set_title("daily asymmetry of the first vertical peak (0 = even)", fontsize=10)
    _day_axis(axes[1], table)
    if not known.any():
        axes[1].text(0.5, 0.5, "needs both legs monitored", ha="center", transform=axes[1].transAxes, color="#666")
    for ax in axes:
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


# ---------------------------------------------------------------- page


def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _versus(metric: str, found: dict[str, Baseline]) -> str:
    baseline = found.get(metric)
    return f"usual {number(baseline.low)}–{number(baseline.high)}" if baseline else "no baseline yet"


def duration_text(minutes: float) -> str:
    """``45 min`` under two hours, else ``13.5 h``."""
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _recorded_span(data: DayData) -> str:
    """``07:00–21:00``: from the first to the end of the last GRF summary of the day, or ``no summaries``."""
    if data.summaries.empty:
        return "no summaries from the device"
    first = float(data.summaries["t"].min())
    last = float((data.summaries["t"] + data.summaries["duration_s"].fillna(0.0)).max())
    return f"{_clock(first, data.tz)}–{_clock(last, data.tz)}"


def _cards(m: DayMetrics, found: dict[str, Baseline], data: DayData, context: PatientContext) -> list[Card]:
    """The summary cards, in page order."""
    legs = (
        ", ".join(f"{leg_label(leg, context.affected_leg)} {n}" for leg, n in sorted(m.steps_by_leg.items())) or "none"
    )
    asymmetry = (
        (f"{m.asymmetry * 100:+.1f} %", "(R−L)/max(R,L) of the first vertical peak (loading response)")
        if m.asymmetry is not None
        else ("–", "needs both legs monitored")
    )
    limit = context.feedback_limit_bw
    over = (
        f"; {int((data.steps['peak_bw'] > limit).sum())} steps over the {limit:.2f} BW limit"
        if limit is not None
        else ""
    )
    phases = (
        f"{m.stance_pct:.0f} / {m.swing_pct:.0f} %" if m.stance_pct is not None and m.swing_pct is not None else "–"
    )
    return [
        Card("steps", "Steps", f"{m.steps:,}", f"{legs}; {_versus('steps', found)}"),
        Card(
            "walking",
            "Walking time",
            f"{m.walking_min:.0f} min",
            f"{m.bouts} bouts, longest {m.longest_bout_min:.1f} min",
        ),
        Card("cadence", "Cadence", _fmt(m.cadence_spm, 0, " /min"), "steps per minute while walking"),
        Card(
            "peak",
            "Highest vertical peak per step",
            _fmt(m.peak_bw_mean, 2, " BW"),
            f"day mean, {_fmt(m.peak_n_mean, 0, ' N')}, SD {_fmt(m.peak_bw_sd, 2, ' BW')}; "
            f"{_versus('peak_bw_mean', found)}{over}; {HIGHEST_VERTICAL_PEAK_BW.text()}",
        ),
        Card(
            "loading",
            "Loading rate",
            _fmt(m.loading_rate_bw_s_mean, 1, " BW/s"),
            f"day mean; impulse {_fmt(m.impulse_bws_mean, 3, ' BW·s')} per step, {m.load_bws:.0f} BW·s in the day",
        ),
        Card("stance", "Stance time", _fmt(m.stance_s_mean, 2, " s"), "foot on the ground per step, day mean"),
        Card(
            "phases",
            "Stance / swing",
            phases,
            f"of the gait cycle; double support {_fmt(m.double_support_pct, 0, ' %')} "
            f"({m.gait_cycles} cycles); {STANCE_PCT.text()}",
        ),
        Card("ml", "Medial-lateral peak", _fmt(m.peak_ml_bw_mean, 3, " BW"), "largest medial force per step, mean"),
        Card("asymmetry", "Asymmetry", *asymmetry),
        Card(
            "wear",
            "Recorded time",
            duration_text(m.wear_min),
            f"device worn and running {_recorded_span(data)}; {len(m.gaps)} gap(s) without data; {m.cues} cue(s)",
        ),
    ]


@cache
def _templates() -> Environment:
    """The report templates (package data under ``templates/``), HTML-escaping every value."""
    return Environment(
        loader=PackageLoader("forcecast.host_app", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _page(
    data: DayData,
    m: DayMetrics,
    plots: dict[str, tuple[str, str]],
    cards: list[Card],
    devices: dict[str, dict[str, Any]],
    source: str,
    context: PatientContext,
    paper: str,
) -> str:
    rows = []
    for device_id in m.devices:
        known = devices.get(device_id, {})
        rows.append(
            DeviceRow(
                device_id,
                str(known.get("info", {}).get("firmware", "–")),
                str(known.get("last_seen_utc", "–")),
                str(known.get("clock_offset_ms", "–")),
            )
        )
    template = _templates().get_template("report.html.j2")
    return template.render(
        m=m,
        tz=str(data.tz),
        generated=datetime.now(data.tz).strftime("%Y-%m-%d %H:%M %Z"),
        flags=sorted(m.flags, key=lambda f: list(FLAG_LEVELS).index(f.level)),
        levels=FLAG_LEVELS,
        paper=paper,
        cards=cards,
        plots=plots,
        gaps=", ".join(f"{_clock(a, data.tz)}–{_clock(b, data.tz)}" for a, b in m.gaps) or "none",
        devices=rows,
        version=version("forcecast"),
        source=source,
        context=_context_rows(context),
        context_source=context.source,
    )


def _context_rows(context: PatientContext) -> list[tuple[str, str]]:
    """The patient context as (label, text) pairs; unknown fields say so."""

    def known(value: float | None, text: str) -> str:
        return text if value is not None else "not known"

    side = context.affected_side
    hka = context.hka_deg
    alignment = "not known"
    if hka is not None:
        kind = "varus" if hka > 0 else "valgus" if hka < 0 else "neutral"
        alignment = f"{abs(hka):.1f}° {kind}" if hka else "0° (neutral)"
    mass = context.body_mass_kg
    return [
        ("affected side", side if side is not None else "not known"),
        ("knee alignment (HKA)", alignment),
        ("body mass", known(mass, f"{mass:.1f} kg (1 BW = {(mass or 0) * 9.80665:.0f} N)")),
        ("height", known(context.height_m, f"{context.height_m or 0:.2f} m")),
        ("feedback limit", known(context.feedback_limit_bw, f"{context.feedback_limit_bw or 0:.2f} BW")),
    ]


def _clock(t: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%H:%M")


def report_day_default(tz: tzinfo) -> date:
    """Yesterday in ``tz`` (the last complete day)."""
    return (datetime.now(tz) - timedelta(days=1)).date()


def write_report(report: Report, out: Path) -> Path:
    """Write the HTML (creating folders)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    return out
