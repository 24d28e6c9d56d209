"""The BLE wire protocol: round trips at every MTU, and decoders that reject garbage without crashing."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    Opcode,
    ProtocolError,
    RecordAssembler,
    RecordKind,
    Status,
    decode_fragment,
    decode_live,
    decode_reply,
    decode_request,
    encode_live,
    encode_record,
    encode_reply,
    encode_request,
    payload_size,
    request_arguments,
)

STEP = {
    "leg": "r",
    "ic_s": 12.345,
    "stance_s": 0.64,
    "peak1_bw": 1.12,
    "flags": ["dropout"],
    "asymmetry_peak1": None,
    "waveform_bw": {a: list(np.round(np.sin(np.linspace(0, 3.14, 101)), 4)) for a in ("v", "ap", "ml")},
}


@pytest.mark.parametrize("mtu", [23, 64, 185, 247, 517])
def test_a_step_record_survives_fragmentation_at_every_mtu(mtu):
    fragments = encode_record(RecordKind.STEP, 42, STEP, mtu)
    assert all(len(f) <= payload_size(mtu) for f in fragments)
    assembler = RecordAssembler()
    results = [assembler.feed(f) for f in fragments]
    assert results[:-1] == [None] * (len(fragments) - 1)
    assert results[-1] == (RecordKind.STEP, 42, STEP)
    assert assembler.rejected == {}


def test_fragments_out_of_order_lost_or_corrupted_are_rejected_and_counted():
    fragments = encode_record(RecordKind.STEP, 7, STEP, 64)
    assert len(fragments) > 3
    assembler = RecordAssembler()
    assert assembler.feed(fragments[0]) is None
    assert assembler.feed(fragments[2]) is None  # fragment 1 lost
    assert assembler.rejected == {"BAD_ARGUMENT": 1} and assembler.abandoned == 1
    corrupted = [*fragments[:-1], fragments[-1][:-1] + bytes([fragments[-1][-1] ^ 0xFF])]
    assert [assembler.feed(f) for f in corrupted][-1] is None
    assert assembler.rejected["BAD_CHECKSUM"] == 1
    # the record arrives whole on the next attempt
    assert [assembler.feed(f) for f in fragments][-1] == (RecordKind.STEP, 7, STEP)


def test_a_restarted_record_abandons_the_half_finished_one():
    assembler = RecordAssembler()
    first = encode_record(RecordKind.STEP, 1, STEP, 64)
    second = encode_record(RecordKind.STEP, 2, {"leg": "l"}, 64)
    assembler.feed(first[0])
    assert assembler.feed(second[0]) == (RecordKind.STEP, 2, {"leg": "l"})
    assert assembler.abandoned == 1


def test_live_blocks_round_trip_in_milli_body_weights():
    grf = np.column_stack([np.linspace(0, 1.2, 40), np.linspace(-0.2, 0.2, 40), np.full(40, 0.05)])
    packets = encode_live("l", 1000, 12.5, 0.01, grf, 64)
    blocks = [decode_live(p) for p in packets]
    assert sum(b.grf_bw.shape[0] for b in blocks) == 40 and all(len(p) <= payload_size(64) for p in packets)
    assert blocks[0].leg == "l" and blocks[0].t0_ms == 12500 and blocks[0].period_ms == 10
    assert blocks[1].block == 1000 + blocks[0].grf_bw.shape[0]
    assert np.allclose(np.vstack([b.grf_bw for b in blocks]), grf, atol=5e-4)


def test_control_requests_and_replies_round_trip():
    request = decode_request(encode_request(Opcode.RESUME, 9, RecordKind.SUMMARY, 1234))
    assert request.opcode is Opcode.RESUME and request.request_id == 9
    assert request_arguments(request) == (RecordKind.SUMMARY, 1234)
    reply = decode_reply(encode_reply(Opcode.RESUME, 9, Status.OK, b"xy"))
    assert (reply.opcode, reply.request_id, reply.status, reply.payload) == (Opcode.RESUME, 9, Status.OK, b"xy")


@pytest.mark.parametrize(
    ("packet", "status"),
    [
        (b"", Status.BAD_LENGTH),
        (bytes([2, 1, 0, 0]), Status.BAD_VERSION),
        (bytes([1, 0x7F, 0, 0]), Status.UNKNOWN_OPCODE),
        (bytes([1, Opcode.ACK, 0, 0, 1]), Status.BAD_LENGTH),
        (encode_request(Opcode.LIVE, 1, 1)[:-1] + b"\x05", Status.BAD_ARGUMENT),
        (encode_request(Opcode.ACK, 1, 9, 3), Status.BAD_ARGUMENT),
    ],
)
def test_bad_requests_get_their_status(packet, status):
    with pytest.raises(ProtocolError) as info:
        request_arguments(decode_request(packet))
    assert info.value.status is status


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash_any_decoder(data):
    for decode in (decode_fragment, decode_live, decode_reply):
        with contextlib.suppress(ProtocolError):
            decode(data)
    with contextlib.suppress(ProtocolError):
        request_arguments(decode_request(data))
    assembler = RecordAssembler()
    assert assembler.feed(data) is None or isinstance(assembler.feed(data), tuple)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=23, max_value=517), st.integers(min_value=0, max_value=2**32 - 1), st.data())
def test_truncated_or_flipped_fragments_are_counted_never_fatal(mtu, seq, data):
    fragments = encode_record(RecordKind.EVENT, seq, {"event": "dropout", "samples": 200}, mtu)
    index = data.draw(st.integers(min_value=0, max_value=len(fragments) - 1))
    cut = data.draw(st.integers(min_value=0, max_value=len(fragments[index])))
    damaged = [*fragments[:index], fragments[index][:cut], *fragments[index + 1 :]]
    assembler = RecordAssembler()
    outcomes = [assembler.feed(f) for f in damaged]
    if cut == len(fragments[index]):
        assert outcomes[-1] == (RecordKind.EVENT, seq, {"event": "dropout", "samples": 200})
    else:
        assert all(o is None for o in outcomes)
        assert sum(assembler.rejected.values()) + assembler.abandoned >= 1
