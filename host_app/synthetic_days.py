"""Synthetic host-store days, records shaped like the runtime's: for the report benchmark and the tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from forcecast.edge.records import KIND_LABELS, EventRecord, EventType, Record, StepRecord, SummaryRecord
from forcecast.host_app.store import HostStore

PHASE = np.linspace(0.0, 1.0, 101)
WORN_S = 14 * 3600.0
"""How long a synthetic day's device runs (07:00 to 21:00)."""


def waveform(
    peak1: float, peak2: float, rng: np.random.Generator
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """A double-humped stance waveform (v, ap, ml in BW, 101 points) with the given peaks and a little noise."""
    hump = np.exp(-(((PHASE - 0.25) / 0.12) ** 2)) * peak1 + np.exp(-(((PHASE - 0.75) / 0.12) ** 2)) * peak2
    vertical = np.minimum(hump + 0.75 * np.sin(np.pi * PHASE) ** 2, np.maximum(peak1, peak2))
    ap = -0.2 * np.sin(2 * np.pi * PHASE)
    ml = 0.06 * np.sin(np.pi * PHASE)
    noise = rng.normal(0.0, 0.004, (3, 101))
    v, a, m = (tuple(np.round(c + n, 4).tolist()) for c, n in zip((vertical, ap, ml), noise, strict=True))
    return v, a, m


def write_day(
    store: HostStore,
    day: date,
    steps: int,
    patient: str = "P1",
    device: str = "fc-demo",
    seed: int = 0,
    first_seq: dict[str, int] | None = None,
    peak_shift: float = 0.0,
    summary_s: float = 60.0,
) -> dict[str, int]:
    """A worn day: the device runs from 07:00 to 21:00 UTC; bouts of walking add up to ``steps`` stance phases.

    GRF summaries cover the whole worn time, ``summary_s`` each (the runtime writes one every 10 s; longer ones
    keep test stores small), so the day's recorded time is 14 h.
    """
    rng = np.random.default_rng(seed)
    seq = dict(first_seq or dict.fromkeys(KIND_LABELS, 0))
    base = datetime(day.year, day.month, day.day, 7, tzinfo=UTC).timestamp()
    records: list[Record] = []
    bout_starts = np.sort(rng.uniform(0, WORN_S - 1200, max(1, steps // 300)))
    per_bout = np.diff(np.linspace(0, steps, bout_starts.size + 1).astype(int))
    for start, n in zip(bout_starts, per_bout, strict=True):
        t0 = base + float(start)
        for k in range(int(n)):
            leg = "r" if k % 2 == 0 else "l"
            peak1 = 1.12 + peak_shift + rng.normal(0, 0.04) - (0.08 if leg == "l" else 0.0)
            peak2 = 1.05 + peak_shift + rng.normal(0, 0.04)
            t = t0 + k * 0.55
            records.append(
                StepRecord(
                    t_unix=round(t, 3),
                    patient_id=patient,
                    leg=leg,
                    ic_s=t,
                    tc_s=t + 0.62,
                    stance_s=round(0.62 + rng.normal(0, 0.02), 3),
                    peak1_bw=round(peak1, 4),
                    peak2_bw=round(peak2, 4),
                    peak1_n=round(peak1 * 700, 2),
                    peak2_n=round(peak2 * 700, 2),
                    loading_rate_bw_s=round(9.0 + rng.normal(0, 0.6), 3),
                    impulse_v_bws=round(0.55 + rng.normal(0, 0.02), 4),
                    peak_ml_bw=round(0.06 + rng.normal(0, 0.005), 4),
                    peak_ml_n=42.0,
                    waveform_bw=waveform(peak1, peak2, rng),
                    flags=(),
                    calibrated=True,
                    model_version="cnn_lstm_static-int8-test",
                )
            )
    for start_s in np.arange(0.0, WORN_S, summary_s):
        records.append(
            SummaryRecord(
                t_unix=round(base + float(start_s), 3),
                start_s=0.0,
                end_s=float(min(summary_s, WORN_S - start_s)),
                patient_id=patient,
            )
        )
    records.append(EventRecord(event=EventType.DROPOUT, t_unix=base + 3600, patient_id=patient))
    rows = []
    for record in records:
        label = record.KIND.label
        seq[label] += 1
        rows.append((label, seq[label], record.to_payload()))
    store.add_many(device, rows, "2026-01-01T00:00:00Z")
    return seq
