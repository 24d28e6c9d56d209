"""Made once, with the store and step metrics as they were before typed records (no "v" in payloads)."""

from pathlib import Path

import numpy as np

from forcecast.edge.runtime.step_metrics import step_metrics
from forcecast.edge.runtime.steps import Stance
from forcecast.edge.runtime.storage_guard import Outage
from forcecast.edge.runtime.store import RecordStore

path = Path("tests/data/records/device_store_v1.sqlite")
path.unlink(missing_ok=True)
t = np.linspace(10.0, 10.62, 63)
phase = (t - t[0]) / (t[-1] - t[0])
v = np.sin(np.pi * phase) * 1.1 + 0.1 * np.sin(3 * np.pi * phase)
grf = np.stack([v, -0.2 * np.sin(2 * np.pi * phase), 0.05 * np.sin(np.pi * phase)], axis=1)
metrics = step_metrics(Stance(10.0, 10.62, t, grf), 700.0)
step = {
    "leg": "l",
    **metrics,
    "asymmetry_peak1": None,
    "flags": ["dropout"],
    "calibrated": True,
    "patient_id": "P1",
    "model_version": "m-2026",
    "t_unix": 1767254410.0,
}
step2 = {**step, "leg": "r", "asymmetry_peak1": 0.031, "flags": [], "t_unix": 1767254410.6}
summary = {
    "start_s": 0.0,
    "end_s": 10.0,
    "steps": {"l": 1, "r": 1},
    "grf_samples": {"l": 1000, "r": 1000},
    "mean_v_bw": {"l": 0.51, "r": None},
    "max_v_bw": {"l": 1.2, "r": 0.0},
    "quality_events": {"nan": 0, "dropout": 1, "clock_jump": 0, "saturation": 0},
    "cues": 1,
    "patient_id": "P1",
    "t_unix": 1767254400.0,
}
events = [
    {
        "event": "cue",
        "leg": "l",
        "time_s": 10.2,
        "force_bw": 1.21,
        "limit_bw": 1.2,
        "latency_ms": 41.5,
        "t_unix": 1767254410.2,
    },
    {"event": "dropout", "start_s": 5.0, "end_s": 5.4, "samples": 40, "detail": "gap of 0.4 s", "t_unix": 1767254405.0},
    {"event": "calibration_skipped", "detail": "moving", "t_unix": 1767254400.0},
    {"event": "model_switched", "from": "m-2025", "to": "m-2026", "t_unix": 1767254401.0},
    {"event": "model_confirmed", "detail": "m-2026 after 300 s", "t_unix": 1767254402.0},
    {**Outage(True, 6.0, 8.0, "disk full", held=3, lost={"step": 1}, attempts=2).payload(), "t_unix": 1767254408.0},
]
with RecordStore(path, device_id="fc-fixture", reserve_bytes=0) as store:
    store.append("step", [(10.0, step), (10.6, step2)])
    store.append("summary", [(0.0, summary)])
    store.append("event", [(float(i), e) for i, e in enumerate(events)])
    store.quarantine("step", 2, "cannot be sent: test")  # adds a record_quarantined event
    store.ack("step", 1)
print(path.stat().st_size)
