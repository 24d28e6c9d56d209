"""An in-process BLE link: the device's GATT server and a host central on bumble's ``LocalLink``.

Used by ``forcecast demo``, the link benchmark and the tests: the device side is the real
:class:`forcecast.edge.ble.server.GattServer` and the host side the real :class:`forcecast.host_app.client.HostLogger`,
talking through two virtual controllers (pairing, encryption, MTU exchange and all), with the
host's bleak calls going through :mod:`forcecast.host_app.bleak_bumble`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bumble.device import Device
from bumble.link import LocalLink

from forcecast.edge.ble.devices import static_address, virtual_device
from forcecast.edge.ble.server import GattServer
from forcecast.edge.link import DeviceLink
from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner, prepare_central
from forcecast.host_app.client import ClientConfig, HostLogger, LiveCallback
from forcecast.host_app.store import HostStore

CENTRAL_ADDRESS = "C1:F0:CA:57:00:01"


@dataclass
class VirtualLink:
    """Both ends of the in-process link."""

    link: LocalLink
    server: GattServer
    central: Device

    @property
    def backend_kwargs(self) -> dict[str, Any]:
        """Keywords that route bleak calls to this link's central."""
        return {"bumble_central": self.central}

    def logger(
        self, store: HostStore, config: ClientConfig | None = None, on_live: LiveCallback | None = None
    ) -> HostLogger:
        """A host client on this link (same code as over a real radio; only the bleak backend differs)."""
        return HostLogger(
            store,
            config=config,
            on_live=on_live,
            scanner_backend=BumbleScanner,
            client_backend=BumbleClient,
            backend_kwargs=self.backend_kwargs,
        )


@asynccontextmanager
async def virtual_link(
    device_link: DeviceLink | Callable[[Device], GattServer],
    name: str = "fcast",
    output_rate_hz: float = 100.0,
    pairing_window_s: float = float("inf"),
) -> AsyncIterator[VirtualLink]:
    """Start a GATT server and a powered-on central on one ``LocalLink``.

    Parameters
    ----------
    device_link
        The device's session logic, or a function building the whole server on a given bumble device
        (e.g. ``lambda device: forcecast.edge.ble.serve.gatt_server(runtime, device)``).
    name, output_rate_hz
        Server settings when ``device_link`` is a :class:`DeviceLink`.
    pairing_window_s
        The pairing window is opened for this long once the server runs, as ``forcecast edge pair`` (the
        local action) opens it on a device; ``inf`` = for the whole session, ``0`` = never.
    """
    link = LocalLink()
    if isinstance(device_link, DeviceLink):
        info = json.loads(device_link.device_info())
        device = virtual_device(link, name, static_address(str(info.get("device_id", name))))
        server = GattServer(device, device_link, name, pairing_window_s=pairing_window_s, output_rate_hz=output_rate_hz)
    else:
        device = virtual_device(link, name, static_address(name))
        server = device_link(device)
    central = prepare_central(virtual_device(link, "host", CENTRAL_ADDRESS))
    await server.start()
    server.open_pairing(pairing_window_s)
    await central.power_on()
    try:
        yield VirtualLink(link, server, central)
    finally:
        await server.stop()
        await central.power_off()
        await device.power_off()
