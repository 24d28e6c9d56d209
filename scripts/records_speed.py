"""Figure: what typed records cost: encoding and decoding one step record, and a host day through them.

A step record shaped like the runtime's (101-point waveform per axis) is encoded (``to_payload``) and
decoded (``records.decode``) many times, with and without its waveform (day queries read records without
it); then a synthetic day of ``--steps`` steps is written to a host store (every record decoded on the way
in) and read back typed (``HostStore.dated_records``) and as the analytics' tables (``load_day``).

Prints one JSON object (microseconds per record, seconds per day).

Usage::

    python scripts/records_speed.py [--repeat 3000] [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.records import StepRecord, decode
from forcecast.host_app.analytics import day_bounds, load_day, zone
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import waveform, write_day


def per_record_us(repeat: int) -> dict[str, float]:
    """Microseconds to encode and to decode one step record (best of three rounds)."""
    record = StepRecord(
        t_unix=1_767_254_400.0,
        patient_id="P1",
        leg="l",
        ic_s=10.0,
        tc_s=10.62,
        stance_s=0.62,
        peak1_bw=1.1,
        peak2_bw=1.05,
        loading_rate_bw_s=9.0,
        impulse_v_bws=0.55,
        peak_ml_bw=0.06,
        waveform_bw=waveform(1.1, 1.05, np.random.default_rng(0)),
        flags=("dropout",),
        calibrated=True,
        model_version="m1",
    )
    payload = record.to_payload()
    brief = {k: v for k, v in payload.items() if k != "waveform_bw"}
    jobs = {
        "encode_step_us": lambda: record.to_payload(),
        "decode_step_us": lambda: decode("step", payload),
        "decode_step_brief_us": lambda: decode("step", brief),
    }
    out = {}
    for name, job in jobs.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(repeat):
                job()
            best = min(best, (time.perf_counter() - started) / repeat)
        out[name] = round(best * 1e6, 1)
    return out


def host_day_s(steps: int) -> dict[str, Any]:
    """Seconds to store a synthetic day (decoded on the way in) and to read it back typed and as tables."""
    day = date(2026, 11, 20)
    tz = zone("UTC")
    with (
        tempfile.TemporaryDirectory(prefix="forcecast-records-speed-") as tmp,
        HostStore(Path(tmp) / "h.sqlite") as store,
    ):
        started = time.perf_counter()
        write_day(store, day, steps, seed=1)
        written = time.perf_counter() - started
        start, end = day_bounds(day, tz)
        started = time.perf_counter()
        typed = store.dated_records("P1", StepRecord, start, end)
        read = time.perf_counter() - started
        started = time.perf_counter()
        data = load_day(store, "P1", day, tz)
        loaded = time.perf_counter() - started
    return {
        "steps": len(typed),
        "write_day_s": round(written, 2),
        "dated_records_s": round(read, 3),
        "load_day_s": round(loaded, 3),
        "load_day_steps": len(data.steps),
    }


def main() -> None:
    """Measure and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3000, help="encodes/decodes per timing round (default 3000)")
    parser.add_argument("--steps", type=int, default=10_000, help="steps in the synthetic host day (default 10000)")
    args = parser.parse_args()
    print(json.dumps({"per_record": per_record_us(args.repeat), "host_day": host_day_s(args.steps)}))


if __name__ == "__main__":
    main()
