"""A bleak backend that drives a bumble central: the host app's own code, unchanged, over an in-process link.

The host app talks to devices only through bleak's public API (``BleakScanner``, ``BleakClient``).
In production bleak picks the platform backend (BlueZ, CoreBluetooth, WinRT). In tests and in
``forcecast demo`` the same calls get ``backend=BumbleClient`` / ``backend=BumbleScanner`` and run
against a bumble ``Device`` acting as central on bumble's ``LocalLink``, where the forcecast GATT
server (:mod:`forcecast.edge.ble.server`) runs too. The backend behaves like an operating system would:
after connecting it exchanges the MTU and re-encrypts a bonded peer; ``pair()`` runs LE Secure
Connections and keeps the bond in the central's keystore.

The central comes from ``BLEDevice.details`` (when the device was found by :class:`BumbleScanner`),
a ``bumble_central=`` keyword (bleak passes unknown keywords on to the backend), or
:func:`use_central`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.att import ATT_Error
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.keys import PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

from forcecast.edge.ble.uncancelled import finish_within
from forcecast.edge.protocol import payload_size

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_MTU = 517
"""MTU requested right after connecting, as BlueZ, CoreBluetooth and Android do."""
_state: dict[str, Device | None] = {"central": None}
_connect_locks: dict[int, asyncio.Lock] = {}


def use_central(device: Device | None) -> None:
    """Make ``device`` the central every backend instance uses unless told otherwise."""
    _state["central"] = device


class AutoConfirm(PairingDelegate):
    """The host's side of pairing: a laptop with a screen and a yes/no answer, confirming for the user."""

    def __init__(self) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_AND_YES_NO_INPUT)


def prepare_central(device: Device) -> Device:
    """Give a bumble device the pairing behaviour of a host computer (bonding, LE Secure Connections)."""
    device.pairing_config_factory = lambda _connection: PairingConfig(
        sc=True,
        mitm=True,
        bonding=True,
        delegate=AutoConfirm(),
        identity_address_type=PairingConfig.AddressType.RANDOM,
    )
    return device


@dataclass(frozen=True)
class BumbleDetails:
    """``BLEDevice.details`` of a device seen by :class:`BumbleScanner`."""

    central: Device
    address: hci.Address


def _central(kwargs: dict[str, Any], details: Any = None) -> Device:
    central = kwargs.pop("bumble_central", None)
    if central is None and isinstance(details, BumbleDetails):
        central = details.central
    central = central or _state["central"]
    if central is None:
        raise BleakError(
            "no bumble central: pass bumble_central= or call forcecast.host_app.bleak_bumble.use_central()"
        )
    return central


def uuid_str(value: core.UUID) -> str:
    """A bumble UUID in bleak's form (128-bit, lower case, dashed)."""
    return str(uuid.UUID(bytes=bytes(reversed(value.uuid_128_bytes))))


def _service_uuids(data: AdvertisingData) -> list[core.UUID]:
    """The 16- and 128-bit service UUIDs an advertisement lists, complete lists or not."""
    kinds = AdvertisingData.Type
    return [
        *(data.get(kinds.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS) or []),
        *(data.get(kinds.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS) or []),
        *(data.get(kinds.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []),
        *(data.get(kinds.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []),
    ]


class BumbleScanner(BaseBleakScanner):
    """Scanner backend: advertisements received by the bumble central."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        kwargs.pop("bluez", None)
        kwargs.pop("cb", None)
        self._central = _central(kwargs)
        self._active = scanning_mode != "passive"

    async def start(self) -> None:
        """Start scanning (clears what was seen before)."""
        self.seen_devices = {}
        self._central.on(self._central.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._central.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        """Stop scanning."""
        self._central.remove_listener(self._central.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self._central.is_scanning:
            await self._central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        uuids = [uuid_str(u) for u in _service_uuids(data)]
        if not self.is_allowed_uuid(uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
        advertised = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=data.get(AdvertisingData.TX_POWER_LEVEL),
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        address = str(advertisement.address)
        device = self.create_or_update_device(
            address, address, name, BumbleDetails(self._central, advertisement.address), advertised
        )
        self.call_detection_callbacks(device, advertised)


class BumbleClient(BaseBleakClient):
    """Client backend: one connection of the bumble central.

    Extra keywords (through ``BleakClient(..., **kwargs)``): ``bumble_central`` and ``mtu``.
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        mtu: int = DEFAULT_MTU,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        kwargs.pop("bluez", None)
        kwargs.pop("winrt", None)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._central = _central(kwargs, details)
        self._peer_address = details.address if isinstance(details, BumbleDetails) else hci.Address(self.address)
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._service_filter = services
        self._mtu = mtu
        self._connection: Connection | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._gone: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def name(self) -> str:
        """The advertised name, else the address."""
        return self._name or self.address

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU."""
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up."""
        connection = self._connection
        return connection is not None and self._central.connections.get(connection.handle) is connection

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU, pair or re-encrypt a bond, and discover the services."""
        lock = _connect_locks.setdefault(id(self._central), asyncio.Lock())
        async with lock:  # bumble allows one pending LE connection per central
            try:
                connection = await self._central.connect(self._peer_address, timeout=self._timeout)
            except core.TimeoutError as exc:
                raise BleakDeviceNotFoundError(self.address, f"{self.address}: connection timed out") from exc
            except (core.ConnectionError, hci.HCI_Error) as exc:
                raise BleakError(f"{self.address}: connection failed: {exc}") from exc
        self._connection = connection
        self._gone = asyncio.get_running_loop().create_future()
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            await self._gatt(Peer(connection).request_mtu(self._mtu))
            if pair:
                await self.pair()
            elif await self._bond() is not None:
                await self._gatt(connection.encrypt())  # what an OS does for a bonded peer
            await self._discover(connection)
        except BaseException:
            await self.disconnect()
            raise

    async def disconnect(self) -> None:
        """Disconnect (returns once the link is down)."""
        connection = self._connection
        if connection is None or not self.is_connected:
            return
        gone = asyncio.get_running_loop().create_future()
        connection.once(connection.EVENT_DISCONNECTION, lambda *_: None if gone.done() else gone.set_result(None))
        try:
            if await finish_within(connection.disconnect(), self._timeout, self._background) and self.is_connected:
                await asyncio.wait({gone}, timeout=self._timeout)
        except core.BaseBumbleError:
            pass  # gone already, or the controller will drop it

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Encrypt with the stored bond, or pair and bond (LE Secure Connections)."""
        connection = self._require()
        if connection.is_encrypted:
            return
        if await self._bond() is not None:
            await self._gatt(connection.encrypt())
        else:
            await self._gatt(connection.pair())

    async def unpair(self) -> None:
        """Forget the bond and disconnect."""
        keystore = self._central.keystore
        if keystore is not None and await self._bond() is not None:
            await keystore.delete(str(self._peer_address))
        await self.disconnect()

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a characteristic (long values included)."""
        return bytearray(await self._gatt(characteristic.obj.read_value()))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a descriptor."""
        return bytearray(await self._gatt(descriptor.obj.read_value()))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        """Write a characteristic, with or without response."""
        await self._gatt(characteristic.obj.write_value(bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        """Write a descriptor."""
        await self._gatt(descriptor.obj.write_value(bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe to notifications."""

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        await self._gatt(characteristic.obj.subscribe(deliver, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        deliver = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(characteristic.obj.unsubscribe(deliver))

    async def _discover(self, connection: Connection) -> None:
        peer = Peer(connection)
        wanted = [core.UUID(u) for u in self._service_filter] if self._service_filter else []
        collection = BleakGATTServiceCollection()
        for service in await self._gatt(peer.discover_services(wanted)):
            await self._gatt(service.discover_characteristics())
            bleak_service = BleakGATTService(service, service.handle, uuid_str(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                await self._gatt(characteristic.discover_descriptors())
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    uuid_str(characteristic.uuid),
                    list(gatt_char_props_to_strs(int(characteristic.properties))),
                    lambda: payload_size(connection.att_mtu),
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, uuid_str(descriptor.type), bleak_characteristic
                        )
                    )
        self.services = collection

    def _on_disconnection(self, _reason: int) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        self._subscribers.clear()
        self.services = None
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def _bond(self) -> PairingKeys | None:
        keystore = self._central.keystore
        return await keystore.get(str(self._peer_address)) if keystore is not None else None

    def _require(self) -> Connection:
        if self._connection is None or not self.is_connected:
            raise BleakError("Not connected")
        return self._connection

    async def _gatt(self, operation: Awaitable[T]) -> T:
        """Run a bumble operation until it ends, the link drops or the timeout passes; errors become bleak's.

        bumble waits without a deadline for some answers (encryption, for one) and does not always wake
        the waiter when the link drops, so every operation races the disconnection and a timeout.
        """
        task = asyncio.ensure_future(operation)
        try:
            self._require()
            gone = self._gone
            assert gone is not None  # set by connect()
            racing: set[asyncio.Future[Any]] = {task, gone}
            await asyncio.wait(racing, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            if gone.done():
                raise BleakError(f"{self.address}: disconnected during a GATT operation")
            raise BleakError(f"{self.address}: no answer within {self._timeout:g} s")
        except ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except asyncio.CancelledError:
            # bumble cancels a pending request when the link drops; a real cancellation is re-raised
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise BleakError(f"{self.address}: disconnected during a GATT operation") from None
        except core.BaseBumbleError as exc:
            raise BleakError(f"{self.address}: {type(exc).__name__}: {exc}") from exc
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
