"""The BLE wire protocol: round trips at every MTU, and decoders that reject garbage without crashing."""

from __future__ import annotations

import contextlib
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.protocol import (
    MAX_RECORD_BYTES,
    MAX_RECORD_JSON_BYTES,
    STORE_FLAG_UPGRADED,
    STORE_ID_REPLY,
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


# -- bounded reassembly (issue 13 item 8) -----------------------------------------------------------

_HEADER = struct.Struct("<BBIHHIH")


def raw_fragments(kind: int, seq: int, body: bytes, room: int, count: int | None = None) -> list[bytes]:
    """Fragments of an arbitrary body, as a misbehaving device could send them (count may lie)."""
    pieces = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
    total = count if count is not None else len(pieces)
    crc = zlib.crc32(body)
    return [_HEADER.pack(1, kind, seq, i, total, crc, len(p)) + p for i, p in enumerate(pieces)]


def test_a_fragment_count_claiming_more_than_a_record_may_be_is_refused_and_nothing_is_buffered():
    assembler = RecordAssembler()
    flood = _HEADER.pack(1, 1, 1, 0, 65535, 0, 493) + bytes(493)  # would be 32 MB buffered
    assert assembler.feed(flood) is None
    assert assembler.rejected == {"TOO_LARGE": 1} and assembler.buffered_bytes == 0
    for index in range(1, 200):  # the rest of the flood: out of order, counted, never buffered
        assembler.feed(_HEADER.pack(1, 1, 1, index, 65535, 0, 493) + bytes(493))
    assert assembler.buffered_bytes == 0 and assembler.rejected["BAD_ARGUMENT"] == 199


def test_fragments_growing_past_the_record_limit_are_refused():
    assembler = RecordAssembler()
    body = bytes(300_000)
    small_first = _HEADER.pack(1, 2, 5, 0, 60000, zlib.crc32(body), 1) + b"\x00"  # claims 60 kB, sends 493 B each
    assert assembler.feed(small_first) is None
    peak = 0
    for index in range(1, 1000):
        assembler.feed(_HEADER.pack(1, 2, 5, index, 60000, zlib.crc32(body), 493) + bytes(493))
        peak = max(peak, assembler.buffered_bytes)
    assert peak <= MAX_RECORD_BYTES and assembler.rejected.get("TOO_LARGE") == 1
    good = encode_record(RecordKind.STEP, 6, STEP, 247)  # the link goes on
    assert [assembler.feed(f) for f in good][-1] == (RecordKind.STEP, 6, STEP)


def test_a_zlib_bomb_is_never_inflated_past_the_json_limit():
    bomb = zlib.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", 9)  # 64 MiB of JSON in about 64 kB
    assert len(bomb) <= MAX_RECORD_BYTES
    assembler = RecordAssembler()
    outcomes = [assembler.feed(f) for f in raw_fragments(1, 9, bomb, 493)]
    assert outcomes[-1] is None and assembler.rejected == {"TOO_LARGE": 1}
    just_fits = zlib.compress(json.dumps({"pad": "x" * (MAX_RECORD_JSON_BYTES - 20)}).encode())
    assert [RecordAssembler().feed(f) for f in raw_fragments(1, 10, just_fits, 493)][-1] is not None


@pytest.mark.parametrize("text", [b'{"v": NaN}', b'{"v": -Infinity}', b'{"v": 1e999}', b'{"v": [Infinity]}'])
def test_a_record_with_nan_or_infinity_is_refused(text):
    assembler = RecordAssembler()
    assert [assembler.feed(f) for f in raw_fragments(1, 3, zlib.compress(text), 100)][-1] is None
    assert assembler.rejected == {"NOT_FINITE": 1}


def test_truncated_or_trailing_compressed_bodies_are_refused():
    body = zlib.compress(b'{"a": 1}')
    for damaged in (body[:-3], body + b"extra"):
        assembler = RecordAssembler()
        assert [assembler.feed(f) for f in raw_fragments(1, 3, damaged, 100)][-1] is None
        assert assembler.rejected == {"BAD_ARGUMENT": 1}


def test_the_encoder_refuses_what_the_host_would_refuse():
    with pytest.raises(ValueError, match="bytes of JSON; the limit is"):
        encode_record(RecordKind.EVENT, 1, {"pad": "x" * MAX_RECORD_JSON_BYTES}, 247)
    with pytest.raises(ValueError, match="Out of range float"):
        encode_record(RecordKind.EVENT, 1, {"v": float("nan")}, 247)


def test_store_id_request_and_reply():
    request = decode_request(encode_request(Opcode.STORE_ID, 4))
    assert request.opcode is Opcode.STORE_ID and request_arguments(request) == ()
    reply = encode_reply(Opcode.STORE_ID, 4, Status.OK, STORE_ID_REPLY.pack(0x0123456789ABCDEF, STORE_FLAG_UPGRADED))
    assert len(reply) <= payload_size(23)  # fits one notification at the minimum MTU
    assert STORE_ID_REPLY.unpack(decode_reply(reply).payload) == (0x0123456789ABCDEF, 1)
    with pytest.raises(ProtocolError) as info:
        decode_request(encode_request(Opcode.STORE_ID, 4) + b"\x00")
    assert info.value.status is Status.BAD_LENGTH


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 3), st.integers(0, 3), st.integers(0, 70000), st.integers(0, 70000), st.integers(0, 493)
        ),
        max_size=300,
    )
)
def test_no_fragment_sequence_buffers_more_than_the_record_limit(headers):
    assembler = RecordAssembler()
    peak = 0
    for kind, seq, index, count, length in headers:
        packet = _HEADER.pack(1, kind, seq, index % 65536, count % 65536, 0, length) + bytes(length)
        assert assembler.feed(packet) is None  # all-zero bodies are never valid zlib: nothing completes
        peak = max(peak, assembler.buffered_bytes)
    assert peak <= 3 * MAX_RECORD_BYTES
    assert all(total <= MAX_RECORD_BYTES for _, _, total in assembler._pending.values())
