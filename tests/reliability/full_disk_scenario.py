"""The runtime on a full disk: one scenario, run in-process (SQLite page limit) or in a child on a 1 MiB tmpfs.

Usage as a child: ``python tests/reliability/full_disk_scenario.py DIR`` with DIR a fresh, small file
system (the parent mounts a 1 MiB tmpfs there in a private mount namespace); prints one JSON object.

The scenario: a device store holds 100 records the host has not acknowledged yet, and the disk is full
(a filler file took the rest of the tmpfs, or ``PRAGMA max_page_count`` caps the database). The real
pipeline (the test model, a synthetic walker never seen in training, both legs, a load limit that
cues) runs over 40 s of walking. At 25 s of sensor time the host acknowledges the 100 old records.
What must hold: steps and cues never stop; nothing the runtime detected is lost; once the
acknowledgement frees space the held records are committed and one ``storage_full`` event says so.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[2]), str(HERE.parents[1])]

from pipelines import source_pipeline, walker_patient  # noqa: E402

from forcecast.edge.interpreter import TFLiteModel  # noqa: E402
from forcecast.edge.keys import load_public_key  # noqa: E402
from forcecast.edge.package import open_package  # noqa: E402
from forcecast.edge.runtime.feedback import StdoutCue  # noqa: E402
from forcecast.edge.runtime.pipeline import run_source  # noqa: E402
from forcecast.edge.runtime.store import RecordStore, StorageFullError  # noqa: E402
from forcecast.lab.sources.synthetic import SyntheticSource  # noqa: E402

DATA = HERE.parents[1] / "data"
OLD_RECORDS = 100
ACK_AT_S = 25.0


def fill_disk(folder: Path) -> int:
    """Write a filler file until the file system refuses (ENOSPC); its size."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def run(folder: Path, limit_pages: int | None = None) -> dict[str, Any]:
    """Run the scenario in ``folder``; ``limit_pages`` caps the database instead of filling the disk."""
    store = RecordStore(
        folder / "device.sqlite",
        max_bytes=4 * 1024 * 1024,
        device_id="fc-full",
        reserve_bytes=0 if limit_pages else 64 * 1024,
    )
    for i in range(1, OLD_RECORDS + 1):  # one by one, as the runtime writes them
        store.append("step", [(float(i), {"old": i, "pad": os.urandom(2000).hex()})])
    if limit_pages is not None:
        store._connection().execute(f"PRAGMA max_page_count = {limit_pages}")
        filler = 0
        while True:  # unacknowledged padding takes the rest: nothing can be freed before the host acknowledges
            try:
                store.append("summary", [(0.0, {"pad": os.urandom(750).hex()})])
            except StorageFullError:
                break
    else:
        filler = fill_disk(folder)
    package, contract = open_package(DATA / "grf_int8.fcpkg", [load_public_key(DATA / "forcecast-test.pub")])
    source = SyntheticSource(
        subject=2,
        seed=5,
        speed=0,
        stand_s=3.0,
        program=(("comfortable", 40.0),),
        duration_s=43.0,
        places=("l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis"),
    )
    seen: dict[str, list[dict[str, Any]]] = {"step": [], "event": []}
    pipeline = source_pipeline(
        TFLiteModel(package.model),
        contract,
        source,
        sink=store,
        patient=walker_patient(source, limit=1.0),
        cue=StdoutCue(io.StringIO()),
        listeners=[lambda kind, payload: seen[kind].append(payload) if kind in seen else None],
    )
    acked_at: list[int] = []
    timeline: dict[str, Any] = {}

    def tick() -> None:
        newest = pipeline.newest_input_s
        if not acked_at and newest == newest and newest >= ACK_AT_S:
            timeline["steps_before_ack"] = sum(pipeline.report.steps.values())
            timeline["cues_before_ack"] = pipeline.report.cues
            timeline["held_at_ack"] = pipeline.storage.held if pipeline.storage else 0
            timeline["unsaved_steps_before_ack"] = sum(1 for p in seen["step"] if "seq" not in p)
            acked_at.append(store.ack("step", OLD_RECORDS))  # the host acknowledges the old records

    report = run_source(pipeline, source, tick=tick)
    stored_steps = store.records("step", after_seq=OLD_RECORDS, limit=100_000)
    events = [r.payload for r in store.records("event", limit=100_000)]
    outages = [e for e in events if e.get("event") in ("storage_full", "storage_error")]
    stats = store.stats()
    store.close()
    return {
        "filler_bytes": filler,
        "steps_detected": sum(report.steps.values()),
        "cues": report.cues,
        **timeline,
        "steps_stored": len(stored_steps),
        "stored_steps_are_the_detected_ones": sorted(r.payload["ic_s"] for r in stored_steps)
        == sorted(p["ic_s"] for p in seen["step"]),
        "outage_events": outages,
        "storage": report.storage,
        "reclaimed_acked": stats["reclaimed_acked"],
        "full_events": stats["full_events"],
        "dropped_unacked": stats["dropped_unacked"],
    }


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]))))
