"""Issue 13 item 6: a full disk never stops the runtime; space comes back once the host acknowledges.

The scenario (``full_disk_scenario.py``) runs the real pipeline on a full store twice: on a 1 MiB tmpfs
filled by another file (mounted inside a private mount namespace with ``unshare -m``, so the mount dies
with the child; skipped with the reason when mounting is not allowed), and without any mount, SQLite's
``max_page_count`` making the database full (SQLITE_FULL, as ENOSPC makes it), so the logic is always
tested. Either way: steps and cues go on while nothing can be written, the host's acknowledgement frees
the old records, everything detected is committed afterwards and one ``storage_full`` event tells when.
The :class:`StorageGuard` tests pin its bound, pacing and event without a pipeline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from full_disk_scenario import ACK_AT_S, OLD_RECORDS, run

from forcecast.edge.runtime.storage_guard import StorageGuard
from forcecast.edge.runtime.store import StorageFullError, StoreError

SCENARIO = Path(__file__).with_name("full_disk_scenario.py")


def check(result: dict[str, Any]) -> None:
    """What must hold after the scenario, whichever way the disk was full."""
    assert result["steps_before_ack"] >= 20 and result["cues_before_ack"] >= 10  # detection and cues never stopped
    assert result["unsaved_steps_before_ack"] >= 10  # ... while those steps could not be written
    assert result["steps_detected"] > result["steps_before_ack"]  # and the runtime ran to the end
    assert result["steps_stored"] == result["steps_detected"] and result["stored_steps_are_the_detected_ones"]
    assert result["reclaimed_acked"] == OLD_RECORDS and result["dropped_unacked"] == 0  # only acknowledged went
    outages = result["outage_events"]
    assert outages and all(o["event"] == "storage_full" and o["lost"] == {} for o in outages)
    assert any(o["start_s"] < ACK_AT_S <= o["end_s"] for o in outages)  # the one the acknowledgement ended
    assert sum(o["held"] for o in outages) >= result["unsaved_steps_before_ack"]
    assert result["storage"] == {"failing": False, "held": 0, "outages": len(outages), "lost": 0, "detail": None}


def test_a_full_database_never_stops_the_runtime_no_mount_needed(tmp_path):
    check(run(tmp_path, limit_pages=160))


def test_a_full_1_mib_file_system_never_stops_the_runtime(tmp_path):
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs util-linux unshare and mount to mount a private 1 MiB tmpfs")
    folder = tmp_path / "tiny"
    folder.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs "{folder}" && exec "{sys.executable}" "{SCENARIO}" "{folder}"'
    child = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    refused = ("Operation not permitted", "permission denied", "must be superuser", "cannot mount", "unshare failed")
    if child.returncode != 0 and any(r.lower() in child.stderr.lower() for r in refused):
        pytest.skip(f"mounting a private tmpfs is not allowed here (no root / CAP_SYS_ADMIN): {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["filler_bytes"] > 100_000  # the file system really was full
    check(result)
    assert not any(folder.iterdir())  # the mount lived only in the child's namespace


class FlakySink:
    """A store whose writes fail while ``full`` is set."""

    def __init__(self) -> None:
        self.full = False
        self.committed: dict[str, list[tuple[float, dict]]] = {}
        self.error: StoreError = StorageFullError("s.sqlite: the disk is full")

    def append(self, kind: str, records: list[tuple[float, dict]]) -> list[int]:
        if self.full:
            raise self.error
        if kind not in ("step", "summary", "event"):
            raise ValueError(f"unknown record kind {kind!r}")
        have = self.committed.setdefault(kind, [])
        have.extend(records)
        return list(range(len(have) - len(records) + 1, len(have) + 1))


def test_the_guard_holds_in_order_retries_on_device_time_and_reports_one_outage():
    sink = FlakySink()
    guard = StorageGuard(sink, retry_s=2.0, max_held=100)
    assert guard.append("step", [(0.0, {"n": 0})]) == [1]
    sink.full = True
    assert guard.append("step", [(1.0, {"n": 1})]) == [None] and guard.failing
    sink.full = False
    assert guard.append("event", [(2.0, {"n": 2})]) == [None]  # within retry_s of the failure: not tried
    assert guard.take_outage() is None
    assert guard.append("step", [(3.5, {"n": 3})]) == [3]  # tried again: held ones first, then this one
    assert [p["n"] for _, p in sink.committed["step"]] == [0, 1, 3] and sink.committed["event"] == [(2.0, {"n": 2})]
    outage = guard.take_outage()
    assert outage is not None and guard.take_outage() is None
    assert outage.payload() == {
        "v": 2,
        "event": "storage_full",
        "start_s": 1.0,
        "end_s": 3.5,
        "held": 2,
        "lost": {},
        "attempts": 1,
        "detail": "s.sqlite: the disk is full",
    }


def test_the_guard_drops_the_oldest_beyond_its_bound_and_counts_them():
    sink = FlakySink()
    sink.full = True
    guard = StorageGuard(sink, retry_s=0.0, max_held=5)
    for i in range(8):
        guard.append("step" if i % 2 else "summary", [(float(i), {"n": i})])
    assert guard.held == 5 and guard.lost_total == 3
    sink.full = False
    guard.append("event", [(9.0, {"n": 9})])
    outage = guard.take_outage()
    assert outage is not None and outage.lost == {"summary": 2, "step": 1} and outage.held == 5
    assert [p["n"] for _, p in sink.committed["step"]] == [3, 5, 7]
    assert guard.stats() == {"failing": False, "held": 0, "outages": 1, "lost": 3, "detail": None}


def test_other_storage_errors_are_reported_as_such_and_bugs_are_not_swallowed():
    sink = FlakySink()
    sink.full, sink.error = True, StoreError("s.sqlite: disk I/O error")
    guard = StorageGuard(sink, retry_s=0.0)
    guard.append("step", [(1.0, {})])
    sink.full = False
    guard.append("step", [(2.0, {})])
    outage = guard.take_outage()
    assert outage is not None and outage.payload()["event"] == "storage_error"
    with pytest.raises(ValueError, match="unknown record kind"):
        guard.append("stride", [(3.0, {})])
    sink.full = True
    guard.append("step", [(4.0, {"ok": 1})])
    with pytest.raises(ValueError, match="step record 1: payload is not JSON-serialisable"):
        guard.append("step", [(5.0, {"ok": 2}), (5.0, {"peak": float("nan")})])  # held as JSON: checked now
    assert guard.held == 1  # nothing of the refused batch was held
    with pytest.raises(ValueError, match="max_held"):
        StorageGuard(sink, max_held=0)
