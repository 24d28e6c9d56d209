"""Typed records on the host: old (v-less) records read and analysed, newer versions refused and counted.

The session tests run the real device link and host client over the in-process virtual link.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from functools import partial

import pytest
from virtual_sync import sync as sync_with
from wire_fixture import reassembled_wire_v1

from forcecast.edge.records import EventRecord, EventType, RecordError, StepRecord, SummaryRecord
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.analytics import day_metrics, load_day, zone
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

logging.getLogger("bumble").setLevel(logging.ERROR)
DEVICE = "fc-records"
sync = partial(sync_with, device_id=DEVICE)  # sync(store, host, done): until done() holds
NOW = "2026-11-30T00:00:00Z"


def step(i: int, **more) -> StepRecord:
    return StepRecord(
        t_unix=1_767_254_400.0 + i, patient_id="P1", leg="r" if i % 2 else "l", peak1_bw=1.0 + i / 100, **more
    )


def test_a_newer_record_is_refused_and_counted_and_stays_on_the_device_while_the_rest_arrive(tmp_path):
    device = RecordStore(tmp_path / "device.sqlite", device_id=DEVICE, reserve_bytes=0)
    device.append("step", [(float(i), step(i)) for i in range(1, 4)])
    device.append("step", [(4.0, {**step(4).to_payload(), "v": 2, "new_field": [1, 2]})])  # a newer device's
    device.append("step", [(float(i), step(i)) for i in range(5, 9)])
    device.append("step", [(9.0, {"leg": "left"})])  # not a step record: stored as it came, counted
    device.append("event", [(1.0, {"event": "dropout", "t_unix": 1_767_254_401.0, "patient_id": "P1"})])  # v-less
    host = HostStore(tmp_path / "host.sqlite")
    logger = asyncio.run(
        sync(
            device,
            host,
            lambda: host.count(DEVICE, "step") == 8 and host.count(DEVICE, "event") and device.progress("step")[1] == 3,
        )
    )

    assert logger.stats.rejected.get("record_NEWER_VERSION", 0) >= 1
    assert logger.stats.unreadable.get("bad_field", 0) >= 1
    stored = {r.seq: r for r in host.records(DEVICE, "step")}
    assert sorted(stored) == [1, 2, 3, 5, 6, 7, 8, 9]  # 4 refused, the rest stored
    assert stored[2].record() == step(2)
    with pytest.raises(RecordError):
        stored[9].record()
    assert host.resume_point(DEVICE, "step") == 3  # 4 is asked for again (by a newer host, one day)
    assert device.progress("step")[1] == 3  # acknowledged up to 3 only: the device keeps 4 and what follows
    (event,) = [r.record() for r in host.records(DEVICE, "event")]
    assert isinstance(event, EventRecord) and event.event is EventType.DROPOUT


def test_a_quarantined_record_event_is_read_as_a_typed_event_and_marks_the_gap(tmp_path):
    device = RecordStore(tmp_path / "device.sqlite", device_id=DEVICE, reserve_bytes=0)
    device.append("step", [(float(i), step(i)) for i in range(1, 6)])
    device.quarantine("step", 3, "damaged payload: test")
    host = HostStore(tmp_path / "host.sqlite")
    asyncio.run(sync(device, host, lambda: host.resume_point(DEVICE, "step") == 5))
    assert [g["seq"] for g in host.gaps(DEVICE)] == [3] and "damaged payload: test" in host.gaps(DEVICE)[0]["reason"]
    (event,) = [r.record() for r in host.records(DEVICE, "event")]
    assert isinstance(event, EventRecord) and (event.record_kind, event.seq) == ("step", 3)


def test_records_from_old_wire_notifications_are_stored_and_analysed(tmp_path):
    records, _ = reassembled_wire_v1()
    batch = [(kind.label, seq, payload) for _, kind, seq, payload in records]
    with HostStore(tmp_path / "host.sqlite") as host:
        assert host.add_many("fc-old", batch, NOW) == len(batch)
        steps = host.dated_records("P1", StepRecord, 1_767_254_000.0, 1_767_255_000.0, waveforms=True)
        assert len(steps) == 1 and steps[0].record.leg == "l" and steps[0].record.flags == ("dropout",)
        assert steps[0].waveform is not None and len(steps[0].waveform) == 3 * 101 * 4
        (summary,) = host.dated_records("P1", SummaryRecord, 1_767_254_000.0, 1_767_255_000.0)
        assert summary.record.duration_s == 10.0 and summary.t_host == 1_767_254_400.0
        day = date(2026, 1, 1)
        metrics = day_metrics(load_day(host, "P1", day, zone("UTC")))
        assert metrics.steps == 1 and metrics.steps_by_leg == {"l": 1} and metrics.wear_min == 0.2


def test_the_host_store_refuses_a_newer_record_and_keeps_the_batch_out(tmp_path):
    with HostStore(tmp_path / "host.sqlite") as host:
        newer = {"v": 3, "event": "cue"}  # events are at version 2
        with pytest.raises(RecordError, match=r"d event record 2: event record: version 3 is newer") as caught:
            host.add_many("d", [("event", 1, {"event": "cue"}), ("event", 2, newer)], NOW)
        assert caught.value.reason == "newer_version" and host.count("d", "event") == 0
        assert host.add_many("d", [("event", 1, {"event": "cue", "v": 1}), ("event", 2, {"event": "party"})], NOW) == 2
        assert host.count("d", "event") == 2  # an unreadable one is kept, out of day queries


def test_synthetic_days_are_typed_records_that_analytics_reads_back(tmp_path):
    day = date(2026, 3, 2)
    with HostStore(tmp_path / "host.sqlite") as host:
        seq = write_day(host, day, steps=600)
        write_day(host, day + timedelta(days=1), steps=300, first_seq=seq)
        stored = host.records("fc-demo", "step")
        assert all(r.payload["v"] == StepRecord.SCHEMA_VERSION for r in stored)
        assert all(isinstance(r.record(), StepRecord) for r in stored[:50])
        metrics = day_metrics(load_day(host, "P1", day, zone("UTC")))
        assert metrics.steps == 600 and metrics.quality["dropout"] == 1 and metrics.peak_bw_mean is not None
