"""The forcecast GATT server on bumble: moves bytes between the radio and a :class:`~forcecast.edge.link.DeviceLink`.

One custom 128-bit service (``forcecast.edge.protocol.SERVICE_UUID``) with four characteristics:

- live (notify): live GRF blocks, while the host has asked for them;
- records (notify): step/summary/event record fragments from where the host resumed;
- control (write + notify): requests and their replies. The attribute needs an encrypted link
  (ATT error 0x0F otherwise) and :class:`GattServer` additionally requires the peer to be bonded.
  New bonds only while the pairing window is open, which only a local action opens
  (:mod:`forcecast.edge.ble.pairing`: ``forcecast edge pair`` over the service's Unix socket);
- info (read, encrypted): a JSON object describing the device and its model;
- upload (write without response + notify, encrypted and bonded): model package chunks in,
  durable acknowledgements out (see :mod:`forcecast.edge.upload`).

The same class runs on the Pi (a bumble ``Device`` on the HCI socket) and in tests and the demo (a
``Device`` on bumble's in-process ``LocalLink``, see :mod:`forcecast.edge.ble.virtual`). The runtime runs in
its own thread and talks to the server only through :meth:`GattServer.listener`, which is
thread-safe; everything else runs on the server's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
from bumble import data_types
from bumble.core import UUID, AdvertisingData, BaseBumbleError
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.pairing import PairingConfig, PairingDelegate

from forcecast.edge.ble.pairing import PairingControl, PairingError, PairingWindow
from forcecast.edge.ble.uncancelled import finish_within
from forcecast.edge.link import DeviceLink
from forcecast.edge.protocol import CONTROL_UUID, INFO_UUID, LIVE_UUID, RECORDS_UUID, SERVICE_UUID, UPLOAD_UUID

log = logging.getLogger(__name__)

ADVERTISING_INTERVAL_MS = 100
MAX_ACL_BACKLOG = 48
"""Record fragments wait while this many ACL packets are queued, so live blocks never queue behind a backlog."""
IDLE_POLL_S = 0.05
DISCONNECT_TIMEOUT_S = 2.0
DISCOVERABLE_LE_ONLY = AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG
BUSY_POLL_S = 0.005


def pairing_config(delegate: PairingDelegate) -> PairingConfig:
    """LE Secure Connections with bonding; the identity is the static random address both sides use."""
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=delegate,
        identity_address_type=PairingConfig.AddressType.RANDOM,
    )


class GattServer:
    """Serve one :class:`DeviceLink` on a bumble device.

    Parameters
    ----------
    device
        A bumble ``Device`` (not yet powered on) with a keystore.
    link
        The session logic.
    name
        Advertised name (at most 8 bytes).
    pairing_window_s
        How long new hosts may pair after the local action opens the window (:meth:`open_pairing`). The
        window is closed when the server is built: a restart never opens it.
    pairing_socket
        Where the running server takes the local action (``forcecast edge pair``); None = no socket (the
        window then opens only through :meth:`open_pairing` in this process).
    output_rate_hz
        Rate of the model's GRF output (the contract's rate): the live blocks' sample period.
    """

    def __init__(
        self,
        device: Device,
        link: DeviceLink,
        name: str,
        pairing_window_s: float = 120.0,
        output_rate_hz: float = 100.0,
        pairing_socket: Path | None = None,
    ) -> None:
        if not 1 <= len(name.encode()) <= 8:
            raise ValueError(f"advertised name must be 1..8 bytes, got {name!r}")
        self.device = device
        self.link = link
        self.name = name
        self.period_s = 1.0 / output_rate_hz
        self.window = PairingWindow(pairing_window_s)
        self.pairing_control = PairingControl(pairing_socket, self.window) if pairing_socket is not None else None
        self.connection: Connection | None = None
        self.connections = 0
        self._bonded: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self._replies: list[asyncio.Task[bool]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._blocks: dict[str, int] = {}
        properties, permissions = Characteristic.Properties, Characteristic.Permissions
        self.live = Characteristic(LIVE_UUID, properties.NOTIFY, permissions.READABLE, b"")
        self.records = Characteristic(RECORDS_UUID, properties.NOTIFY, permissions.READABLE, b"")
        self.control: Characteristic[bytes] = Characteristic(
            CONTROL_UUID,
            properties.WRITE | properties.NOTIFY,
            permissions.WRITEABLE | permissions.WRITE_REQUIRES_ENCRYPTION,
            CharacteristicValue(write=self._on_control_write),
        )
        self.info: Characteristic[bytes] = Characteristic(
            INFO_UUID,
            properties.READ,
            permissions.READABLE | permissions.READ_REQUIRES_ENCRYPTION,
            CharacteristicValue(read=lambda _connection: self.link.device_info()),
        )
        self.upload: Characteristic[bytes] = Characteristic(
            UPLOAD_UUID,
            properties.WRITE_WITHOUT_RESPONSE | properties.NOTIFY,
            permissions.WRITEABLE | permissions.WRITE_REQUIRES_ENCRYPTION,
            CharacteristicValue(write=self._on_upload_write),
        )
        self._uploads: asyncio.Queue[tuple[Connection, bytes]] | None = None
        self._upload_worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Power the device on, publish the service and advertise."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        window = self.window
        self.device.pairing_config_factory = lambda _connection: pairing_config(window)
        self.device.add_service(Service(SERVICE_UUID, [self.live, self.records, self.control, self.info, self.upload]))
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        await self.device.start_advertising(
            advertising_data=advertisement(self.name),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
            auto_restart=True,
        )
        self._pump = asyncio.create_task(self._pump_forever(), name="forcecast-ble-pump")
        self._uploads = asyncio.Queue()
        self._upload_worker = asyncio.create_task(self._take_uploads(), name="forcecast-ble-upload")
        if self.pairing_control is not None:
            try:
                await self.pairing_control.start()
            except PairingError as exc:  # fail closed: bonded hosts still connect, new ones cannot pair
                log.error("%s; new hosts cannot pair until this is fixed (bonded hosts still connect)", exc)
                self.pairing_control = None

    def open_pairing(self, seconds: float | None = None) -> float:
        """The local action: let new hosts pair for ``seconds`` (default ``pairing_window_s``) from now.

        ``forcecast edge pair`` reaches this through the pairing socket; in-process links (tests, the demo)
        call it directly. Returns how long the window stays open.
        """
        return self.window.open(seconds)

    async def stop(self) -> None:
        """Stop advertising, drop the host and stop pumping."""
        if self.pairing_control is not None:
            await self.pairing_control.stop()
        tasks = [t for t in (self._pump, self._upload_worker) if t is not None]
        self._pump = self._upload_worker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._replies, return_exceptions=True)
        await self.disconnect()
        await self.device.stop_advertising()

    async def disconnect(self) -> bool:
        """Drop the current host, if any (the host reconnects on its own); True if one was connected."""
        connection = self.connection
        if connection is None or not self._alive(connection):
            return False
        try:
            if await finish_within(connection.disconnect(), DISCONNECT_TIMEOUT_S, self._background):
                return True
            log.warning(
                "disconnecting the host takes longer than %g s; it goes on in the background", DISCONNECT_TIMEOUT_S
            )
        except BaseBumbleError as exc:
            log.warning("disconnecting the host failed (%s); the link supervision timeout will end it", exc)
        return False

    def listener(self, kind: str, payload: dict[str, Any]) -> None:
        """Runtime listener (any thread): live GRF goes to the link's live queue, records wake the pump."""
        if kind == "grf":
            leg = payload["leg"]
            time_s = np.asarray(payload["time_s"])
            if time_s.size == 0:
                return
            block = self._blocks.get(leg, 0)
            self._blocks[leg] = block + time_s.size
            self.link.on_grf(leg, time_s, np.asarray(payload["grf_bw"]), self.period_s, block)
            if not self.link.live:
                return
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def stats(self) -> dict[str, Any]:
        """Counters for logs and benchmarks."""
        return {
            "connections": self.connections,
            "connected": self.connection is not None and self._alive(self.connection),
            "records_sent": self.link.records_sent,
            "live_dropped": self.link.live_dropped,
            "rejected": dict(self.link.rejected),
            "pairing_refused": self.window.refused,
            "pairing_accepted": self.window.accepted,
        }

    # ------------------------------------------------------------------ connection state

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self.connections += 1
        self.link.disconnected()
        self.link.connected(connection.att_mtu, encrypted=False)
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection(connection))
        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, lambda: self._security_changed(connection))
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, lambda: self._security_changed(connection))
        connection.on(connection.EVENT_PAIRING, lambda _keys: self._security_changed(connection))

    def _on_disconnection(self, connection: Connection) -> None:
        self._bonded.discard(id(connection))
        if self.connection is connection:
            self.connection = None
            self.link.disconnected()

    def _security_changed(self, connection: Connection) -> None:
        if self.connection is connection:
            asyncio.get_running_loop().create_task(self._refresh(connection))

    async def _refresh(self, connection: Connection) -> bool:
        """Tell the link the MTU and whether this host is encrypted *and* bonded; return the latter."""
        secure = bool(connection.is_encrypted) and await self._is_bonded(connection)
        if self.connection is connection:
            self.link.connected(connection.att_mtu, secure)
        return secure

    async def _is_bonded(self, connection: Connection) -> bool:
        if id(connection) in self._bonded:
            return True
        keystore = self.device.keystore
        if keystore is None or await keystore.get(str(connection.peer_address)) is None:
            return False
        self._bonded.add(id(connection))
        return True

    def _alive(self, connection: Connection) -> bool:
        # bumble reuses connection handles; a stale Connection must never send on its successor.
        return self.device.connections.get(connection.handle) is connection

    # ------------------------------------------------------------------ control point

    async def _on_control_write(self, connection: Connection, value: bytes) -> None:
        if self.connection is not connection:
            log.debug("control write arrived after its connection ended; ignored")
            return
        await self._refresh(connection)
        # In a thread: a model commit verifies and self-tests for seconds; the radio keeps going meanwhile.
        reply = await asyncio.to_thread(self.link.handle_control, bytes(value))
        # Answer after the ATT write response has gone out, in the order requests came.
        task = asyncio.get_running_loop().create_task(self._send(connection, self.control, reply))
        self._replies = [t for t in self._replies if not t.done()] + [task]
        if self._wake is not None:
            self._wake.set()

    async def _on_upload_write(self, connection: Connection, value: bytes) -> None:
        # Writes without response each run in a task of their own; the queue keeps them in order.
        if self._uploads is not None and self.connection is connection:
            self._uploads.put_nowait((connection, bytes(value)))

    async def _take_uploads(self) -> None:
        assert self._uploads is not None
        while True:
            connection, value = await self._uploads.get()
            if not self._alive(connection) or self.connection is not connection:
                continue
            if not self.link.encrypted:
                await self._refresh(connection)
            ack = await asyncio.to_thread(self.link.handle_upload, value)  # a durable ack means an fsync
            if ack is not None:
                await self._send(connection, self.upload, ack)

    async def _send(self, connection: Connection, characteristic: Characteristic[bytes], value: bytes) -> bool:
        if not self._alive(connection):
            return False
        await self.device.notify_subscriber(connection, characteristic, value)
        return True

    # ------------------------------------------------------------------ notifications

    async def _pump_forever(self) -> None:
        assert self._wake is not None
        timeout = IDLE_POLL_S
        while self._pump is not None:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
            # arrives as the wait ends, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            connection = self.connection
            timeout = IDLE_POLL_S
            if connection is None or not self._alive(connection):
                continue
            try:
                busy = await self._pump_once(connection)
            except Exception:  # the link must survive a bad record or a stack hiccup; the host resumes
                log.exception("BLE notification pump failed; dropping the connection")
                await self.disconnect()
                busy = False
            timeout = BUSY_POLL_S if busy else IDLE_POLL_S

    async def _pump_once(self, connection: Connection) -> bool:
        """Send what is waiting; return True if more is waiting behind the radio's backlog."""
        while self._alive(connection):
            for packet in self.link.next_live_packets():
                await self._send(connection, self.live, packet)
            if self._acl_backlog() >= MAX_ACL_BACKLOG:
                return True
            packets = self.link.next_record_packets(limit=16)
            if not packets:
                return False
            for packet in packets:
                if not await self._send(connection, self.records, packet):
                    return False
        return False

    def _acl_backlog(self) -> int:
        queue = self.device.host.le_acl_packet_queue or self.device.host.acl_packet_queue
        return queue.pending if queue is not None else 0


def advertisement(name: str) -> bytes:
    """Flags, the service UUID and the name: 21 + up to 10 bytes of the 31 a legacy advertisement holds."""
    return bytes(
        AdvertisingData(
            [
                data_types.Flags(DISCOVERABLE_LE_ONLY),
                data_types.CompleteListOf128BitServiceUUIDs([UUID(SERVICE_UUID)]),
                data_types.CompleteLocalName(name),
            ]
        )
    )
