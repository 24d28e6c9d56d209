"""Waiting on, and syncing over, the in-process virtual BLE link: shared by the link and record tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from forcecast.edge.link import DeviceLink
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.client import ClientConfig, HostLogger
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import virtual_link

QUICK = ClientConfig(scan_timeout_s=2.0, connect_timeout_s=3.0, backoff_min_s=0.05, backoff_max_s=0.2, ack_period_s=0.1)
"""A host client that gives up, backs off and acknowledges in fractions of a second."""
POLL_S = 0.02


async def until(condition: Callable[[], object], timeout_s: float = 30.0) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout_s`` seconds of polling."""
    for _ in range(int(timeout_s / POLL_S)):
        if condition():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError("condition not met in time")


async def sync(
    store: RecordStore, host: HostStore, done: Callable[[], object], device_id: str, timeout_s: float = 30.0
) -> HostLogger:
    """Run the host client against the device ``store`` (as ``device_id``) until ``done()`` holds.

    Returns the stopped logger (its stats tell what the session did).
    """
    async with virtual_link(DeviceLink(store, {"device_id": device_id})) as link:
        logger = link.logger(host, QUICK)
        task = asyncio.create_task(logger.run())
        try:
            await until(done, timeout_s)
        finally:
            logger.stop()
            await task
    return logger
