"""The live view in a real browser (Debian's Chromium under WebDriver), fed by the simulated device.

The device side is the real runtime running the test model on the synthetic walker in real time, its
records and live GRF going over the in-process BLE link to the host client, as ``forcecast host live
--virtual`` runs them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import pytest
from packages import INT8, TEST_PUBKEY
from selenium.webdriver.common.by import By
from webdriver import chromium_session, save_screenshot, wait_for

from forcecast.host_app.client import ClientConfig
from forcecast.host_app.live import LiveView
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_device import VirtualDeviceConfig, virtual_device

logging.getLogger("bumble").setLevel(logging.ERROR)
LIMIT_BW = 1.05


@contextmanager
def virtual_live_view(folder: Path, limit_bw: float = LIMIT_BW) -> Iterator[str]:
    """Serve the live page for a simulated device (in a thread with its own event loop); yields the page's URL."""
    ready = threading.Event()
    found: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        host = HostStore(folder / "host.sqlite")
        config = VirtualDeviceConfig(INT8, TEST_PUBKEY, folder / "device", limit_bw=limit_bw, affected_side="left")
        try:
            client = ClientConfig(scan_timeout_s=2.0, ack_period_s=0.2, live=True)
            async with virtual_device(config, host, client) as device:
                view = LiveView(device.logger, host, UTC, device.context)
                await view.start(0)
                task = asyncio.create_task(device.logger.run())
                found["url"] = view.url
                ready.set()
                await stop.wait()
                device.logger.stop()
                await task
                await view.stop()
        except BaseException as exc:
            found["error"] = exc
            raise
        finally:
            ready.set()
            host.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(120), "the simulated device did not start in 120 s"
    if "error" in found:
        raise AssertionError(f"the simulated device failed: {found['error']!r}")
    try:
        yield str(found["url"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


def test_the_live_page_shows_the_simulated_device_streaming(tmp_path):
    with virtual_live_view(tmp_path) as url, chromium_session(1280, 900) as driver:
        driver.get(url)
        wait = wait_for(driver, 120)
        state = driver.find_element(By.ID, "state")
        wait.until(lambda d: state.get_attribute("data-state") == "streaming")
        assert state.text.startswith("streaming from fc-virtual") and "no device" not in driver.page_source
        trace = driver.find_element(By.ID, "trace")
        wait.until(lambda d: int(trace.get_attribute("data-samples") or 0) > 200)
        first_count = int(trace.get_attribute("data-samples") or 0)
        first_numbers = {leg: driver.find_element(By.CSS_SELECTOR, f"#now-{leg} .force").text for leg in "lr"}
        wait.until(lambda d: int(trace.get_attribute("data-samples") or 0) > first_count + 200)
        wait.until(
            lambda d: {leg: d.find_element(By.CSS_SELECTOR, f"#now-{leg} .force").text for leg in "lr"} != first_numbers
        )
        now_left = driver.find_element(By.CSS_SELECTOR, "#now-l .force").text
        assert " BW · " in now_left and now_left.endswith(" N"), now_left  # force numbers in BW and newtons
        # the affected leg is marked, the limit is named in BW and newtons and drawn on the trace
        assert driver.find_element(By.CSS_SELECTOR, "#now-l .leg").text == "left (affected)"
        assert driver.find_element(By.CSS_SELECTOR, "#now-r .leg").text == "right"
        assert "left leg affected" in driver.find_element(By.ID, "patient-line").text
        assert f"your limit {LIMIT_BW:.2f} BW = " in driver.find_element(By.ID, "limit-key").text
        limit_red = driver.execute_script(
            "var c = document.getElementById('trace'), x = c.getContext('2d');"
            "var d = x.getImageData(0, 0, c.width, c.height).data, n = 0;"
            "for (var i = 0; i < d.length; i += 4) { if (d[i] > 180 && d[i + 1] < 80 && d[i + 2] < 80) n++; }"
            "return n;"
        )
        assert limit_red > 500, "no red limit line on the trace"
        wait.until(lambda d: d.find_element(By.ID, "steps").text not in ("–", "0"))
        assert driver.find_element(By.ID, "walking").text.endswith(("min", "h"))
        # the walker's steps go over the 1.05 BW limit: the device cues, the page says so
        wait.until(lambda d: d.find_element(By.ID, "cue-list").text != "no cue yet")
        assert " leg over your limit (" in driver.find_element(By.ID, "cue-list").text
        wait.until(lambda d: d.find_element(By.ID, "over-limit").text not in ("–", "0"))
        save_screenshot(driver, tmp_path / "live.png")
    assert (tmp_path / "live.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("state", "device", "streamed", "text"),
    [
        ("idle", None, False, "starting"),
        ("scanning", None, False, "no device yet: looking for it"),
        ("disconnected", None, False, "no device found: still looking"),
        ("connecting", None, False, "connecting to the device"),
        ("syncing", "fc-1", False, "connecting to fc-1: catching up on records"),
        ("streaming", "fc-1", True, "streaming from fc-1"),
        ("disconnected", "fc-1", True, "connection to fc-1 lost: reconnecting"),
        ("scanning", "fc-1", True, "connection to fc-1 lost: reconnecting"),
    ],
)
def test_the_connection_state_is_said_truthfully(state, device, streamed, text):
    from forcecast.host_app.live import state_text

    assert state_text(state, device, streamed) == text
