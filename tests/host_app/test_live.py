"""The patient's live view over the in-process BLE link: page, event stream, today's totals, cues."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from datetime import UTC

import numpy as np

from forcecast.edge.link import DeviceLink
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.analytics import PatientContext
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
        raw = await asyncio.wait_for(reader.readline(), timeout_s)
        if not raw:  # the server ended the stream
            break
        line = raw.decode().strip()
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
            [
                (
                    1.0,
                    {"t_unix": now - 60 + k, "patient_id": "P7", "leg": "r", "impulse_v_bws": 0.5}
                    | {"peak1_bw": round(1.0 + 0.05 * k, 2)},
                )
                for k in range(10)
            ],
        )
        info = {"device_id": "fc-live", "patient_id": "P7"}
        async with virtual_link(DeviceLink(store, info)) as link:
            host = HostStore(tmp_path / "h.sqlite")
            logger = link.logger(host, ClientConfig(scan_timeout_s=2.0, ack_period_s=0.1, live=True))
            context = PatientContext(affected_side="right", body_mass_kg=70.0, feedback_limit_bw=1.25)
            view = LiveView(logger, host, UTC, context)
            port = await view.start(0)
            head, page = await http_get(port, "/")
            missing_head, _ = await http_get(port, "/nowhere")
            task = asyncio.create_task(logger.run())
            events = asyncio.create_task(read_events(port, {"state", "patient", "today", "grf", "cue"}))
            while not link.server.link.live:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            t = np.arange(20) / 100.0
            link.server.listener("grf", {"leg": "r", "time_s": t, "grf_bw": np.column_stack([t, t * 0, t * 0])})
            store.append(
                "event", [(2.0, {"t_unix": now, "patient_id": "P7", "event": "cue", "leg": "r", "force_bw": 1.31})]
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
    streaming = [s for s in seen["state"] if s["state"] == "streaming"]
    assert streaming[0] == {"state": "streaming", "device_id": "fc-live", "text": "streaming from fc-live"}
    assert seen["patient"][0] == {
        "affected_leg": "r",
        "affected_side": "right",
        "limit_bw": 1.25,
        "limit_n": 858,
        "body_mass_kg": 70.0,
    }
    assert sum(len(g["v"]) for g in seen["grf"]) == 20 and seen["grf"][0]["leg"] == "r"
    assert seen["cue"][0]["peak_bw"] == 1.31
    assert totals == {
        "patient_id": "P7",
        "steps": 10,
        "load_bws": 5.0,
        "cues": 1,
        "over_limit": 4,  # 1.30 to 1.45 BW over the 1.25 limit
        "walking_min": 0.1,
    }  # one bout, 9 s
    if rendered is not None:  # the page loads in a browser and its script starts without errors
        dom, console = rendered
        assert console == [] and 'id="trace"' in dom


def test_the_server_answers_errors_plainly_and_stop_ends_open_streams(tmp_path):
    from types import SimpleNamespace

    logger = SimpleNamespace(state="scanning", device_id=None, device_info={})

    async def scenario():
        view = LiveView(logger, HostStore(tmp_path / "h.sqlite"), UTC)
        port = await view.start(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        refused = (await asyncio.wait_for(reader.read(), 5.0)).decode()
        writer.close()
        today_head, today = await http_get(port, "/today")
        streams = [asyncio.create_task(read_events(port, {"never"}, timeout_s=30.0)) for _ in range(2)]
        while len(view._clients) < 2:
            await asyncio.sleep(0.01)
        gone_reader, gone_writer = await asyncio.open_connection("127.0.0.1", port)
        gone_writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await gone_writer.drain()
        await gone_reader.readline()
        gone_writer.close()  # a page closed: TCP tells a broadcast or two later, and the stream is dropped
        for _ in range(50):
            logger.on_state("streaming")
            await asyncio.sleep(0.05)
            if len(view._clients) == 2:
                break
        clients_left = len(view._clients)
        started = time.monotonic()
        await view.stop()
        stopped_s = time.monotonic() - started
        seen = await asyncio.wait_for(asyncio.gather(*streams), 5.0)
        with contextlib.suppress(ConnectionError):
            await http_get(port, "/")
            return refused, today_head, today, clients_left, stopped_s, seen, "still serving"
        return refused, today_head, today, clients_left, stopped_s, seen, "closed"

    refused, today_head, today, clients_left, stopped_s, seen, after = asyncio.run(scenario())
    assert refused.startswith("HTTP/1.1 405") and "Allow: GET" in refused and refused.endswith("method not allowed\n")
    assert today_head.startswith("HTTP/1.1 200") and "no-store" in today_head
    assert json.loads(today) == {
        "patient_id": None,
        "steps": 0,
        "load_bws": 0.0,
        "cues": 0,
        "over_limit": None,
        "walking_min": 0.0,
    }
    assert clients_left == 2
    assert stopped_s < 1.0  # the open streams ended at once instead of holding the shutdown
    for events in seen:
        states = [s["state"] for s in events["state"]]
        assert states[0] == "scanning" and set(states[1:]) == {"streaming"} and "today" in events
    assert after == "closed"


def test_a_port_in_use_is_an_os_error_and_leaves_nothing_listening(tmp_path):
    import socket
    from types import SimpleNamespace

    logger = SimpleNamespace(state="scanning", device_id=None, device_info={})

    async def scenario():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            view = LiveView(logger, HostStore(tmp_path / "h.sqlite"), UTC)
            try:
                await view.start(port)
            except OSError as exc:
                error = exc
            else:
                error = None
            await view.stop()  # safe after a failed start
            return error, view._runner, view._totals_task

    error, runner, totals = asyncio.run(scenario())
    assert isinstance(error, OSError) and runner is None and totals is None


def test_live_virtual_without_a_package_says_how_to_get_one(tmp_path, capsys):
    from forcecast.cli import main

    argv = ["host", "live", "--virtual", "--db", str(tmp_path / "h.sqlite"), "--port", "0"]
    assert main([*argv, "--package", str(tmp_path / "none.fcpkg")]) == 2
    assert "none.fcpkg is not a file (run 'forcecast demo' once" in capsys.readouterr().err
    assert main([*argv, "--limit-bw", "0"]) == 2
    assert "--limit-bw: 0.0 must be a positive number" in capsys.readouterr().err


def test_the_page_learns_the_limit_and_body_mass_from_the_records(tmp_path):
    from types import SimpleNamespace

    logger = SimpleNamespace(state="streaming", device_id="fc-1", device_info={})
    view = LiveView(logger, HostStore(tmp_path / "h.sqlite"), UTC)
    assert view.patient() == {
        "affected_leg": None,
        "affected_side": None,
        "limit_bw": None,
        "limit_n": None,
        "body_mass_kg": None,
    }
    view._on_record("step", {"t_unix": 1.0, "patient_id": "P1", "leg": "l", "peak1_bw": 1.1, "peak1_n": 863.0})
    view._on_record("event", {"t_unix": 2.0, "event": "cue", "leg": "l", "force_bw": 1.3, "limit_bw": 1.2})
    assert view.patient() == {
        "affected_leg": None,
        "affected_side": None,
        "limit_bw": 1.2,
        "limit_n": round(1.2 * 80.0 * 9.80665),
        "body_mass_kg": 80.0,
    }
    view._on_record("event", {"t_unix": 3.0, "event": "cue", "leg": "l", "force_bw": 1.5, "limit_bw": 1.4})
    assert view.patient()["limit_bw"] == 1.4  # the device's limit changed (a new profile): the latest cue tells
    given = LiveView(logger, HostStore(tmp_path / "g.sqlite"), UTC, PatientContext(feedback_limit_bw=1.1))
    given._on_record("event", {"t_unix": 3.0, "event": "cue", "leg": "l", "force_bw": 1.5, "limit_bw": 1.4})
    assert given.patient()["limit_bw"] == 1.1  # a limit given is kept
