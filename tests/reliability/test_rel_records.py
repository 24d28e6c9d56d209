"""Issue 13 items 3, 4 and 8: no record is lost to a replaced store, a poisoned record or a flooding peer.

Each test runs the real device link (GATT server on bumble) and the real host client (bleak API on the
bumble backend) over the in-process virtual link, and reproduces one failure of the issue:

- a device store replaced (seqs restart at 1): the host fetched 10 of 60 new steps and acknowledged all
  60 before store ids; now every new record arrives, the old store's records stay, and nothing is
  acknowledged that the host does not hold;
- one unreadable record (NaN, broken JSON) at seq 90 of 100: syncing used to stop there forever; now 99
  records and one ``record_quarantined`` gap event arrive in one session and the host acknowledges 100;
- a device flooding the host with a fragment count of 65535 and a zlib bomb: refused, counted, and the
  records after them still arrive.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import struct
import zlib
from functools import partial

import pytest
from virtual_sync import QUICK, until
from virtual_sync import sync as sync_with

from forcecast.edge.link import DeviceLink
from forcecast.edge.protocol import RecordKind, encode_record
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.client import HostLogger
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import virtual_link

logging.getLogger("bumble").setLevel(logging.ERROR)
DEVICE = "fc-rel"
sync = partial(sync_with, device_id=DEVICE)  # sync(store, host, done): until done() holds


def steps(store: RecordStore, first: int, n: int, tag: str) -> None:
    store.append("step", [(float(i), {"i": i, "tag": tag, "peak1_bw": 1.0 + i / 100}) for i in range(first, first + n)])


def test_a_replaced_device_store_is_fetched_from_its_start(tmp_path):
    host = HostStore(tmp_path / "host.sqlite")
    old = RecordStore(tmp_path / "device-old.sqlite", device_id=DEVICE)
    steps(old, 1, 60, "old")
    asyncio.run(sync(old, host, lambda: old.stats()["step"]["acked"] == 60))
    old_id = old.store_id
    old.close()

    new = RecordStore(tmp_path / "device-new.sqlite", device_id=DEVICE)  # re-created: seqs restart at 1
    steps(new, 1, 60, "new")
    assert new.store_id != old_id
    logger = asyncio.run(sync(new, host, lambda: new.stats()["step"]["acked"] == 60))

    fresh = host.records(DEVICE, "step", store_id=new.store_id)
    assert [r.seq for r in fresh] == list(range(1, 61)) and {r.payload["tag"] for r in fresh} == {"new"}
    kept = host.records(DEVICE, "step", store_id=old_id)
    assert len(kept) == 60 and {r.payload["tag"] for r in kept} == {"old"}  # the old store's records stay
    assert host.current_store(DEVICE) == new.store_id and logger.stats.store_changes == 1
    assert logger.stats.duplicates_received == 0
    new.close()
    host.close()


@pytest.mark.parametrize("damage", ['{"i": 90, "peak1_bw": NaN}', '{"i": 90, "peak1_'])
def test_one_poisoned_record_among_100_leaves_a_gap_event_and_syncing_goes_past_it(tmp_path, damage):
    device = RecordStore(tmp_path / "device.sqlite", device_id=DEVICE)
    steps(device, 1, 100, "walk")
    with sqlite3.connect(device.path) as db:  # damaged on disk after it was stored
        db.execute("UPDATE records SET payload = ? WHERE kind = 'step' AND seq = 90", (damage,))
    host = HostStore(tmp_path / "host.sqlite")
    logger = asyncio.run(sync(device, host, lambda: device.progress("step")[1] == 100))  # acknowledged up to 100

    assert [r.seq for r in host.records(DEVICE, "step")] == [s for s in range(1, 101) if s != 90]  # 99 arrive
    events = [r.payload for r in host.records(DEVICE, "event")]
    (gap,) = [e for e in events if e["event"] == "record_quarantined"]
    assert gap["kind"] == "step" and gap["seq"] == 90 and gap["reason"].startswith("damaged payload")
    assert [(g["kind"], g["seq"]) for g in host.gaps(DEVICE)] == [("step", 90)]
    assert host.resume_point(DEVICE, "step") == 100
    assert logger.stats.sessions == 1 and logger.stats.quarantined_gaps == 1  # one session: the link never dropped
    assert device.quarantined()[0]["seq"] == 90 and device.stats()["event"]["acked"] == 1
    device.close()
    host.close()


def test_a_flooding_device_is_refused_counted_and_the_records_after_it_arrive(tmp_path):
    device = RecordStore(tmp_path / "device.sqlite", device_id=DEVICE)
    host = HostStore(tmp_path / "host.sqlite")
    header = struct.Struct("<BBIHHIH")
    bomb = zlib.compress(b'{"x": "' + b"a" * (32 * 1024 * 1024) + b'"}', 9)
    bomb_fragments = [
        header.pack(1, 1, 1, i, -(-len(bomb) // 400), zlib.crc32(bomb), len(bomb[o : o + 400])) + bomb[o : o + 400]
        for i, o in enumerate(range(0, len(bomb), 400))
    ]
    flood = [header.pack(1, 1, 1, i, 65535, 0, 400) + bytes(400) for i in range(300)]

    async def scenario() -> HostLogger:
        async with virtual_link(DeviceLink(device, {"device_id": DEVICE})) as link:
            logger = link.logger(host, QUICK)
            task = asyncio.create_task(logger.run())
            await until(lambda: logger.state == "streaming")
            server, connection = link.server, link.server.connection
            assert connection is not None
            seq_zero = encode_record(RecordKind.STEP, 0, {"i": 0}, 247)  # no store assigns 0: refused, not stored
            for packet in [*flood, *bomb_fragments, *seq_zero]:
                await server.device.notify_subscriber(connection, server.records, packet)
            steps(device, 1, 5, "after")
            server.listener("step", {})
            await until(lambda: device.stats()["step"]["acked"] == 5)
            logger.stop()
            await task
            return logger

    logger = asyncio.run(scenario())
    assert [r.seq for r in host.records(DEVICE, "step")] == [1, 2, 3, 4, 5]
    assert all(r.payload["tag"] == "after" for r in host.records(DEVICE, "step"))
    assert logger.stats.rejected.get("record_TOO_LARGE") == 2  # the flood's first fragment and the bomb
    assert logger.stats.rejected.get("record_BAD_ARGUMENT") == len(flood) - 1  # the rest of the flood, unbuffered
    assert logger.stats.rejected.get("record_BAD_SEQ") == 1
    assert logger.stats.sessions == 1
    device.close()
    host.close()


def test_a_record_the_wire_refuses_is_quarantined_and_reported(tmp_path):
    device = RecordStore(tmp_path / "device.sqlite", device_id=DEVICE)
    steps(device, 1, 3, "walk")
    device.append("step", [(4.0, {"blob": bytes(range(256)).hex() * 600})])  # > 256 KiB of JSON
    steps(device, 5, 2, "walk")
    host = HostStore(tmp_path / "host.sqlite")
    asyncio.run(sync(device, host, lambda: device.progress("step")[1] == 6))
    assert [r.seq for r in host.records(DEVICE, "step")] == [1, 2, 3, 5, 6]
    assert host.gaps(DEVICE)[0]["seq"] == 4 and "cannot be sent" in host.gaps(DEVICE)[0]["reason"]
    with pytest.raises(ValueError):
        encode_record(RecordKind.STEP, 4, {"blob": bytes(range(256)).hex() * 600}, 247)
    device.close()
    host.close()


def test_legacy_host_resume_state_is_kept_when_firmware_gives_the_same_store_an_id(tmp_path):
    """A host that synced a device before store ids keeps its place when the upgraded device reports one."""
    path = tmp_path / "device.sqlite"
    device = RecordStore(path, device_id=DEVICE)
    steps(device, 1, 20, "before")
    device.ack("step", 20)
    device.close()
    with sqlite3.connect(path) as db:  # the file as older firmware left it: no store id
        db.execute("DELETE FROM meta WHERE key IN ('store_id', 'store_id_origin')")
    host = HostStore(tmp_path / "host.sqlite")
    host.add_many(DEVICE, [("step", s, {"i": s, "tag": "before"}) for s in range(1, 21)], "t", store_id="")
    upgraded = RecordStore(path, device_id=DEVICE)
    assert upgraded.store_id_origin == "upgrade"
    steps(upgraded, 21, 5, "after")
    logger = asyncio.run(sync(upgraded, host, lambda: upgraded.stats()["step"]["acked"] == 25))
    assert [r.seq for r in host.records(DEVICE, "step")] == list(range(1, 26))
    assert logger.stats.store_changes == 0 and logger.stats.duplicates_received == 0
    upgraded.close()
    host.close()
