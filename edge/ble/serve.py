"""Run the edge runtime with its BLE server: the pipeline in a worker thread, the GATT server on asyncio."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any, TextIO

from bumble.device import Device

from forcecast.edge.ble.devices import radio_device, static_address
from forcecast.edge.ble.server import GattServer
from forcecast.edge.link import DeviceLink

if TYPE_CHECKING:
    from forcecast.edge.runtime.launch import Runtime


def gatt_server(runtime: Runtime, device: Device) -> GattServer:
    """A GATT server for ``runtime`` on ``device``, registered as a runtime listener (not started)."""
    ble = runtime.config.ble
    server = GattServer(
        device,
        DeviceLink(runtime.store, runtime.info, updates=runtime.updates, profiles=runtime.profiles),
        ble.name,
        pairing_window_s=ble.pairing_window_s,
        output_rate_hz=runtime.contract.rate_hz,
        pairing_socket=ble.pairing_socket,
    )
    runtime.pipeline.listeners.append(server.listener)
    return server


async def run_with_server(runtime: Runtime, server: GattServer, duration_s: float | None) -> dict[str, Any]:
    """Start ``server``, run the pipeline in a worker thread until it ends, stop the server."""
    await server.start()
    try:
        report = await asyncio.to_thread(runtime.run, duration_s)
    finally:
        await server.stop()
    return report | {"ble": server.stats()}


async def serve_radio(runtime: Runtime, duration_s: float | None, log: TextIO | None) -> dict[str, Any]:
    """Serve on the radio named in ``[ble]`` (``hci-socket:0`` on the Pi); SIGTERM/SIGINT end the run cleanly."""
    ble = runtime.config.ble
    address = ble.address or static_address(runtime.config.device_id)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runtime.source.close)
    try:
        async with radio_device(ble.transport, ble.name, address, ble.keystore) as device:
            server = gatt_server(runtime, device)
            if log is not None:
                print(
                    f"BLE: advertising as {ble.name!r} ({address}) on {ble.transport}; pairing closed: "
                    f"`sudo forcecast edge pair` opens it for {ble.pairing_window_s:g} s (socket {ble.pairing_socket})",
                    file=log,
                )
            return await run_with_server(runtime, server, duration_s)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
