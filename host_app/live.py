"""The patient's live view: a local web page (127.0.0.1 only) fed by the host client in real time.

``forcecast host live`` runs :class:`~forcecast.host_app.client.HostLogger` with the live GRF stream on and
serves one page plus a server-sent-events stream (``/events``): connection state, the vertical
force trace of each leg, today's steps and load, and biofeedback cues as they arrive. Records are
stored exactly as ``host log`` stores them, so the view can stay open all day.

Only the standard library serves the page (one HTTP/1.1 connection per request, no framework): the
view is a single local client, and no port is opened beyond the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime, tzinfo
from typing import Any

from forcecast.edge.protocol import LiveBlock
from forcecast.host_app.analytics import day_bounds
from forcecast.host_app.client import HostLogger
from forcecast.host_app.store import HostStore

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
TOTALS_PERIOD_S = 2.0
CLIENT_QUEUE = 1000


class LiveView:
    """Serve the live page for one :class:`HostLogger` (which the caller runs).

    Parameters
    ----------
    logger
        The host client; the view installs its ``on_live``, ``on_state`` and ``on_record`` hooks.
    store
        The host store (for today's totals).
    tz
        The patient's time zone (what "today" means).
    """

    def __init__(self, logger: HostLogger, store: HostStore, tz: tzinfo) -> None:
        self.logger = logger
        self.store = store
        self.tz = tz
        self.port: int | None = None
        self._clients: set[asyncio.Queue[str]] = set()
        self._server: asyncio.base_events.Server | None = None
        self._totals_task: asyncio.Task[None] | None = None
        self._last_state = logger.state
        self._patient = ""  # from the records: device info carries no patient id (issue 13 item 11)
        logger.on_live = self._on_live
        logger.on_state = self._on_state
        logger.on_record = self._on_record

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0 = any free port); returns the port."""
        self._server = await asyncio.start_server(self._handle, LOOPBACK, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._totals_task = asyncio.create_task(self._push_totals())
        return self.port

    async def stop(self) -> None:
        """Stop serving."""
        if self._totals_task is not None:
            self._totals_task.cancel()
            await asyncio.gather(self._totals_task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    @property
    def url(self) -> str:
        """Where the page is."""
        return f"http://{LOOPBACK}:{self.port}/"

    # ---------------------------------------------------------------- data

    def today(self) -> dict[str, Any]:
        """Today's steps, cumulative vertical impulse and cues of the connected patient."""
        patient = self._patient or str(self.logger.device_info.get("patient_id", ""))
        if not patient:
            return {"patient_id": None, "steps": 0, "load_bws": 0.0, "cues": 0}
        start, end = day_bounds(datetime.now(self.tz).date(), self.tz)
        steps, load, cues = self.store.day_totals(patient, start, end)
        return {"patient_id": patient, "steps": steps, "load_bws": round(load, 1), "cues": cues}

    def _broadcast(self, event: str, data: dict[str, Any]) -> None:
        message = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for queue in list(self._clients):
            if queue.qsize() < CLIENT_QUEUE:
                queue.put_nowait(message)

    def _on_live(self, block: LiveBlock, received_s: float) -> None:
        self._broadcast(
            "grf",
            {
                "leg": block.leg,
                "t0_ms": block.t0_ms,
                "period_ms": block.period_ms,
                "v": [round(float(v), 3) for v in block.grf_bw[:, 0]],
                "received_ms": round(received_s * 1000),
            },
        )

    def _on_state(self, state: str) -> None:
        self._last_state = state
        self._broadcast("state", {"state": state, "device_id": self.logger.device_id})

    def _on_record(self, kind: str, payload: dict[str, Any]) -> None:
        if payload.get("patient_id"):
            self._patient = str(payload["patient_id"])
        if kind == "event" and payload.get("event") == "cue":
            self._broadcast(
                "cue", {"leg": payload.get("leg"), "peak_bw": payload.get("peak_bw"), "t_unix": payload.get("t_unix")}
            )
        elif kind == "step":
            self._broadcast("step", {"leg": payload.get("leg"), "peak1_bw": payload.get("peak1_bw")})

    async def _push_totals(self) -> None:
        while True:
            if self._clients:
                self._broadcast("today", self.today())
            await asyncio.sleep(TOTALS_PERIOD_S)

    # ---------------------------------------------------------------- HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if parts[:1] != ["GET"]:
                await _respond(writer, 405, "text/plain", b"only GET\n")
            elif path == "/":
                await _respond(writer, 200, "text/html; charset=utf-8", PAGE.encode())
            elif path == "/events":
                await self._stream(writer)
            elif path == "/today":
                await _respond(writer, 200, "application/json", json.dumps(self.today()).encode())
            else:
                await _respond(writer, 404, "text/plain", b"not found\n")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: keep-alive\r\n\r\n"
        )
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._clients.add(queue)
        queue.put_nowait(f"event: state\ndata: {json.dumps({'state': self._last_state})}\n\n")
        queue.put_nowait(f"event: today\ndata: {json.dumps(self.today())}\n\n")
        try:
            while True:
                writer.write((await queue.get()).encode())
                await writer.drain()
        finally:
            self._clients.discard(queue)


async def _respond(writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes) -> None:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>forcecast live</title>
<style>
body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
header { display: flex; justify-content: space-between; align-items: center; padding: 12px 20px; background: #fff;
         border-bottom: 1px solid #ddd; }
#state { padding: 4px 10px; border-radius: 12px; background: #ddd; font-weight: 600; }
#state.streaming { background: #c8ecd0; } #state.disconnected, #state.scanning { background: #fde2c8; }
main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(3, 1fr); }
.card { background: #fff; border: 1px solid #ddd; border-radius: 10px; padding: 12px 16px; }
.card h2 { font-size: 13px; text-transform: uppercase; color: #666; margin: 0 0 4px; }
.card .value { font-size: 34px; font-weight: 700; }
#trace-card { grid-column: 1 / 4; } canvas { width: 100%; height: 260px; display: block; }
#cues { grid-column: 1 / 4; } #cues ul { margin: 0; padding-left: 18px; }
.legend span { margin-right: 14px; font-size: 13px; }
</style></head>
<body>
<header><b>forcecast · live</b><span id="device">no device yet</span><span id="state">starting</span></header>
<main>
<div class="card"><h2>Steps today</h2><div class="value" id="steps">–</div></div>
<div class="card"><h2>Load today</h2><div class="value" id="load">–</div>
<div>cumulative vertical impulse, BW·s</div></div>
<div class="card"><h2>Cues today</h2><div class="value" id="cue-count">–</div></div>
<div class="card" id="trace-card"><h2>Vertical force, last 10 s (body weights)</h2>
<div class="legend"><span style="color:#1f77b4">■ left</span><span style="color:#d62728">■ right</span></div>
<canvas id="trace" width="1200" height="260"></canvas></div>
<div class="card" id="cues"><h2>Feedback</h2><ul id="cue-list"><li>no cue yet</li></ul></div>
</main>
<script>
var WINDOW_MS = 10000, traces = {l: [], r: []}, colours = {l: "#1f77b4", r: "#d62728"};
var canvas = document.getElementById("trace"), ctx = canvas.getContext("2d");
var source = new EventSource("/events");
source.addEventListener("state", function (e) {
  var d = JSON.parse(e.data), el = document.getElementById("state");
  el.textContent = d.state; el.className = d.state;
  if (d.device_id) { document.getElementById("device").textContent = d.device_id; }
});
source.addEventListener("today", function (e) {
  var d = JSON.parse(e.data);
  document.getElementById("steps").textContent = d.steps.toLocaleString();
  document.getElementById("load").textContent = d.load_bws.toLocaleString();
  document.getElementById("cue-count").textContent = d.cues;
});
source.addEventListener("grf", function (e) {
  var d = JSON.parse(e.data), list = traces[d.leg];
  for (var i = 0; i < d.v.length; i++) { list.push([d.t0_ms + i * d.period_ms, d.v[i]]); }
  while (list.length > 2000) { list.shift(); }
});
source.addEventListener("cue", function (e) {
  var d = JSON.parse(e.data), ul = document.getElementById("cue-list");
  if (ul.firstElementChild && ul.firstElementChild.textContent === "no cue yet") { ul.innerHTML = ""; }
  var li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + ": " + (d.leg === "l" ? "left" : "right") +
    " leg above the limit" + (d.peak_bw ? " (" + Number(d.peak_bw).toFixed(2) + " BW)" : "");
  ul.insertBefore(li, ul.firstChild);
});
function draw() {
  var w = canvas.width, h = canvas.height, newest = 0;
  ["l", "r"].forEach(function (leg) {
    var l = traces[leg]; if (l.length) { newest = Math.max(newest, l[l.length - 1][0]); }
  });
  ctx.clearRect(0, 0, w, h); ctx.strokeStyle = "#eee"; ctx.lineWidth = 1;
  for (var g = 0; g <= 1.5; g += 0.5) {
    var y = h - g / 1.6 * h; ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
  }
  ["l", "r"].forEach(function (leg) {
    var list = traces[leg]; if (!list.length) { return; }
    ctx.strokeStyle = colours[leg]; ctx.lineWidth = 2; ctx.beginPath();
    list.forEach(function (p, i) {
      var x = w - (newest - p[0]) / WINDOW_MS * w, y = h - Math.max(0, p[1]) / 1.6 * h;
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
  });
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);
</script>
</body></html>
"""
