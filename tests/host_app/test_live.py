"""The patient's live view over the in-process BLE link: page, event stream, today's totals, cues."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from datetime import UTC

import numpy as np

from forcecast.edge.link import DeviceLink
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.browser import run_chromium
from forcecast.host_app.client import ClientConfig
from forcecast.host_app.live import LiveView
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import virtual_link

logging.getLogger("bumble").setLevel(logging.ERROR)


async def http_get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head, body


async def read_events(port: int, wanted: set[str], timeout_s: float = 10.0) -> dict[str, list[dict]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    seen: dict[str, list[dict]] = {}
    event = ""
    deadline = time.monotonic() + timeout_s
    while not wanted <= set(seen) and time.monotonic() < deadline:
        line = (await asyncio.wait_for(reader.readline(), timeout_s)).decode().strip()
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            seen.setdefault(event, []).append(json.loads(line[6:]))
    writer.close()
    return seen


def test_the_live_page_streams_state_force_totals_and_cues(tmp_path):
    async def scenario():
        now = time.time()
        store = RecordStore(tmp_path / "d.sqlite", device_id="fc-live")
        store.append(
            "step",
            [(1.0, {"t_unix": now - 60 + k, "patient_id": "P7", "leg": "r", "impulse_v_bws": 0.5}) for k in range(10)],
        )
        info = {"device_id": "fc-live", "patient_id": "P7"}
        async with virtual_link(DeviceLink(store, info)) as link:
            host = HostStore(tmp_path / "h.sqlite")
            logger = link.logger(host, ClientConfig(scan_timeout_s=2.0, ack_period_s=0.1, live=True))
            view = LiveView(logger, host, UTC)
            port = await view.start(0)
            head, page = await http_get(port, "/")
            missing_head, _ = await http_get(port, "/nowhere")
            task = asyncio.create_task(logger.run())
            events = asyncio.create_task(read_events(port, {"state", "today", "grf", "cue"}))
            while not link.server.link.live:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            t = np.arange(20) / 100.0
            link.server.listener("grf", {"leg": "r", "time_s": t, "grf_bw": np.column_stack([t, t * 0, t * 0])})
            store.append(
                "event", [(2.0, {"t_unix": now, "patient_id": "P7", "event": "cue", "leg": "r", "peak_bw": 1.31})]
            )
            link.server.listener("event", {})
            seen = await events
            totals = view.today()
            rendered = None
            if shutil.which("chromium"):
                dom = await asyncio.to_thread(run_chromium, view.url, "--dump-dom", "--enable-logging=stderr")
                rendered = (dom.stdout, [x for x in dom.stderr.splitlines() if "CONSOLE" in x or "Uncaught" in x])
            logger.stop()
            await task
            await view.stop()
            return head, page, missing_head, seen, totals, rendered

    head, page, missing_head, seen, totals, rendered = asyncio.run(scenario())
    assert head.startswith("HTTP/1.1 200") and "EventSource" in page and "no-store" in head
    assert missing_head.startswith("HTTP/1.1 404")
    assert any(s["state"] == "streaming" for s in seen["state"])
    assert sum(len(g["v"]) for g in seen["grf"]) == 20 and seen["grf"][0]["leg"] == "r"
    assert seen["cue"][0]["peak_bw"] == 1.31
    assert totals == {"patient_id": "P7", "steps": 10, "load_bws": 5.0, "cues": 1}
    if rendered is not None:  # the page loads in a browser and its script starts without errors
        dom, console = rendered
        assert console == [] and 'id="trace"' in dom
