"""The host app's BLE central: find a forcecast device, keep its records flowing into the host store.

Only bleak's public API is used, so the same code runs over BlueZ/CoreBluetooth/WinRT and, with
``backend=`` set to :mod:`forcecast.host_app.bleak_bumble`'s classes, over bumble's in-process link.

One session: scan for the service UUID (optionally one address) → connect (the OS or backend
exchanges the MTU) → pair / re-encrypt the bond → read the device info → subscribe to control,
records (and live) → TIME_SYNC → STORE_ID (which store the device has now; a replaced one is
fetched from its start) → for each record kind, RESUME after the last seq the host store holds
without gaps for that store → store what arrives, in batches, idempotently (a ``record_quarantined``
event marks the record it names as a gap) → ACK what is durably stored. A lost link or any error
ends the session (an ACK the device answers BUSY, e.g. on a full disk, does not: it is tried again);
:meth:`HostLogger.run` starts the next one after a backoff (0.5 s doubling to 30 s, with jitter),
forever, until told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakError

from forcecast.edge.profile import PatientProfile, StaleProfileError, encode_profile
from forcecast.edge.protocol import (
    CONTROL_UUID,
    INFO_UUID,
    LIVE_UUID,
    PROFILE_REPLY,
    RECORDS_UUID,
    SERVICE_UUID,
    STATUS_REPLY,
    STORE_FLAG_UPGRADED,
    STORE_ID_REPLY,
    LiveBlock,
    Opcode,
    ProtocolError,
    RecordAssembler,
    Reply,
    Status,
    decode_live,
    decode_reply,
    encode_request,
)
from forcecast.edge.records import KIND_LABELS, EventRecord, EventType, Record, RecordError, RecordKind, decode
from forcecast.host_app.store import HostStore

log = logging.getLogger(__name__)

LiveCallback = Callable[[LiveBlock, float], None]
"""Called with each live GRF block and the host's receive time (``time.time()``)."""


@dataclass(frozen=True)
class ClientConfig:
    """How the host client behaves.

    Attributes
    ----------
    scan_timeout_s
        How long one scan looks for the device.
    connect_timeout_s
        Connection timeout.
    request_timeout_s
        How long a control-point request waits for its reply.
    backoff_min_s, backoff_max_s
        Reconnect delay: starts at the minimum, doubles after each failed attempt up to the maximum.
    ack_period_s
        How often stored records are acknowledged (and batches committed).
    live
        Ask the device for the live GRF stream.
    """

    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    request_timeout_s: float = 5.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    ack_period_s: float = 0.5
    live: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("backoff_min_s must be > 0 and ≤ backoff_max_s")
        if min(self.scan_timeout_s, self.connect_timeout_s, self.request_timeout_s, self.ack_period_s) <= 0:
            raise ValueError("timeouts and ack_period_s must be > 0")


@dataclass
class ClientStats:
    """What the client has done, for logs, ``--json`` and tests."""

    sessions: int = 0
    failed_attempts: int = 0
    disconnects: int = 0
    records_received: int = 0
    records_stored: int = 0
    duplicates_received: int = 0
    acks: int = 0
    live_blocks: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    abandoned_fragments: int = 0
    device_gaps: int = 0
    quarantined_gaps: int = 0
    store_changes: int = 0
    acks_refused: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)
    """Records stored as they came but not readable as records (by :class:`RecordError` reason): left out of
    day queries. Records of a newer version are not stored at all: they count in ``rejected`` as
    ``record_NEWER_VERSION`` and stay on the device (unacknowledged) for a newer host."""
    last_error: str = ""

    def reject(self, reason: str) -> None:
        """Count one rejected packet."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def is_forcecast(address: str | None) -> Callable[[BLEDevice, AdvertisementData], bool]:
    """Scan filter: advertises the forcecast service (and has ``address``, when given)."""

    def match(device: BLEDevice, advertisement: AdvertisementData) -> bool:
        if SERVICE_UUID not in (u.lower() for u in advertisement.service_uuids):
            return False
        return address is None or device.address.upper() == address.upper()

    return match


async def scan(
    timeout_s: float, scanner_backend: type | None = None, **backend_kwargs: Any
) -> list[tuple[BLEDevice, AdvertisementData]]:
    """Every forcecast device advertising within ``timeout_s``."""
    found = await BleakScanner.discover(
        timeout=timeout_s, return_adv=True, **_scan_options(scanner_backend, backend_kwargs)
    )
    return [(device, adv) for device, adv in found.values() if is_forcecast(None)(device, adv)]


def _scan_options(scanner_backend: type | None, backend_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keywords for bleak's scanner: our service, and the backend when one is given (else the platform's)."""
    options: dict[str, Any] = {"service_uuids": [SERVICE_UUID], **backend_kwargs}
    if scanner_backend is not None:
        options["backend"] = scanner_backend
    return options


async def find_device(
    address: str | None, config: ClientConfig, scanner_backend: type | None, backend_kwargs: dict[str, Any]
) -> BLEDevice | None:
    """Scan for a forcecast device (``address``, when given) for up to ``config.scan_timeout_s``."""
    return await BleakScanner.find_device_by_filter(
        is_forcecast(address),
        timeout=config.scan_timeout_s,
        **_scan_options(scanner_backend, backend_kwargs),
    )


@contextlib.asynccontextmanager
async def connect(
    device: BLEDevice, config: ClientConfig, client_backend: type | None, backend_kwargs: dict[str, Any]
) -> AsyncIterator[tuple[BleakClient, asyncio.Event]]:
    """Connect and pair (or re-encrypt the bond); yields the client and an event set when the link drops."""
    lost = asyncio.Event()
    client = BleakClient(
        device,
        disconnected_callback=lambda _client: lost.set(),
        timeout=config.connect_timeout_s,
        backend=client_backend,
        **backend_kwargs,
    )
    await client.connect()
    try:
        await client.pair()
        yield client, lost
    finally:
        with contextlib.suppress(BleakError, TimeoutError):
            await client.disconnect()


class ControlChannel:
    """Control-point requests with ids, matched to their notified replies."""

    def __init__(self, client: BleakClient, stats: ClientStats, timeout_s: float, lost: asyncio.Event) -> None:
        self.client = client
        self.stats = stats
        self.timeout_s = timeout_s
        self.lost = lost
        self._next_id = random.randrange(2**16)
        self._pending: dict[int, asyncio.Future[Reply]] = {}

    def on_notify(self, _characteristic: Any, data: bytearray) -> None:
        """Control notifications: resolve the waiting request (unknown or malformed replies are counted)."""
        try:
            reply = decode_reply(bytes(data))
        except ProtocolError as exc:
            self.stats.reject(f"reply_{exc.status.name}")
            return
        future = self._pending.pop(reply.request_id, None)
        if future is None or future.done():
            self.stats.reject("reply_unexpected")
            return
        future.set_result(reply)

    async def request(
        self,
        opcode: Opcode,
        *arguments: int | bytes,
        timeout_s: float | None = None,
        accept: tuple[Status, ...] = (),
    ) -> Reply:
        """Send a request and wait for its reply (``OK``, or one of the statuses in ``accept``).

        Raises
        ------
        ProtocolError
            If the device answers with another error status (the message is the device's text, ``payload``
            the reply's bytes).
        TimeoutError
            If no reply comes within the timeout.
        BleakError
            If the link drops before the reply.
        """
        request_id = self._next_id
        self._next_id = (self._next_id + 1) % 2**16
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.client.write_gatt_char(CONTROL_UUID, encode_request(opcode, request_id, *arguments), True)
            lost = asyncio.ensure_future(self.lost.wait())
            timeout = timeout_s or self.timeout_s
            try:
                racing: set[asyncio.Future[Any]] = {future, lost}
                await asyncio.wait(racing, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
            if not future.done():
                if self.lost.is_set():
                    raise BleakError(f"{opcode.name} request {request_id}: the link dropped before the reply")
                raise TimeoutError(f"{opcode.name} request {request_id}: no reply within {timeout:g} s")
            reply = future.result()
        finally:
            self._pending.pop(request_id, None)
        if reply.status is not Status.OK and reply.status not in accept:
            text = reply.payload.decode(errors="replace")
            raise ProtocolError(reply.status, f"{opcode.name}: {text}", reply.payload)
        return reply


class HostClient:
    """Requests a host makes of one connected, bonded device beyond logging: today, writing its patient profile.

    Made by :class:`HostLogger` for each session (:attr:`HostLogger.client` while it streams); its requests
    share the session's control channel, so they interleave safely with the logger's own.

    Parameters
    ----------
    control
        The session's control channel.
    device_id
        The device's id (from its device info), for messages.
    """

    def __init__(self, control: ControlChannel, device_id: str) -> None:
        self.control = control
        self.device_id = device_id

    async def write_profile(self, profile: PatientProfile) -> int:
        """Write ``profile`` to the device, which stores it and applies it at once; return the version applied.

        The device takes a profile only if its version is newer than the one it holds. Writing the version
        it already holds (a retry after a lost reply) returns that version: the call is idempotent.

        Raises
        ------
        StaleProfileError
            If the device holds a newer version (``current_version`` says which); nothing changed.
        forcecast.edge.profile.ProfileError
            If a value cannot be encoded (a limit below the wire's resolution).
        ProtocolError
            If the device refuses it: ``BAD_ARGUMENT`` (a value out of its range, ``reason: message``),
            ``BUSY`` (it could not store it; nothing changed, try again later), ``REFUSED`` (``profiles_off``),
            ``UNKNOWN_OPCODE`` (firmware without profiles).
        TimeoutError, bleak.exc.BleakError
            If no reply comes or the link drops (the profile may or may not have been applied: write it again).
        """
        reply = await self.control.request(Opcode.PROFILE, encode_profile(profile), accept=(Status.STALE,))
        if len(reply.payload) < PROFILE_REPLY.size:
            raise ProtocolError(Status.BAD_LENGTH, f"PROFILE reply of {len(reply.payload)} bytes from {self.device_id}")
        (version,) = PROFILE_REPLY.unpack_from(reply.payload)
        if reply.status is Status.STALE and version != profile.version:
            raise StaleProfileError(profile.version, version)
        log.info("%s: patient profile version %d applied", self.device_id, version)
        return int(version)


class HostLogger:
    """Keep one device's records flowing into a :class:`HostStore`, reconnecting forever.

    Parameters
    ----------
    store
        The host store.
    address
        Only this device (else the first forcecast device found).
    config
        Timeouts, backoff, live stream.
    on_live
        Called for every live GRF block (if ``config.live``).
    on_state
        Called with ``"scanning"``, ``"connecting"``, ``"syncing"``, ``"streaming"``, ``"disconnected"``.
    on_record
        Called with ``(kind, payload)`` for every record once it is stored.
    scanner_backend, client_backend, backend_kwargs
        bleak backends (None = the platform's) and extra keywords for them.
    """

    def __init__(
        self,
        store: HostStore,
        address: str | None = None,
        config: ClientConfig | None = None,
        on_live: LiveCallback | None = None,
        on_state: Callable[[str], None] | None = None,
        on_record: Callable[[str, dict[str, Any]], None] | None = None,
        scanner_backend: type | None = None,
        client_backend: type | None = None,
        backend_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.address = address
        self.config = config or ClientConfig()
        self.on_live = on_live
        self.on_state = on_state
        self.on_record = on_record
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self.backend_kwargs = backend_kwargs or {}
        self.stats = ClientStats()
        self.device_id: str | None = None
        self.device_info: dict[str, Any] = {}
        self.clock_offset_ms: int | None = None
        self.store_id: str | None = None
        self.state = "idle"
        self.client: HostClient | None = None
        """The streaming session's :class:`HostClient` (None between sessions)."""
        self._streaming = asyncio.Event()
        self._stop = asyncio.Event()
        self._streamed = False

    def stop(self) -> None:
        """Ask :meth:`run` to end (it disconnects cleanly)."""
        self._stop.set()

    async def write_profile(self, profile: PatientProfile, wait_s: float = 60.0) -> int:
        """Write ``profile`` to the device in the current session (waiting up to ``wait_s`` for one to stream).

        For the clinic sync (``forcecast host log --clinic``): call it from the loop :meth:`run` runs on.
        See :meth:`HostClient.write_profile` for what it returns and raises.

        Raises
        ------
        TimeoutError
            If no session streams within ``wait_s`` (the device is out of range): try again later.
        """
        async with asyncio.timeout(wait_s):
            while True:
                await self._streaming.wait()
                client = self.client
                if client is not None:
                    break
                await asyncio.sleep(0)
        return await client.write_profile(profile)

    async def run(self) -> None:
        """Sessions until :meth:`stop`: scan, connect, sync, stream; back off and retry on any failure."""
        delay = self.config.backoff_min_s
        while not self._stop.is_set():
            self._streamed = False
            try:
                await self.session()
            except (BleakError, ProtocolError, TimeoutError, OSError, ValueError, KeyError) as exc:
                if isinstance(exc, BleakBluetoothNotAvailableError | FileNotFoundError) and not self.stats.sessions:
                    raise  # no adapter (or no BlueZ) at all: retrying forever would only hide it
                self.stats.failed_attempts += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.info("session ended: %s", self.stats.last_error)
            self._set_state("disconnected")
            delay = self.config.backoff_min_s if self._streamed else min(delay * 2, self.config.backoff_max_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay * random.uniform(0.8, 1.2))

    async def session(self) -> bool:
        """One scan-connect-stream cycle; returns whether it reached streaming (False: nothing found)."""
        self._set_state("scanning")
        device = await find_device(self.address, self.config, self.scanner_backend, self.backend_kwargs)
        if device is None or self._stop.is_set():
            return False
        self._set_state("connecting")
        async with connect(device, self.config, self.client_backend, self.backend_kwargs) as (client, lost):
            self.stats.sessions += 1
            try:
                return await self._stream(client, device, lost)
            finally:
                if lost.is_set():
                    self.stats.disconnects += 1

    async def _stream(self, client: BleakClient, device: BLEDevice, lost: asyncio.Event) -> bool:
        self._set_state("syncing")
        info = json.loads(bytes(await client.read_gatt_char(INFO_UUID)))
        device_id = str(info["device_id"])
        self.device_id, self.device_info = device_id, info
        control = ControlChannel(client, self.stats, self.config.request_timeout_s, lost)
        assembler = RecordAssembler()
        inbox: list[tuple[str, int, dict[str, Any]]] = []
        first_after: dict[str, int] = {}

        def on_fragment(_characteristic: Any, data: bytearray) -> None:
            record = assembler.feed(bytes(data))
            if record is not None:
                kind, seq, payload = record
                if seq < 1:  # no store assigns 0; storing it would fail the whole batch, every session
                    self.stats.reject("record_BAD_SEQ")
                    return
                inbox.append((kind.label, seq, payload))

        await client.start_notify(CONTROL_UUID, control.on_notify)
        await client.start_notify(RECORDS_UUID, on_fragment)
        if self.config.live:
            await client.start_notify(LIVE_UUID, self._on_live)
        host_ms = round(time.time() * 1000)
        sync = await control.request(Opcode.TIME_SYNC, host_ms)
        device_ms = int.from_bytes(sync.payload[:8], "little")
        self.clock_offset_ms = host_ms - device_ms
        store_id = await self._store_id(control, device_id)
        self.store_id = store_id
        self.store.note_device(device_id, device.address, info, self.clock_offset_ms, _utc_now(), store_id=store_id)
        for kind in RecordKind:
            name = kind.label
            after = self.store.resume_point(device_id, name, store_id)
            status = (await control.request(Opcode.STATUS, kind)).payload
            if len(status) < STATUS_REPLY.size:
                raise ProtocolError(Status.BAD_LENGTH, f"STATUS reply of {len(status)} bytes")
            last, _acked, _stored, _live = STATUS_REPLY.unpack_from(status)
            if last < after:
                log.warning(
                    "%s: store %s's last %s is %d, host holds up to %d (store restored from an old copy?)",
                    device_id,
                    store_id or "(no id)",
                    name,
                    last,
                    after,
                )
            first_after[name] = after
            await control.request(Opcode.RESUME, kind, after)
        if self.config.live:
            await control.request(Opcode.LIVE, 1)
        self._set_state("streaming")
        self._streamed = True
        acked = dict(first_after)
        self.client = HostClient(control, device_id)
        self._streaming.set()
        try:
            while not lost.is_set() and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.config.ack_period_s)
                batch, inbox[:] = list(inbox), []
                self._commit(device_id, store_id, batch, first_after, assembler)
                if not lost.is_set():
                    await self._acknowledge(control, device_id, store_id, acked)
        finally:
            self._streaming.clear()
            self.client = None
            self._commit(device_id, store_id, list(inbox), first_after, assembler)
            inbox.clear()
            self._merge_rejections(assembler)
        return True

    async def _store_id(self, control: ControlChannel, device_id: str) -> str:
        """The device's current store id (``""`` for firmware without STORE_ID); notes a replaced store."""
        try:
            reply = (await control.request(Opcode.STORE_ID)).payload
        except ProtocolError as exc:
            if exc.status is Status.UNKNOWN_OPCODE:
                return ""  # older firmware: one store, no id
            raise
        if len(reply) < STORE_ID_REPLY.size:
            raise ProtocolError(Status.BAD_LENGTH, f"STORE_ID reply of {len(reply)} bytes")
        number, flags = STORE_ID_REPLY.unpack_from(reply)
        store_id = f"{number:016x}"
        previous = self.store.current_store(device_id)
        if previous != store_id:
            if previous == "" and flags & STORE_FLAG_UPGRADED:
                moved = self.store.adopt_legacy(device_id, store_id)
                log.info(
                    "%s: store given id %s on a firmware upgrade; %d records kept under it", device_id, store_id, moved
                )
            elif any(d["device_id"] == device_id for d in self.store.devices()):
                self.stats.store_changes += 1
                log.warning(
                    "%s: device store replaced (%s -> %s): fetching it from its start",
                    device_id,
                    previous or "(no id)",
                    store_id,
                )
        return store_id

    def _commit(
        self,
        device_id: str,
        store_id: str,
        batch: list[tuple[str, int, dict[str, Any]]],
        first_after: dict[str, int],
        assembler: RecordAssembler,
    ) -> None:
        if not batch:
            return
        # The device sends each kind in seq order from the resume point; if its first record skips
        # seqs, the device no longer has them (its size cap dropped them) and they are settled.
        clean = not assembler.rejected and not assembler.abandoned
        for kind, seq, _ in batch:
            after = first_after.pop(kind, None)
            if after is not None and clean and seq > after + 1:
                self.stats.device_gaps += seq - after - 1
                self.store.settle(device_id, kind, seq - 1, store_id)
        readable = self._readable(device_id, batch)
        accepted = [(kind, seq, payload) for kind, seq, payload, _ in readable]
        new = self.store.add_many(
            device_id, accepted, _utc_now(), (self.clock_offset_ms or 0) / 1000.0, store_id=store_id
        )
        for _, _, _, record in readable:  # a record the device quarantined: a gap, not something to wait for
            if isinstance(record, EventRecord) and record.event is EventType.RECORD_QUARANTINED:
                gone_kind, gone_seq = record.record_kind, record.seq
                if gone_kind in KIND_LABELS and gone_seq is not None and gone_seq >= 1:
                    reason = (record.reason or "")[:300]
                    if self.store.mark_gap(device_id, gone_kind, gone_seq, reason, _utc_now(), store_id):
                        self.stats.quarantined_gaps += 1
                        log.warning("%s: device quarantined %s record %d: %s", device_id, gone_kind, gone_seq, reason)
        self.stats.records_received += len(batch)
        self.stats.records_stored += new
        self.stats.duplicates_received += len(accepted) - new
        if self.on_record is not None:
            for kind, _, payload in accepted:
                self.on_record(kind, payload)

    def _readable(
        self, device_id: str, batch: list[tuple[str, int, dict[str, Any]]]
    ) -> list[tuple[str, int, dict[str, Any], Record | None]]:
        """The batch's records with their typed reading; records of a newer version are refused (and counted).

        A record that does not decode for another reason is kept (``None`` as its reading) and counted in
        ``stats.unreadable``: storing it loses nothing, refusing it would stall the queue behind it forever.
        """
        out: list[tuple[str, int, dict[str, Any], Record | None]] = []
        for kind, seq, payload in batch:
            try:
                record: Record | None = decode(kind, payload)
            except RecordError as exc:
                if exc.reason == "newer_version":
                    self.stats.reject("record_NEWER_VERSION")
                    log.warning("%s: %s record %d refused: %s", device_id, kind, seq, exc)
                    continue
                self.stats.unreadable[exc.reason] = self.stats.unreadable.get(exc.reason, 0) + 1
                log.warning("%s: %s record %d stored as it came, unreadable: %s", device_id, kind, seq, exc)
                record = None
            out.append((kind, seq, payload, record))
        return out

    async def _acknowledge(self, control: ControlChannel, device_id: str, store_id: str, acked: dict[str, int]) -> None:
        for kind in RecordKind:
            name = kind.label
            upto = self.store.resume_point(device_id, name, store_id)
            if upto > acked[name]:
                try:
                    await control.request(Opcode.ACK, kind, upto)
                except ProtocolError as exc:
                    if exc.status is not Status.BUSY:
                        raise
                    self.stats.acks_refused += 1  # e.g. the device's disk is full: acknowledged again next time
                    continue
                acked[name] = upto
                self.stats.acks += 1

    def _on_live(self, _characteristic: Any, data: bytearray) -> None:
        received = time.time()
        try:
            block = decode_live(bytes(data))
        except ProtocolError as exc:
            self.stats.reject(f"live_{exc.status.name}")
            return
        self.stats.live_blocks += 1
        if self.on_live is not None:
            self.on_live(block, received)

    def _merge_rejections(self, assembler: RecordAssembler) -> None:
        for reason, count in assembler.rejected.items():
            self.stats.rejected[f"record_{reason}"] = self.stats.rejected.get(f"record_{reason}", 0) + count
        self.stats.abandoned_fragments += assembler.abandoned

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(state)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
