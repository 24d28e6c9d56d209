"""The device side of a BLE session without Bluetooth: control point, resume, ack, live, garbage."""

from __future__ import annotations

import os
import sqlite3
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.link import DeviceLink
from forcecast.edge.protocol import (
    MAX_RECORD_BYTES,
    STATUS_REPLY,
    STORE_ID_REPLY,
    Opcode,
    RecordAssembler,
    RecordKind,
    Status,
    decode_live,
    decode_reply,
    encode_request,
)
from forcecast.edge.runtime.store import RecordStore, StorageFullError


def store_with_steps(path, n: int) -> RecordStore:
    store = RecordStore(path, device_id="dev-1")
    store.append("step", [(float(i), {"leg": "r", "i": i, "waveform": list(range(50))}) for i in range(1, n + 1)])
    return store


def drain(link: DeviceLink) -> list[tuple]:
    assembler = RecordAssembler()
    out = []
    while packets := link.next_record_packets(16):
        out += [r for p in packets if (r := assembler.feed(p)) is not None]
    assert assembler.rejected == {}
    return out


def test_an_unencrypted_link_can_do_nothing(tmp_path):
    link = DeviceLink(store_with_steps(tmp_path / "s.sqlite", 3), {"device_id": "dev-1"})
    link.connected(mtu=185, encrypted=False)
    reply = decode_reply(link.handle_control(encode_request(Opcode.RESUME, 1, RecordKind.STEP, 0)))
    assert reply.status is Status.NOT_ENCRYPTED and reply.request_id == 1
    assert link.next_record_packets() == [] and link.rejected == {"NOT_ENCRYPTED": 1}


def test_resume_streams_every_record_after_the_point_and_ack_reaches_the_store(tmp_path):
    store = store_with_steps(tmp_path / "s.sqlite", 20)
    link = DeviceLink(store, {"device_id": "dev-1"}, clock=lambda: 100.0)
    link.connected(mtu=64, encrypted=True)
    assert decode_reply(link.handle_control(encode_request(Opcode.RESUME, 2, RecordKind.STEP, 5))).status is Status.OK
    records = drain(link)
    assert [seq for _, seq, _ in records] == list(range(6, 21))
    assert records[0][2]["i"] == 6
    assert decode_reply(link.handle_control(encode_request(Opcode.ACK, 3, RecordKind.STEP, 20))).status is Status.OK
    assert store.stats()["step"]["acked"] == 20
    too_far = decode_reply(link.handle_control(encode_request(Opcode.ACK, 4, RecordKind.STEP, 99)))
    assert too_far.status is Status.BAD_ARGUMENT
    store.append("step", [(21.0, {"i": 21})])  # committed while connected: streamed too
    assert [seq for _, seq, _ in drain(link)] == [21]
    sync = decode_reply(link.handle_control(encode_request(Opcode.TIME_SYNC, 5, 1_800_000_000_000)))
    assert struct.unpack("<Q", sync.payload)[0] == 100_000 and link.host_offset_ms == 1_800_000_000_000 - 100_000
    status = decode_reply(link.handle_control(encode_request(Opcode.STATUS, 6, RecordKind.STEP)))
    assert len(status.payload) + 5 <= 20  # fits one notification at the minimum MTU
    assert STATUS_REPLY.unpack(status.payload) == (21, 20, 21, 0)
    link.disconnected()
    link.connected(mtu=64, encrypted=True)
    assert drain(link) == []  # nothing until the host says where to resume


def test_live_blocks_flow_only_when_asked(tmp_path):
    link = DeviceLink(store_with_steps(tmp_path / "s.sqlite", 1), {})
    link.connected(mtu=247, encrypted=True)
    grf = np.ones((4, 3)) * 0.5
    link.on_grf("r", np.arange(4) / 100.0, grf, 0.01, 0)
    assert link.next_live_packets() == []
    link.handle_control(encode_request(Opcode.LIVE, 7, 1))
    link.on_grf("r", np.arange(4) / 100.0 + 1.0, grf, 0.01, 100)
    (packet,) = link.next_live_packets()
    block = decode_live(packet)
    assert block.leg == "r" and block.block == 100 and block.t0_ms == 1000 and np.allclose(block.grf_bw, 0.5)


def live_link(tmp_path, mtu=247):
    link = DeviceLink(store_with_steps(tmp_path / "s.sqlite", 1), {})
    link.connected(mtu=mtu, encrypted=True)
    link.handle_control(encode_request(Opcode.LIVE, 7, 1))
    return link


def test_live_samples_one_at_a_time_go_out_four_to_a_notification(tmp_path):
    link = live_link(tmp_path)
    for i in range(10):
        link.on_grf("l", np.array([5.0 + i / 100]), np.array([[1.0 + i, 0.1, -0.1]]), 0.01, 500 + i)
        assert len(link.next_live_packets()) == (1 if i in (3, 7) else 0)  # the 3rd sample waits; the 4th sends
    link.on_grf("l", np.array([5.5]), np.array([[9.0, 0.0, 0.0]]), 0.01, 550)  # a gap: the 2 gathered go first
    (partial,) = link.next_live_packets()
    block = decode_live(partial)
    assert block.block == 508 and block.t0_ms == 5080 and np.allclose(block.grf_bw[:, 0], [9.0, 10.0])
    link.on_grf("r", np.arange(3) / 100.0, np.zeros((3, 3)), 0.01, 0)  # legs gather apart
    link.on_grf("l", np.arange(3) / 100.0 + 5.51, np.ones((3, 3)), 0.01, 551)
    (left,) = link.next_live_packets()  # the left leg's 550..553 complete; the right leg's 3 still wait
    assert decode_live(left).block == 550 and decode_live(left).grf_bw.shape == (4, 3)
    link.handle_control(encode_request(Opcode.LIVE, 8, 0))  # live off: what was gathered is dropped
    link.handle_control(encode_request(Opcode.LIVE, 9, 1))
    link.on_grf("r", np.array([0.03]), np.zeros((1, 3)), 0.01, 3)
    assert link.next_live_packets() == []


def test_live_samples_at_the_smallest_mtu_go_out_one_per_notification(tmp_path):
    link = live_link(tmp_path, mtu=23)
    for i in range(4):  # one sample fills a notification here: nothing is held back
        link.on_grf("r", np.array([i / 100]), np.full((1, 3), 0.5), 0.01, i)
        (packet,) = link.next_live_packets()
        assert decode_live(packet).block == i and len(packet) <= 20


def test_live_batch_is_checked(tmp_path):
    with pytest.raises(ValueError, match="live_batch must be >= 1"):
        DeviceLink(store_with_steps(tmp_path / "s.sqlite", 1), {}, live_batch=0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_garbage_on_the_control_point_is_answered_and_counted(tmp_path_factory, data):
    link = DeviceLink(store_with_steps(tmp_path_factory.mktemp("g") / "s.sqlite", 2), {})
    link.connected(mtu=23, encrypted=True)
    reply = decode_reply(link.handle_control(data))
    assert len(link.handle_control(data)) <= 20
    assert reply.status is Status.OK or sum(link.rejected.values()) == 2


def test_store_id_is_reported_on_the_control_point(tmp_path):
    store = store_with_steps(tmp_path / "s.sqlite", 1)
    link = DeviceLink(store, {})
    link.connected(mtu=23, encrypted=True)
    reply = decode_reply(link.handle_control(encode_request(Opcode.STORE_ID, 3)))
    assert reply.status is Status.OK and len(reply.payload) + 5 <= 20
    assert STORE_ID_REPLY.unpack(reply.payload) == (int(store.store_id, 16), 0)


def test_a_poisoned_record_is_skipped_with_a_gap_event_and_streaming_goes_on(tmp_path):
    store = store_with_steps(tmp_path / "s.sqlite", 100)
    sql = sqlite3.connect(store.path)
    sql.execute("UPDATE records SET payload = '{\"i\": NaN}' WHERE kind = 'step' AND seq = 90")
    sql.commit()
    sql.close()
    link = DeviceLink(store, {})
    link.connected(mtu=185, encrypted=True)
    link.handle_control(encode_request(Opcode.RESUME, 1, RecordKind.STEP, 0))
    link.handle_control(encode_request(Opcode.RESUME, 2, RecordKind.EVENT, 0))
    records = drain(link)
    steps = [seq for kind, seq, _ in records if kind is RecordKind.STEP]
    assert steps == [s for s in range(1, 101) if s != 90]
    (gap,) = [payload for kind, _, payload in records if kind is RecordKind.EVENT]
    assert gap["event"] == "record_quarantined" and gap["kind"] == "step" and gap["seq"] == 90
    assert "NaN" in gap["reason"]


def test_a_record_too_large_for_the_wire_is_quarantined_not_fatal(tmp_path):
    store = store_with_steps(tmp_path / "s.sqlite", 3)
    store.append("step", [(4.0, {"noise": os.urandom(MAX_RECORD_BYTES).hex()})])  # incompressible
    store.append("step", [(5.0, {"i": 5})])
    link = DeviceLink(store, {})
    link.connected(mtu=247, encrypted=True)
    link.handle_control(encode_request(Opcode.RESUME, 1, RecordKind.STEP, 0))
    link.handle_control(encode_request(Opcode.RESUME, 2, RecordKind.EVENT, 0))
    records = drain(link)
    assert [seq for kind, seq, _ in records if kind is RecordKind.STEP] == [1, 2, 3, 5]
    (gap,) = [payload for kind, _, payload in records if kind is RecordKind.EVENT]
    assert gap["seq"] == 4 and "cannot be sent" in gap["reason"] and link.quarantined == 1


def test_an_ack_the_full_disk_refuses_is_answered_busy_and_the_link_stays_usable(tmp_path):
    store = store_with_steps(tmp_path / "s.sqlite", 5)
    link = DeviceLink(store, {})
    link.connected(mtu=64, encrypted=True)

    def full(kind: str, upto: int) -> int:
        raise StorageFullError(f"{store.path}: acknowledging {kind} records failed: the disk is full")

    store.ack = full
    reply = decode_reply(link.handle_control(encode_request(Opcode.ACK, 8, RecordKind.STEP, 5)))
    assert reply.status is Status.BUSY and reply.payload.startswith(b"storage_full:") and link.rejected == {"BUSY": 1}
    assert decode_reply(link.handle_control(encode_request(Opcode.STATUS, 9, RecordKind.STEP))).status is Status.OK
