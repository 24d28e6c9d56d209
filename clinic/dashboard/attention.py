"""Which patients need the physiotherapist's attention first: pure functions on per-day figures.

The patient list is ordered by

1. **flags**: the last complete day's figures outside the patient's own usual range (the report's baseline
   rule, :func:`forcecast.host_app.analytics.baselines`), most flags first;
2. **missing days**: days without any data among the last ``window_days`` complete days, most first;
3. **adherence**: hours the device was worn per day with data in that window, least first.

Every row says why in words. Nothing here touches the database: the figures come from
:mod:`forcecast.clinic.dashboard.queries`, so the ranking is tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from forcecast.host_app.analytics import TREND_METRICS, AnalyticsConfig, baselines, number

RANKED_METRICS: tuple[str, ...] = ("steps", "peak_bw_mean", "loading_rate_bw_s_mean", "load_bws")
"""The daily figures the list checks against the patient's usual range (a subset of the report's trend)."""


@dataclass(frozen=True)
class DayFigures:
    """One patient's figures of one local day, as the database adds them up."""

    day: date
    steps: int = 0
    wear_min: float = 0.0
    peak_bw_mean: float | None = None
    loading_rate_bw_s_mean: float | None = None
    load_bws: float = 0.0
    cues: int = 0
    quality_events: int = 0

    @property
    def has_data(self) -> bool:
        """Whether the device sent anything that day (steps or wear summaries)."""
        return self.steps > 0 or self.wear_min > 0


@dataclass(frozen=True)
class AttentionConfig:
    """Thresholds of the ranking.

    Attributes
    ----------
    window_days
        How many complete days (ending yesterday) count for missing days and adherence.
    wear_target_h
        Hours of wear per day with data below which adherence is called low.
    analytics
        The report's baseline rule (days, band), so the list and the report flag the same days.
    """

    window_days: int = 7
    wear_target_h: float = 8.0
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.wear_target_h <= 0:
            raise ValueError(
                f"need window_days ≥ 1 and wear_target_h > 0, not {self.window_days}, {self.wear_target_h}"
            )

    @property
    def history_days(self) -> int:
        """Days of figures the ranking reads: the baseline before yesterday plus yesterday, or the window."""
        return max(self.window_days, self.analytics.baseline_days + 1)


@dataclass(frozen=True)
class Attention:
    """Why one patient is where they are in the list."""

    patient_id: int
    flags: tuple[str, ...]
    missing_days: tuple[date, ...]
    wear_h_per_day: float
    days_with_data: int
    low_adherence: bool
    notes: tuple[str, ...]
    """Information that does not move the patient up (quality events, cues)."""

    @property
    def reasons(self) -> list[str]:
        """Everything that needs attention, in words, most important first (empty when nothing does)."""
        out = list(self.flags)
        if self.missing_days:
            days = ", ".join(d.strftime("%a %d %b") for d in self.missing_days)
            out.append(f"no data on {len(self.missing_days)} of the last days: {days}")
        if self.low_adherence:
            out.append(
                f"worn {self.wear_h_per_day:.1f} h per day with data"
                if self.days_with_data
                else "never worn in the last days"
            )
        return out

    def sort_key(self) -> tuple[int, int, float, int]:
        """Flags first (most), then missing days (most), then adherence (least), then the older patient first."""
        return (-len(self.flags), -len(self.missing_days), self.wear_h_per_day, self.patient_id)


def _table(days: list[DayFigures]) -> pd.DataFrame:
    """The report's trend table shape (``has_data`` and every trend metric; NaN where unknown or no steps)."""
    rows = []
    for figures in days:
        row: dict[str, object] = {"day": figures.day, "has_data": figures.steps > 0}
        for metric in TREND_METRICS:
            value = getattr(figures, metric, None) if figures.steps > 0 else None
            row[metric] = math.nan if value is None else float(value)
        rows.append(row)
    columns = ["day", "has_data", *TREND_METRICS]
    return pd.DataFrame(rows, columns=columns).set_index("day")


def _flags(days: list[DayFigures], yesterday: date, config: AttentionConfig) -> list[str]:
    """Yesterday's figures outside the usual range of the days before it (nothing without a baseline)."""
    latest = next((d for d in days if d.day == yesterday), None)
    if latest is None or latest.steps == 0:
        return []
    found = baselines(_table(days), yesterday, config.analytics)
    flags = []
    for metric in RANKED_METRICS:
        baseline = found.get(metric)
        value = getattr(latest, metric)
        if baseline is None or value is None:
            continue
        if not baseline.low <= float(value) <= baseline.high:
            direction = "above" if value > baseline.high else "below"
            flags.append(
                f"{yesterday:%a %d %b}: {TREND_METRICS[metric]} {number(float(value))} {direction} the usual "
                f"{number(baseline.low)}–{number(baseline.high)}"
            )
    return flags


def assess(patient_id: int, days: list[DayFigures], today: date, config: AttentionConfig | None = None) -> Attention:
    """Rank one patient from their daily figures.

    Parameters
    ----------
    patient_id
        The patient's database id (the last tie-breaker).
    days
        Figures per local day; days not given count as days without data.
    today
        The clinic's today: the window is the ``window_days`` complete days before it.
    config
        Thresholds.

    Returns
    -------
    Attention
        The flags, missing days, adherence and notes of the patient.
    """
    config = config or AttentionConfig()
    yesterday = today - timedelta(days=1)
    by_day = {d.day: d for d in days}
    window = [yesterday - timedelta(days=k) for k in range(config.window_days - 1, -1, -1)]
    in_window = [by_day.get(day, DayFigures(day)) for day in window]
    with_data = [d for d in in_window if d.has_data]
    wear_h = sum(d.wear_min for d in with_data) / 60.0 / len(with_data) if with_data else 0.0
    history = sorted((d for d in days if d.day <= yesterday), key=lambda d: d.day)
    notes = []
    quality = sum(d.quality_events for d in in_window)
    if quality:
        notes.append(f"{quality} sensor quality event(s) in the last {config.window_days} days")
    cues = sum(d.cues for d in in_window)
    if cues:
        notes.append(f"{cues} biofeedback cue(s) in the last {config.window_days} days")
    return Attention(
        patient_id=patient_id,
        flags=tuple(_flags(history, yesterday, config)),
        missing_days=tuple(d.day for d in in_window if not d.has_data),
        wear_h_per_day=round(wear_h, 2),
        days_with_data=len(with_data),
        low_adherence=wear_h < config.wear_target_h,
        notes=tuple(notes),
    )


def rank(attentions: list[Attention]) -> list[Attention]:
    """The patient list's order: see the module docstring."""
    return sorted(attentions, key=Attention.sort_key)
