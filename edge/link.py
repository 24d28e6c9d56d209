"""The device side of a BLE session, independent of the Bluetooth stack.

:class:`DeviceLink` answers control-point writes, feeds stored records to the records
characteristic from where the host asked to resume, and turns the runtime's GRF blocks into live
packets when the host wants them. The GATT server (bumble) only moves bytes between the radio and
this object, so everything here is tested without Bluetooth.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from forcecast.edge.profile import ProfileError, StaleProfileError
from forcecast.edge.protocol import (
    MIN_MTU,
    PROFILE_REPLY,
    STATUS_REPLY,
    STORE_FLAG_UPGRADED,
    STORE_ID_REPLY,
    UPLOAD_BEGIN_REPLY,
    UPLOAD_MIN_MTU,
    Opcode,
    ProtocolError,
    Request,
    Status,
    decode_chunk,
    decode_request,
    encode_live,
    encode_record,
    encode_reply,
    live_samples_per_packet,
    payload_size,
    request_arguments,
)
from forcecast.edge.records import RecordKind
from forcecast.edge.runtime.store import RecordStore, StorageFullError, StoreError
from forcecast.edge.slots import SlotError

log = logging.getLogger(__name__)

LIVE_QUEUE = 400
"""Live packets kept while the radio is slower than the stream (older ones are dropped and counted)."""
LIVE_BATCH = 4
"""Live samples per notification when the MTU allows (the runtime emits one at a time at 100 Hz: four make a
notification every 40 ms per leg instead of every 10 ms, for at most 30 ms more delay on the host's trace)."""


class Updates(Protocol):
    """What the link needs for model updates (:class:`forcecast.edge.runtime.updates.ModelUpdates`)."""

    def begin(self, size: int, sha256: str) -> tuple[int, int]:
        """Start or resume an upload: ``(offset, crc32)``."""
        ...

    def chunk(self, offset: int, data: bytes) -> bytes | None:
        """One chunk; an acknowledgement to notify, if due."""
        ...

    def commit(self) -> str:
        """Verify, check, self-test and switch; what to tell the host (raises ``SlotError``)."""
        ...

    def abort(self) -> None:
        """Drop the upload in progress."""
        ...

    def rollback(self) -> str:
        """Go back to the previous model; what to tell the host (raises ``SlotError``)."""
        ...

    def disconnected(self) -> None:
        """The link dropped."""
        ...


class Profiles(Protocol):
    """What the link needs to take a patient profile (:class:`forcecast.edge.ble.profile.ProfileHandler`)."""

    def write(self, payload: bytes) -> int:
        """Decode, store and apply a profile's wire form; return the version now applied.

        Raises ``StaleProfileError`` (not newer), ``ProfileError`` (invalid) or ``OSError`` (not stored).
        """
        ...


UPDATE_OPCODES = (Opcode.UPLOAD_BEGIN, Opcode.UPLOAD_COMMIT, Opcode.UPLOAD_ABORT, Opcode.ROLLBACK)


class DeviceLink:
    """One connected host's session state.

    Parameters
    ----------
    store
        The device's record store.
    info
        What the device-info characteristic says (a JSON object, or a function returning the current one).
    clock
        Device time in seconds (the clock step records are stamped with).
    updates
        Model updates (None: this device runs a fixed package and refuses uploads).
    profiles
        Patient profiles written by the host (None: ``PROFILE`` is refused with ``profiles_off``).
    live_batch
        Consecutive live samples of a leg gathered into one notification (fewer if the MTU holds fewer).
    """

    def __init__(
        self,
        store: RecordStore,
        info: dict[str, Any] | Callable[[], dict[str, Any]],
        clock: Callable[[], float] = time.time,
        updates: Updates | None = None,
        profiles: Profiles | None = None,
        live_batch: int = LIVE_BATCH,
    ) -> None:
        if live_batch < 1:
            raise ValueError(f"live_batch must be >= 1, got {live_batch}")
        self.store = store
        self.info = info
        self.clock = clock
        self.updates = updates
        self.profiles = profiles
        self.mtu = MIN_MTU
        self.encrypted = False
        self.live = False
        self._cursor: dict[RecordKind, int] = {}
        self._queue: deque[bytes] = deque()
        self._live: deque[bytes] = deque(maxlen=LIVE_QUEUE)
        self.live_batch = live_batch
        self._gathering: dict[str, _LiveRun] = {}
        self._lock = threading.Lock()
        self.rejected: dict[str, int] = {}
        self.live_dropped = 0
        self.records_sent = 0
        self.quarantined = 0
        self.host_offset_ms: int | None = None

    def connected(self, mtu: int, encrypted: bool) -> None:
        """A host connected (or the link's MTU or encryption changed)."""
        with self._lock:
            self.mtu = max(MIN_MTU, mtu)
            self.encrypted = encrypted

    def disconnected(self) -> None:
        """Forget the session: the next host starts with RESUME; nothing stored is lost."""
        with self._lock:
            self._cursor.clear()
            self._queue.clear()
            self._live.clear()
            self._gathering.clear()
            self.live = False
            self.encrypted = False
        if self.updates is not None:
            self.updates.disconnected()

    def device_info(self) -> bytes:
        """The device-info characteristic's value."""
        info = self.info() if callable(self.info) else self.info
        return json.dumps(info, separators=(",", ":")).encode()

    def handle_upload(self, data: bytes) -> bytes | None:
        """Take one upload write; return an acknowledgement to notify, if one is due. Never raises."""
        try:
            if not self.encrypted:
                raise ProtocolError(Status.NOT_ENCRYPTED, "uploads need an encrypted, bonded link")
            if self.updates is None:
                raise ProtocolError(Status.REFUSED, "updates_off")
            offset, chunk = decode_chunk(data)
            return self.updates.chunk(offset, chunk)
        except ProtocolError as exc:
            self._count(f"upload_{exc.status.name}")
        except Exception:  # a bug must not take the link down; it is logged with its traceback and counted
            log.exception("upload write failed unexpectedly; counted as upload_INTERNAL")
            self._count("upload_INTERNAL")
        return None

    def handle_control(self, data: bytes) -> bytes:
        """Answer one control-point write; never raises (a bad write gets an error status)."""
        opcode, request_id = (
            (data[1] if len(data) > 1 else 0),
            (int.from_bytes(data[2:4], "little") if len(data) > 3 else 0),
        )
        try:
            if not self.encrypted:
                raise ProtocolError(Status.NOT_ENCRYPTED, "control point needs an encrypted, bonded link")
            request = decode_request(data)
            payload = self._serve(request)
            return encode_reply(request.opcode, request.request_id, Status.OK, payload)
        except ProtocolError as exc:
            self._count(exc.status.name)
            detail = str(exc).encode() if exc.payload is None else exc.payload
            return encode_reply(opcode, request_id, exc.status, detail[: payload_size(self.mtu) - 5])
        except Exception as exc:  # a bug must not take the link down; it is logged, reported and counted
            log.exception("control request 0x%02x failed unexpectedly; answered INTERNAL", opcode)
            self._count("INTERNAL")
            return encode_reply(opcode, request_id, Status.INTERNAL, type(exc).__name__.encode())

    def _count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _serve(self, request: Request) -> bytes:
        arguments = request_arguments(request)
        if request.opcode in UPDATE_OPCODES:
            return self._update(request.opcode, arguments)
        if request.opcode is Opcode.PROFILE:
            return self._profile(bytes(arguments[0]))
        if request.opcode is Opcode.TIME_SYNC:
            device_ms = round(self.clock() * 1000.0)
            self.host_offset_ms = int(arguments[0]) - device_ms
            return struct.pack("<Q", max(device_ms, 0))
        if request.opcode is Opcode.RESUME:
            kind, after = RecordKind(arguments[0]), int(arguments[1])
            with self._lock:
                self._cursor[kind] = after
            return b""
        if request.opcode is Opcode.ACK:
            kind, upto = RecordKind(arguments[0]), int(arguments[1])
            try:
                self.store.ack(kind.label, upto)
            except ValueError as exc:
                raise ProtocolError(Status.BAD_ARGUMENT, str(exc)) from None
            except StoreError as exc:  # e.g. a full disk: the host keeps streaming and acknowledges again later
                reason = "storage_full" if isinstance(exc, StorageFullError) else "storage_error"
                raise ProtocolError(Status.BUSY, f"{reason}: acknowledge again later") from None
            return b""
        if request.opcode is Opcode.STORE_ID:
            flags = STORE_FLAG_UPGRADED if self.store.store_id_origin == "upgrade" else 0
            return STORE_ID_REPLY.pack(int(self.store.store_id, 16), flags)
        if request.opcode is Opcode.LIVE:
            with self._lock:
                self.live = bool(arguments[0])
                self._gathering.clear()
            return b""
        last, acked_upto, stored = self.store.progress(RecordKind(arguments[0]).label)
        return STATUS_REPLY.pack(last, acked_upto, stored, int(self.live))

    def _update(self, opcode: Opcode, arguments: tuple[Any, ...]) -> bytes:
        updates = self.updates
        if updates is None:
            raise ProtocolError(
                Status.REFUSED, "updates_off: this runtime runs a fixed package (--model); updates need the model slots"
            )
        try:
            if opcode is Opcode.UPLOAD_BEGIN:
                if self.mtu < UPLOAD_MIN_MTU:
                    message = f"uploads need an ATT MTU ≥ {UPLOAD_MIN_MTU}, not {self.mtu}"
                    raise ProtocolError(Status.BAD_ARGUMENT, message)
                offset, crc = updates.begin(int(arguments[0]), bytes(arguments[1]).hex())
                return UPLOAD_BEGIN_REPLY.pack(offset, crc & 0xFFFFFFFF)
            if opcode is Opcode.UPLOAD_ABORT:
                updates.abort()
                return b""
            text = updates.commit() if opcode is Opcode.UPLOAD_COMMIT else updates.rollback()
        except SlotError as exc:
            raise ProtocolError(Status.REFUSED, f"{exc.reason}: {exc}") from None
        return text.encode()[: payload_size(self.mtu) - 5]

    def _profile(self, payload: bytes) -> bytes:
        if self.profiles is None:
            raise ProtocolError(Status.REFUSED, "profiles_off: this runtime takes no patient profile over BLE")
        try:
            version = self.profiles.write(payload)
        except StaleProfileError as exc:
            text = str(exc)
            raise ProtocolError(Status.STALE, text, PROFILE_REPLY.pack(exc.current_version) + text.encode()) from None
        except ProfileError as exc:
            raise ProtocolError(Status.BAD_ARGUMENT, f"{exc.reason}: {exc}") from None
        except OSError as exc:
            message = f"storage_error: the profile could not be stored ({exc.strerror or exc}); nothing changed"
            raise ProtocolError(Status.BUSY, message) from None
        return PROFILE_REPLY.pack(version)

    def next_record_packets(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` record fragments to notify next (whole records, oldest first, per resumed kind)."""
        with self._lock:
            if not self.encrypted:
                return []
            while len(self._queue) < limit:
                added = False
                for kind, after in list(self._cursor.items()):
                    for record in self.store.records(kind.label, after_seq=after, limit=8):
                        self._cursor[kind] = record.seq
                        added = True
                        try:
                            packets = encode_record(kind, record.seq, record.payload, self.mtu)
                        except ValueError as exc:  # a record the wire refuses (too large): out of the queue
                            self._quarantine(kind, record.seq, str(exc))
                            continue
                        self._queue.extend(packets)
                        self.records_sent += 1
                if not added:
                    break
            return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def _quarantine(self, kind: RecordKind, seq: int, reason: str) -> None:
        """Take a record nobody can send out of the queue; the store logs it as a ``record_quarantined`` event."""
        self.quarantined += 1
        try:
            self.store.quarantine(kind.label, seq, f"cannot be sent: {reason}")
        except StoreError:
            self._count("QUARANTINE_FAILED")  # skipped this session; tried again after the next RESUME

    def on_grf(self, leg: str, time_s: np.ndarray, grf_bw: np.ndarray, period_s: float, block: int) -> None:
        """Queue the runtime's newest GRF samples for the live characteristic (if the host asked).

        Consecutive samples of a leg are gathered until ``live_batch`` are there, or as many as one notification
        holds at this MTU if that is fewer (at the smallest MTU each goes at once); a sample that does not follow
        the ones gathered (a gap in the block counter, another period) sends those first.
        """
        if not self.live or time_s.size == 0:
            return
        rows = np.asarray(grf_bw, dtype=np.float64).reshape(time_s.size, -1)
        with self._lock:
            run = self._gathering.get(leg)
            if run is not None and not run.continued_by(block, period_s):
                self._queue_live(leg, self._gathering.pop(leg))
                run = None
            if run is None:
                run = self._gathering[leg] = _LiveRun(block, float(time_s[0]), period_s)
            run.rows.append(rows)
            if run.count >= min(self.live_batch, max(1, live_samples_per_packet(self.mtu))):
                self._queue_live(leg, self._gathering.pop(leg))

    def _queue_live(self, leg: str, run: _LiveRun) -> None:
        """Encode a gathered run of samples into the live queue (under the lock), counting what overflows."""
        packets = encode_live(leg, run.block, run.t0_s, run.period_s, np.concatenate(run.rows), self.mtu)
        overflow = len(self._live) + len(packets) - LIVE_QUEUE
        if overflow > 0:
            self.live_dropped += overflow
        self._live.extend(packets)

    def next_live_packets(self, limit: int = 64) -> list[bytes]:
        """Live packets to notify next."""
        with self._lock:
            return [self._live.popleft() for _ in range(min(limit, len(self._live)))]


@dataclass
class _LiveRun:
    """Consecutive live samples of one leg waiting to fill a notification."""

    block: int
    t0_s: float
    period_s: float
    rows: list[np.ndarray] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Samples gathered so far."""
        return sum(len(part) for part in self.rows)

    def continued_by(self, block: int, period_s: float) -> bool:
        """Whether samples starting at ``block`` follow these without a gap."""
        return block == self.block + self.count and period_s == self.period_s
