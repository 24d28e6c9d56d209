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

from forcecast.host_app.analytics import (
    AXES,
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

TREND_DAYS = 28
LEG_COLOURS = {"l": "#1f77b4", "r": "#d62728"}
LEG_NAMES = {"l": "left", "r": "right"}
AXIS_NAMES = {"v": "vertical", "ap": "anterior-posterior", "ml": "medial-lateral"}
DPI = 96


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
    """
    started = time.perf_counter()
    config = config or AnalyticsConfig()
    data = load_day(store, patient_id, day, tz)
    context = (context or PatientContext()).merged(context_from_day(data))
    metrics = day_metrics(data, config)
    table = daily_table(store, patient_id, day, TREND_DAYS, tz, config)
    found = add_trend_flags(metrics, table, config)
    devices = {d["device_id"]: d for d in store.devices()}
    plots = {
        "stance-curves": ("Stance GRF, mean ± SD", _stance_curves(data)),
        "peak-distribution": ("Distribution of step peaks", _peak_distribution(data)),
        "load-over-day": ("Load over the day", _load_over_day(data, metrics)),
        "trend": (f"{TREND_DAYS}-day trend", _trend(table, found, day)),
        "asymmetry": ("Left/right", _asymmetry(data, table)),
    }
    cards = _cards(metrics, found)
    page = _page(data, metrics, plots, cards, devices, source, context)
    return Report(page, metrics, list(plots), [c.id for c in cards], time.perf_counter() - started, context)


# ---------------------------------------------------------------- plots


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _empty(figure: Figure, message: str) -> str:
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#666")
    return _png(figure)


def _stance_curves(data: DayData) -> str:
    figure = Figure(figsize=(10.5, 3.2))
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
            ax.fill_between(phase, mean - sd, mean + sd, color=LEG_COLOURS[leg], alpha=0.2, linewidth=0)
            ax.plot(phase, mean, color=LEG_COLOURS[leg], label=f"{LEG_NAMES[leg]} (n={chosen.shape[0]})")
        ax.set_title(AXIS_NAMES[axis], fontsize=10)
        ax.set_xlabel("stance (%)")
        ax.axhline(0, color="#999", linewidth=0.5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("force (BW)")
    if data.steps.empty:
        axes[1].text(0.5, 0.5, "no steps this day", ha="center", va="center", transform=axes[1].transAxes)
    else:
        axes[0].legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    return _png(figure)


def _peak_distribution(data: DayData) -> str:
    figure = Figure(figsize=(5.2, 3.2))
    if data.steps.empty:
        return _empty(figure, "no steps this day")
    ax = figure.subplots()
    peaks = data.steps["peak_bw"].dropna()
    bins = np.linspace(float(peaks.min()) - 0.02, float(peaks.max()) + 0.02, 30).tolist()
    for leg, group in data.steps.groupby("leg"):
        ax.hist(
            group["peak_bw"].dropna(),
            bins=bins,
            alpha=0.6,
            color=LEG_COLOURS.get(str(leg), "#555"),
            label=f"{LEG_NAMES.get(str(leg), leg)} (median {group['peak_bw'].median():.2f})",
        )
    ax.set_xlabel("peak vertical force (BW)")
    ax.set_ylabel("steps")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _load_over_day(data: DayData, metrics: DayMetrics) -> str:
    figure = Figure(figsize=(10.5, 3.0))
    ax = figure.subplots()
    hours = (data.steps["t"].to_numpy() - data.start) / 3600.0
    edges = np.arange(0, 24.25, 0.25)
    counts, _ = np.histogram(hours, bins=edges)
    ax.bar(edges[:-1], counts, width=0.25, align="edge", color="#4c72b0", label="steps per 15 min")
    for gap_start, gap_end in metrics.gaps:
        ax.axvspan(
            (gap_start - data.start) / 3600, (gap_end - data.start) / 3600, color="#bbb", alpha=0.35, linewidth=0
        )
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 2))
    ax.set_xlabel("time of day (h)")
    ax.set_ylabel("steps")
    ax.grid(alpha=0.3, axis="y")
    if not data.steps.empty:
        twin = ax.twinx()
        binned = pd.Series(data.steps["peak_bw"].to_numpy()).groupby(np.digitize(hours, edges) - 1).mean()
        twin.plot(
            edges[binned.index] + 0.125, binned.to_numpy(), "o-", color="#dd8452", markersize=3, label="mean peak (BW)"
        )
        twin.set_ylabel("mean peak (BW)")
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    figure.tight_layout()
    return _png(figure)


def _trend(table: pd.DataFrame, found: dict[str, Baseline], day: date) -> str:
    figure = Figure(figsize=(10.5, 3.2))
    axes = figure.subplots(1, 2)
    x = pd.to_datetime(pd.Series(table.index))
    for ax, metric, label in (
        (axes[0], "steps", "steps per day"),
        (axes[1], "peak_bw_mean", "mean peak vertical force (BW)"),
    ):
        values = table[metric].to_numpy()
        ax.plot(x, values, "o-", color="#4c72b0", markersize=3)
        ax.plot(x.iloc[-1:], values[-1:], "o", color="#d62728", markersize=7, label=day.isoformat())
        baseline = found.get(metric)
        if baseline is not None:
            ax.axhspan(baseline.low, baseline.high, color="#55a868", alpha=0.15, label="usual range")
            ax.axhline(baseline.median, color="#55a868", linewidth=1)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.legend(fontsize=8, loc="upper left")
    if not found:
        axes[1].text(0.5, 0.05, "no baseline yet", transform=axes[1].transAxes, ha="center", color="#666")
    figure.tight_layout()
    return _png(figure)


def _asymmetry(data: DayData, table: pd.DataFrame) -> str:
    figure = Figure(figsize=(10.5, 3.0))
    axes = figure.subplots(1, 2)
    groups = [(leg, g["peak1_bw"].dropna().to_numpy()) for leg, g in data.steps.groupby("leg")]
    if groups:
        axes[0].boxplot([g for _, g in groups], tick_labels=[LEG_NAMES.get(str(leg), leg) for leg, _ in groups])
    else:
        axes[0].text(0.5, 0.5, "no steps this day", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("first peak (BW)")
    axes[0].set_title("first vertical peak per leg", fontsize=10)
    x = pd.to_datetime(pd.Series(table.index))
    axes[1].axhline(0, color="#999", linewidth=0.8)
    axes[1].plot(x, table["asymmetry"].to_numpy() * 100, "o-", color="#8172b3", markersize=3)
    axes[1].set_ylabel("(R−L)/max(R,L) (%)")
    axes[1].set_title("daily asymmetry of the first peak", fontsize=10)
    axes[1].tick_params(axis="x", labelrotation=45, labelsize=8)
    if table["asymmetry"].isna().all():
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


def _cards(m: DayMetrics, found: dict[str, Baseline]) -> list[Card]:
    """The summary cards, in page order."""
    legs = ", ".join(f"{LEG_NAMES.get(leg, leg)} {n}" for leg, n in sorted(m.steps_by_leg.items())) or "none"
    asymmetry = (
        (f"{m.asymmetry * 100:+.1f} %", "(R−L)/max(R,L) of the first peak")
        if m.asymmetry is not None
        else ("–", "needs both legs monitored")
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
            "Peak vertical force",
            _fmt(m.peak_bw_mean, 2, " BW"),
            f"{_fmt(m.peak_n_mean, 0, ' N')} ± {_fmt(m.peak_bw_sd, 2, ' BW')}; {_versus('peak_bw_mean', found)}",
        ),
        Card(
            "loading",
            "Loading rate",
            _fmt(m.loading_rate_bw_s_mean, 1, " BW/s"),
            f"impulse {_fmt(m.impulse_bws_mean, 3, ' BW·s')} per step; day {m.load_bws:.0f} BW·s",
        ),
        Card("ml", "Peak medial-lateral", _fmt(m.peak_ml_bw_mean, 3, " BW"), "mean per step"),
        Card("asymmetry", "Asymmetry", *asymmetry),
        Card("wear", "Wear time", f"{m.wear_min / 60:.1f} h", f"{len(m.gaps)} gap(s) without data; {m.cues} cue(s)"),
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
        flags=sorted(m.flags, key=lambda f: f.level != "alert"),
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
