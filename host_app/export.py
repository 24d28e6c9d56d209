"""``forcecast host export``: a patient's records as tables a researcher can load anywhere."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

import numpy as np
import pandas as pd

from forcecast.host_app.analytics import AXES, day_metrics, load_day
from forcecast.host_app.store import HostStore


def export_range(store: HostStore, patient_id: str, first: date, last: date, tz: tzinfo, out: Path) -> dict[str, Path]:
    """Write ``steps.csv``/``steps.parquet``, ``days.csv`` and ``events.csv`` for ``first``..``last``.

    ``steps.parquet`` also holds each step's 101-point stance waveform per axis (list columns
    ``waveform_v_bw``, ``waveform_ap_bw``, ``waveform_ml_bw``); the CSV leaves them out to stay readable.
    Times are ISO 8601 in ``tz`` plus Unix seconds on the host clock.
    """
    out.mkdir(parents=True, exist_ok=True)
    steps, days, events = [], [], []
    day = first
    while day <= last:
        data = load_day(store, patient_id, day, tz)
        frame = data.steps.copy()
        for axis in AXES:
            frame[f"waveform_{axis}_bw"] = [row.tolist() for row in np.round(data.waveforms[axis], 4)]
        steps.append(frame)
        events.append(data.events)
        metrics = day_metrics(data).as_dict()
        metrics.pop("flags")
        metrics["gaps"] = len(metrics["gaps"])
        for name, count in metrics.pop("quality").items():
            metrics[f"events_{name}"] = count
        for leg, count in metrics.pop("steps_by_leg").items():
            metrics[f"steps_{leg}"] = count
        metrics["devices"] = ";".join(metrics["devices"])
        metrics["model_versions"] = ";".join(metrics["model_versions"])
        days.append(metrics)
        day += timedelta(days=1)
    table = pd.concat(steps, ignore_index=True)
    table.insert(0, "time", [datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds") for t in table["t"]])
    table.insert(0, "patient_id", patient_id)
    event_table = pd.concat(events, ignore_index=True)
    event_table.insert(0, "time", [datetime.fromtimestamp(t, tz).isoformat() for t in event_table["t"]])
    written = {
        "steps_csv": out / "steps.csv",
        "steps_parquet": out / "steps.parquet",
        "days_csv": out / "days.csv",
        "events_csv": out / "events.csv",
    }
    table.drop(columns=[f"waveform_{a}_bw" for a in AXES]).to_csv(written["steps_csv"], index=False)
    table.to_parquet(written["steps_parquet"], index=False)
    pd.DataFrame(days).to_csv(written["days_csv"], index=False)
    event_table.to_csv(written["events_csv"], index=False)
    return written
