"""What one record adds to the dashboard's figures of its quarter hour (the ``record_buckets`` table).

The patient list and the trends need, per patient and local day, the steps, the mean peak vertical force and
loading rate, the load, the wear time, cues and quality events. Reading them out of every record's JSON at each
page view costs seconds per patient-month, so each record's share is worked out once, when it arrives
(:func:`tally_of`), and added to its patient's quarter-hour bucket in the same transaction that stores it.
Quarter hours, because every time zone in use is a whole number of quarter hours from UTC: a local day is an
exact run of buckets whatever the clinic's zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from forcecast.host_app.analytics import QUALITY_EVENTS

BUCKET_S = 900
"""Seconds per bucket (a quarter hour)."""


@dataclass(frozen=True)
class Tally:
    """Sums that add up over records (means are kept as sum and count so that buckets add up too)."""

    steps: int = 0
    peak_sum: float = 0.0
    peak_n: int = 0
    loading_rate_sum: float = 0.0
    loading_rate_n: int = 0
    load_bws: float = 0.0
    wear_s: float = 0.0
    cues: int = 0
    quality: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Tally)))

    def as_row(self) -> dict[str, float | int]:
        """The column values of a ``record_buckets`` row."""
        return {f.name: getattr(self, f.name) for f in fields(Tally)}


NOTHING = Tally()
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Tally))


def _number(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def tally_of(kind: str, payload: Mapping[str, Any]) -> Tally:
    """One record's share of its quarter hour's figures.

    A step adds its count, peak (the larger of its two peaks), loading rate and impulse; a summary its wear
    time (``end_s − start_s``); an event a cue or a quality event.

    Parameters
    ----------
    kind
        ``step``, ``summary`` or ``event``.
    payload
        The record's payload as the clinic stores it (missing or non-numeric fields add nothing).
    """
    if kind == "step":
        first, second = _number(payload, "peak1_bw"), _number(payload, "peak2_bw")
        peak = first if second is None or (first is not None and first >= second) else second
        rate = _number(payload, "loading_rate_bw_s")
        return Tally(
            steps=1,
            peak_sum=peak or 0.0,
            peak_n=int(peak is not None),
            loading_rate_sum=rate or 0.0,
            loading_rate_n=int(rate is not None),
            load_bws=_number(payload, "impulse_v_bws") or 0.0,
        )
    if kind == "summary":
        start, end = _number(payload, "start_s"), _number(payload, "end_s")
        return Tally(wear_s=end - start) if start is not None and end is not None else NOTHING
    if kind == "event":
        event = payload.get("event")
        return Tally(cues=int(event == "cue"), quality=int(event in QUALITY_EVENTS))
    return NOTHING


def bucket_of(t_host: float) -> int:
    """The quarter hour a host time falls in."""
    return math.floor(t_host / BUCKET_S)


def by_bucket(items: Iterable[tuple[float | None, Tally]]) -> dict[int, Tally]:
    """Records' tallies added up per bucket (records without a host time count nowhere, as on the pages)."""
    out: dict[int, Tally] = {}
    for t_host, tally in items:
        if t_host is None or tally == NOTHING:
            continue
        key = bucket_of(t_host)
        out[key] = out.get(key, NOTHING) + tally
    return out
