"""The BLE wire protocol between a forcecast device and a host (pure Python; no Bluetooth imports).

Everything is little-endian and starts with a one-byte protocol version. Three kinds of packet:

- **Record fragments** (step, summary and event records, notified on the records characteristic).
  A record is its JSON body compressed with zlib; the body is cut into fragments that each fit one
  notification of the negotiated MTU. Header (16 bytes)::

      u8 version | u8 kind | u32 seq | u16 index | u16 count | u32 crc32(body) | u16 length

  ``seq`` is the store's per-kind sequence number, so a host can resume after the last record it
  holds; ``crc32`` covers the whole compressed body and is checked after reassembly.
- **Live GRF blocks** (notified on the live characteristic), as many samples as fit. Header (13 bytes)::

      u8 version | u8 type=0x10 | u8 leg ('l'/'r') | u8 n | u32 block | u32 t0_ms | u8 period_ms

  then ``n`` samples of three i16 (v, ap, ml in milli-body-weights). ``t0_ms`` is the device time of
  the first sample modulo 2³² ms.
- **Control point** requests (written) and replies (notified)::

      request: u8 version | u8 opcode | u16 request_id | payload
      reply:   u8 version | u8 opcode|0x80 | u16 request_id | u8 status | payload

- **Model upload** chunks (written without response on the upload characteristic) and the device's
  acknowledgements (notified on it)::

      chunk: u8 version | u32 offset | data
      ack:   u8 version | u8 type=0x20 | u32 offset | u32 crc32(bytes 0..offset) | u8 rewind

  ``offset`` in an ack is how far the device's durable copy goes; ``rewind`` = 1 says a chunk came
  at the wrong offset and the host must continue from the acked offset.

Decoders never raise anything but :class:`ProtocolError`, which carries the status code a reply
would send back, so a malformed packet is counted and answered, never fatal. See docs/protocol.md.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.profile import WIRE_BYTES as PROFILE_WIRE_BYTES
from forcecast.edge.records import RecordError, dumps, loads
from forcecast.edge.records import RecordKind as RecordKind  # re-exported: the kind field of the wire protocol

VERSION: Final = 1
ATT_OVERHEAD: Final = 3
"""An ATT notification carries ``MTU - 3`` bytes of value."""
MIN_MTU: Final = 23
MAX_ATTRIBUTE_BYTES: Final = 512
"""The longest attribute value ATT allows (Core spec Vol 3 Part F 3.2.9), whatever the MTU."""
MAX_RECORD_BYTES: Final = 64 * 1024
"""The longest compressed record body: a reassembler never buffers more than this per record kind."""
MAX_RECORD_JSON_BYTES: Final = 256 * 1024
"""The longest record JSON text: encoders refuse more, decoders stop decompressing there (a zlib bomb)."""

SERVICE_UUID: Final = "6f7c0001-3a1e-4c43-9f1b-6b2f0c9e5a10"
LIVE_UUID: Final = "6f7c0002-3a1e-4c43-9f1b-6b2f0c9e5a10"
RECORDS_UUID: Final = "6f7c0003-3a1e-4c43-9f1b-6b2f0c9e5a10"
CONTROL_UUID: Final = "6f7c0004-3a1e-4c43-9f1b-6b2f0c9e5a10"
INFO_UUID: Final = "6f7c0005-3a1e-4c43-9f1b-6b2f0c9e5a10"
UPLOAD_UUID: Final = "6f7c0006-3a1e-4c43-9f1b-6b2f0c9e5a10"
UPLOAD_MIN_MTU: Final = 64
"""Uploads need at least this MTU: UPLOAD_BEGIN carries a SHA-256, and smaller chunks would take hours."""


class Opcode(IntEnum):
    """Control-point requests."""

    TIME_SYNC = 0x01
    """payload: u64 host Unix time in ms → reply: u64 device time in ms (the device notes the offset)."""
    RESUME = 0x02
    """payload: u8 kind, u32 after_seq → the device streams that kind's records after ``after_seq``."""
    ACK = 0x03
    """payload: u8 kind, u32 upto_seq → the device marks records up to ``upto_seq`` as delivered."""
    LIVE = 0x04
    """payload: u8 on (0/1) → start or stop the live GRF stream."""
    STATUS = 0x05
    """payload: u8 kind → reply: u32 last_seq, u32 acked_upto, u32 stored, u8 live (fits a 23-byte MTU)."""
    STORE_ID = 0x06
    """no payload → reply: u64 store_id, u8 flags (bit 0: the id was given to a store older software made).

    The store id names the device's record store; a host keeps resume points per (device, store id), so a
    replaced store, whose seqs restart at 1, is fetched from its start. A device without it answers
    ``UNKNOWN_OPCODE`` and the host treats its store as the one store it had before (id ``""``)."""
    PROFILE = 0x07
    """payload: a patient profile's 13-byte wire form (:mod:`forcecast.edge.profile`) → reply: u32 the version now
    applied. ``STALE`` (with the device's current version) when the version is not newer than the device's,
    ``BAD_ARGUMENT`` (``reason: message``) when a value is out of range. Device without it: ``UNKNOWN_OPCODE``."""
    UPLOAD_BEGIN = 0x10
    """payload: u32 size, 32-byte SHA-256 of the package → reply: u32 offset, u32 crc32 of the bytes before it.

    Resumes the upload of the same package where the device's durable copy ends; anything else starts over."""
    UPLOAD_COMMIT = 0x11
    """no payload → verify, self-test and switch; reply: the new model's version (UTF-8), or REFUSED + reason."""
    UPLOAD_ABORT = 0x12
    """no payload → drop the upload in progress."""
    ROLLBACK = 0x13
    """no payload → make the previous model active again; reply: its version (UTF-8), or REFUSED + reason."""


class Status(IntEnum):
    """Reply status codes (also the codes of :class:`ProtocolError`)."""

    OK = 0
    BAD_VERSION = 1
    UNKNOWN_OPCODE = 2
    BAD_LENGTH = 3
    BAD_ARGUMENT = 4
    NOT_ENCRYPTED = 5
    BUSY = 6
    INTERNAL = 7
    BAD_CHECKSUM = 8
    REFUSED = 9
    """A model update or rollback was refused; the reply's text starts with a stable reason (``reason: ...``)."""
    STALE = 10
    """A profile was not newer than the device's; the reply holds the device's current version (u32), then text."""


class ProtocolError(ForcecastValueError):
    """A packet cannot be decoded or a request not served; ``status`` is what a reply would say."""

    reason = "protocol_error"

    def __init__(self, status: Status, message: str, payload: bytes | None = None) -> None:
        self.status = status
        self.payload = payload  # what a reply carries (None: the message's text), e.g. a STALE reply's version
        super().__init__(message)


_FRAGMENT = struct.Struct("<BBIHHIH")
_LIVE = struct.Struct("<BBBBIIB")
_REQUEST = struct.Struct("<BBH")
_REPLY = struct.Struct("<BBHB")
LIVE_TYPE: Final = 0x10
REPLY_FLAG: Final = 0x80


def payload_size(mtu: int) -> int:
    """Bytes of value one notification or write can carry at ``mtu`` (an attribute value is at most 512)."""
    if mtu < MIN_MTU:
        raise ValueError(f"ATT MTU must be at least {MIN_MTU}, got {mtu}")
    return min(mtu - ATT_OVERHEAD, MAX_ATTRIBUTE_BYTES)


def _check_version(data: bytes, what: str) -> None:
    if not data:
        raise ProtocolError(Status.BAD_LENGTH, f"{what}: empty packet")
    if data[0] != VERSION:
        raise ProtocolError(Status.BAD_VERSION, f"{what}: protocol version {data[0]}, this side speaks {VERSION}")


# ---------------------------------------------------------------- records


def encode_record(kind: RecordKind, seq: int, payload: dict[str, Any], mtu: int) -> list[bytes]:
    """Fragments (one notification each) carrying one record.

    Raises
    ------
    ValueError
        If the payload holds NaN or Infinity, is longer than :data:`MAX_RECORD_JSON_BYTES` as JSON or
        :data:`MAX_RECORD_BYTES` compressed, or ``seq`` is out of range.
    """
    if not 0 <= seq < 2**32:
        raise ValueError(f"seq {seq} is outside 0..2^32-1")
    text = dumps(payload).encode()
    if len(text) > MAX_RECORD_JSON_BYTES:
        raise ValueError(
            f"{kind.name.lower()} record {seq} is {len(text)} bytes of JSON; the limit is {MAX_RECORD_JSON_BYTES}"
        )
    body = zlib.compress(text, 6)
    if len(body) > MAX_RECORD_BYTES:
        raise ValueError(
            f"{kind.name.lower()} record {seq} is {len(body)} bytes compressed; the limit is {MAX_RECORD_BYTES}"
        )
    room = payload_size(mtu) - _FRAGMENT.size
    if room < 1:
        raise ValueError(f"MTU {mtu} leaves no room for record data")
    pieces = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
    crc = zlib.crc32(body)
    return [
        _FRAGMENT.pack(VERSION, int(kind), seq, index, len(pieces), crc, len(piece)) + piece
        for index, piece in enumerate(pieces)
    ]


@dataclass(frozen=True)
class Fragment:
    """One decoded record fragment."""

    kind: RecordKind
    seq: int
    index: int
    count: int
    crc: int
    data: bytes


def decode_fragment(data: bytes) -> Fragment:
    """Parse one record notification (structure only; the body is checked on reassembly)."""
    _check_version(data, "record fragment")
    if len(data) < _FRAGMENT.size:
        raise ProtocolError(
            Status.BAD_LENGTH, f"record fragment: {len(data)} bytes, the header alone is {_FRAGMENT.size}"
        )
    _, kind, seq, index, count, crc, length = _FRAGMENT.unpack_from(data)
    if kind not in RecordKind._value2member_map_:
        raise ProtocolError(Status.BAD_ARGUMENT, f"record fragment: unknown record kind {kind}")
    if count == 0 or index >= count:
        raise ProtocolError(Status.BAD_ARGUMENT, f"record fragment: index {index} of {count}")
    if length != len(data) - _FRAGMENT.size:
        raise ProtocolError(
            Status.BAD_LENGTH, f"record fragment: says {length} data bytes, carries {len(data) - _FRAGMENT.size}"
        )
    return Fragment(RecordKind(kind), seq, index, count, crc, bytes(data[_FRAGMENT.size :]))


class RecordAssembler:
    """Put fragments back together into records; every rejected packet is counted by reason.

    Fragments of one record arrive in order on one link; a new record (or a gap) abandons a
    half-finished one, which the host then asks for again by resuming from its last stored seq.

    Bounded: at most one record per kind is buffered, and never more than :data:`MAX_RECORD_BYTES`
    of it (a first fragment whose count × length claims more is refused, as is any fragment that
    would grow the buffer past it); decompression stops at :data:`MAX_RECORD_JSON_BYTES`; a body
    with NaN, Infinity or a number out of float range is refused. Reasons counted in ``rejected``:
    the decoder's status names (``BAD_VERSION``, ``BAD_LENGTH``, ``BAD_ARGUMENT``, ``BAD_CHECKSUM``),
    ``TOO_LARGE`` (a record claiming or growing past the limits, a zlib bomb) and ``NOT_FINITE``.
    """

    def __init__(self) -> None:
        self._pending: dict[RecordKind, tuple[Fragment, list[bytes], int]] = {}
        self.rejected: dict[str, int] = {}
        self.abandoned = 0

    @property
    def buffered_bytes(self) -> int:
        """Body bytes held for half-finished records (all kinds together)."""
        return sum(total for _, _, total in self._pending.values())

    def feed(self, data: bytes) -> tuple[RecordKind, int, dict[str, Any]] | None:
        """Add one notification; return ``(kind, seq, payload)`` when a record is complete."""
        try:
            fragment = decode_fragment(data)
        except ProtocolError as exc:
            self._reject(exc.status.name)
            return None
        pending = self._pending.pop(fragment.kind, None)
        if fragment.index == 0:
            if pending is not None:
                self.abandoned += 1
            if fragment.count > 1 and (fragment.count - 1) * max(len(fragment.data), 1) >= MAX_RECORD_BYTES:
                self._reject("TOO_LARGE")  # claims more than a record may be: nothing is buffered for it
                return None
            pending = (fragment, [fragment.data], len(fragment.data))
        elif pending is None or not _continues(pending[0], fragment, len(pending[1])):
            if pending is not None:
                self.abandoned += 1
            self._reject("BAD_ARGUMENT")  # out of order
            return None
        else:
            first, parts, total = pending
            if total + len(fragment.data) > MAX_RECORD_BYTES:
                self.abandoned += 1
                self._reject("TOO_LARGE")
                return None
            parts.append(fragment.data)
            pending = (first, parts, total + len(fragment.data))
        first, parts, _ = pending
        if len(parts) < first.count:
            self._pending[fragment.kind] = pending
            return None
        body = b"".join(parts)
        if zlib.crc32(body) != first.crc:
            self._reject("BAD_CHECKSUM")
            return None
        payload = self._decode_body(body)
        return None if payload is None else (first.kind, first.seq, payload)

    def _decode_body(self, body: bytes) -> dict[str, Any] | None:
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(body, MAX_RECORD_JSON_BYTES)
        except zlib.error:
            self._reject("BAD_ARGUMENT")
            return None
        if inflater.unconsumed_tail:
            self._reject("TOO_LARGE")  # inflates past the limit: a zlib bomb is never expanded
            return None
        if not inflater.eof or inflater.unused_data:
            self._reject("BAD_ARGUMENT")  # a truncated stream, or bytes after it
            return None
        try:
            return loads(text)
        except RecordError as exc:
            self._reject("NOT_FINITE" if exc.reason == "not_finite" else "BAD_ARGUMENT")
            return None

    def reset(self) -> None:
        """Forget half-finished records (after a disconnect)."""
        self.abandoned += len(self._pending)
        self._pending.clear()

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def _continues(first: Fragment, fragment: Fragment, have: int) -> bool:
    return (
        fragment.seq == first.seq
        and fragment.count == first.count
        and fragment.crc == first.crc
        and fragment.index == have
    )


# ---------------------------------------------------------------- live stream


def live_samples_per_packet(mtu: int) -> int:
    """How many live GRF samples one notification holds at this MTU (0 if not even one)."""
    return max(0, (payload_size(mtu) - _LIVE.size) // 6)


def encode_live(
    leg: str, block: int, t0_s: float, period_s: float, grf_bw: NDArray[np.floating], mtu: int
) -> list[bytes]:
    """Live GRF packets for consecutive samples of one leg (split to fit the MTU)."""
    if leg not in ("l", "r"):
        raise ValueError(f"leg must be 'l' or 'r', got {leg!r}")
    if not 0.0005 <= period_s <= 0.255:
        raise ValueError(f"sample period {period_s} s does not fit the live header (1..255 ms)")
    per_packet = live_samples_per_packet(mtu)
    if per_packet < 1:
        raise ValueError(f"MTU {mtu} leaves no room for a live sample")
    milli = np.clip(np.round(np.nan_to_num(np.asarray(grf_bw, dtype=np.float64), nan=0.0) * 1000.0), -32768, 32767)
    packets = []
    for start in range(0, milli.shape[0], per_packet):
        part = milli[start : start + per_packet].astype("<i2")
        t0_ms = round((t0_s + start * period_s) * 1000.0) % 2**32
        header = _LIVE.pack(
            VERSION, LIVE_TYPE, ord(leg), part.shape[0], (block + start) % 2**32, t0_ms, round(period_s * 1000)
        )
        packets.append(header + part.tobytes())
    return packets


@dataclass(frozen=True)
class LiveBlock:
    """Decoded live GRF samples."""

    leg: str
    block: int
    t0_ms: int
    period_ms: int
    grf_bw: NDArray[np.float64]


def decode_live(data: bytes) -> LiveBlock:
    """Parse one live GRF notification."""
    _check_version(data, "live block")
    if len(data) < _LIVE.size:
        raise ProtocolError(Status.BAD_LENGTH, f"live block: {len(data)} bytes, the header alone is {_LIVE.size}")
    _, kind, leg, n, block, t0_ms, period_ms = _LIVE.unpack_from(data)
    if kind != LIVE_TYPE:
        raise ProtocolError(Status.BAD_ARGUMENT, f"live block: type 0x{kind:02x}, expected 0x{LIVE_TYPE:02x}")
    if leg not in (ord("l"), ord("r")):
        raise ProtocolError(Status.BAD_ARGUMENT, f"live block: leg byte {leg}")
    if len(data) != _LIVE.size + 6 * n or period_ms == 0:
        raise ProtocolError(
            Status.BAD_LENGTH, f"live block: {n} samples need {_LIVE.size + 6 * n} bytes, got {len(data)}"
        )
    samples = np.frombuffer(data, dtype="<i2", offset=_LIVE.size).reshape(n, 3).astype(np.float64) / 1000.0
    return LiveBlock(chr(leg), block, t0_ms, period_ms, samples)


# ---------------------------------------------------------------- control point


@dataclass(frozen=True)
class Request:
    """A control-point request."""

    opcode: Opcode
    request_id: int
    payload: bytes


@dataclass(frozen=True)
class Reply:
    """A control-point reply."""

    opcode: int
    request_id: int
    status: Status
    payload: bytes


_ARGUMENTS: Final = {
    Opcode.TIME_SYNC: struct.Struct("<Q"),
    Opcode.RESUME: struct.Struct("<BI"),
    Opcode.ACK: struct.Struct("<BI"),
    Opcode.LIVE: struct.Struct("<B"),
    Opcode.STATUS: struct.Struct("<B"),
    Opcode.STORE_ID: struct.Struct("<"),
    Opcode.PROFILE: struct.Struct(f"<{PROFILE_WIRE_BYTES}s"),
    Opcode.UPLOAD_BEGIN: struct.Struct("<I32s"),
    Opcode.UPLOAD_COMMIT: struct.Struct("<"),
    Opcode.UPLOAD_ABORT: struct.Struct("<"),
    Opcode.ROLLBACK: struct.Struct("<"),
}
STATUS_REPLY: Final = struct.Struct("<IIIB")
"""STATUS reply payload: last_seq, acked_upto and stored count of the kind asked about, live on/off."""
STORE_ID_REPLY: Final = struct.Struct("<QB")
"""STORE_ID reply payload: the store id (its 16 hex digits as one u64) and flags."""
STORE_FLAG_UPGRADED: Final = 0x01
"""STORE_ID flag: the id was given to an existing store on a software upgrade; its seqs continue the old ones."""
PROFILE_REPLY: Final = struct.Struct("<I")
"""PROFILE reply payload (``OK``: the version applied; ``STALE``: the device's current version, then text)."""
UPLOAD_BEGIN_REPLY: Final = struct.Struct("<II")
"""UPLOAD_BEGIN reply payload: the offset to continue from and the CRC-32 of the bytes before it."""


def encode_request(opcode: Opcode, request_id: int, *arguments: int | bytes) -> bytes:
    """A control-point write, e.g. ``encode_request(Opcode.ACK, 7, RecordKind.STEP, 120)``."""
    return _REQUEST.pack(VERSION, int(opcode), request_id % 2**16) + _ARGUMENTS[opcode].pack(*arguments)


def decode_request(data: bytes) -> Request:
    """Parse a control-point write (the device side)."""
    _check_version(data, "request")
    if len(data) < _REQUEST.size:
        raise ProtocolError(Status.BAD_LENGTH, f"request: {len(data)} bytes, the header alone is {_REQUEST.size}")
    _, opcode, request_id = _REQUEST.unpack_from(data)
    if opcode not in Opcode._value2member_map_:
        raise ProtocolError(Status.UNKNOWN_OPCODE, f"request {request_id}: unknown opcode 0x{opcode:02x}")
    payload = bytes(data[_REQUEST.size :])
    expected = _ARGUMENTS[Opcode(opcode)].size
    if len(payload) != expected:
        raise ProtocolError(
            Status.BAD_LENGTH,
            f"request {request_id}: {Opcode(opcode).name} takes {expected} payload bytes, got {len(payload)}",
        )
    return Request(Opcode(opcode), request_id, payload)


def request_arguments(request: Request) -> tuple[Any, ...]:
    """The values a request carries (validated: kinds must be known, LIVE is 0 or 1)."""
    values = _ARGUMENTS[request.opcode].unpack(request.payload)
    if request.opcode in (Opcode.RESUME, Opcode.ACK, Opcode.STATUS) and values[0] not in RecordKind._value2member_map_:
        raise ProtocolError(Status.BAD_ARGUMENT, f"request {request.request_id}: unknown record kind {values[0]}")
    if request.opcode is Opcode.LIVE and values[0] not in (0, 1):
        raise ProtocolError(Status.BAD_ARGUMENT, f"request {request.request_id}: LIVE takes 0 or 1, got {values[0]}")
    return values


def encode_reply(opcode: int, request_id: int, status: Status, payload: bytes = b"") -> bytes:
    """A control-point notification answering a request."""
    return _REPLY.pack(VERSION, (opcode | REPLY_FLAG) & 0xFF, request_id % 2**16, int(status)) + payload


def decode_reply(data: bytes) -> Reply:
    """Parse a control-point notification (the host side)."""
    _check_version(data, "reply")
    if len(data) < _REPLY.size:
        raise ProtocolError(Status.BAD_LENGTH, f"reply: {len(data)} bytes, the header alone is {_REPLY.size}")
    _, opcode, request_id, status = _REPLY.unpack_from(data)
    if not opcode & REPLY_FLAG:
        raise ProtocolError(Status.BAD_ARGUMENT, f"reply: opcode 0x{opcode:02x} lacks the reply flag")
    if status not in Status._value2member_map_:
        raise ProtocolError(Status.BAD_ARGUMENT, f"reply {request_id}: unknown status {status}")
    return Reply(opcode & ~REPLY_FLAG, request_id, Status(status), bytes(data[_REPLY.size :]))


# ---------------------------------------------------------------- model upload

_CHUNK = struct.Struct("<BI")
_UPLOAD_ACK = struct.Struct("<BBIIB")
UPLOAD_ACK_TYPE: Final = 0x20


def upload_chunk_size(mtu: int) -> int:
    """Package bytes one upload write carries at ``mtu``."""
    return payload_size(mtu) - _CHUNK.size


def encode_chunk(offset: int, data: bytes) -> bytes:
    """An upload write: ``data`` belongs at ``offset`` of the package."""
    return _CHUNK.pack(VERSION, offset) + data


def decode_chunk(data: bytes) -> tuple[int, bytes]:
    """Parse an upload write (the device side): ``(offset, data)``."""
    _check_version(data, "upload chunk")
    if len(data) <= _CHUNK.size:
        raise ProtocolError(Status.BAD_LENGTH, f"upload chunk: {len(data)} bytes, no data after the 5-byte header")
    _, offset = _CHUNK.unpack_from(data)
    return offset, bytes(data[_CHUNK.size :])


@dataclass(frozen=True)
class UploadAck:
    """The device's word on an upload: durable up to ``offset``, with that prefix's CRC-32."""

    offset: int
    crc32: int
    rewind: bool


def encode_upload_ack(offset: int, crc32: int, rewind: bool = False) -> bytes:
    """An upload acknowledgement (notified on the upload characteristic)."""
    return _UPLOAD_ACK.pack(VERSION, UPLOAD_ACK_TYPE, offset, crc32, int(rewind))


def decode_upload_ack(data: bytes) -> UploadAck:
    """Parse an upload acknowledgement (the host side)."""
    _check_version(data, "upload ack")
    if len(data) != _UPLOAD_ACK.size:
        raise ProtocolError(Status.BAD_LENGTH, f"upload ack: {len(data)} bytes, expected {_UPLOAD_ACK.size}")
    _, kind, offset, crc, rewind = _UPLOAD_ACK.unpack(data)
    if kind != UPLOAD_ACK_TYPE or rewind > 1:
        raise ProtocolError(Status.BAD_ARGUMENT, f"upload ack: type 0x{kind:02x} rewind {rewind} is not an ack")
    return UploadAck(offset, crc, bool(rewind))
