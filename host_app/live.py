"""The patient's live view: a local web page (127.0.0.1 only) fed by the host client in real time.

``forcecast host live`` runs :class:`~forcecast.host_app.client.HostLogger` with the live GRF stream on and
serves one page plus a server-sent-events stream (``/events``): the connection state in words (looking for
the device, connecting, streaming from it, reconnecting), the vertical force trace of each leg with its
time axis, numbers in BW and newtons and the patient's feedback limit as a line, the affected leg marked,
today's steps, steps over the limit and walking time in plain words, and biofeedback cues as they arrive.
Records are stored exactly as ``host log`` stores them, so the view can stay open all day.
``forcecast host live --virtual`` serves the same page for a simulated device
(:mod:`forcecast.host_app.virtual_device`).

The page is served by aiohttp's web server in the host client's own event loop (the page itself is
package data, ``templates/live.html``); nothing listens beyond the loopback interface.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, tzinfo
from functools import cache
from importlib.resources import files
from typing import Any

import pandas as pd
from aiohttp import web

from forcecast.edge.protocol import LiveBlock
from forcecast.edge.records import EventRecord, EventType, RecordError, StepRecord, decode
from forcecast.host_app.analytics import AnalyticsConfig, PatientContext, day_bounds, find_bouts
from forcecast.host_app.client import HostLogger
from forcecast.host_app.store import HostStore

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
TOTALS_PERIOD_S = 2.0
WALKING_PERIOD_S = 10.0
"""How often today's walking time is worked out again (it reads the day's steps)."""
GRAVITY_MPS2 = 9.80665
CLIENT_QUEUE = 1000
SHUTDOWN_S = 1.0
"""How long :meth:`LiveView.stop` lets open requests finish before it cancels them."""


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
    context
        What the page shows about the patient: affected side, feedback limit, body mass (for newtons). A
        limit not given is taken from the latest cue the device reports (its ``limit_bw``), a body mass not
        given from a step's newtons over its body weights.
    """

    def __init__(self, logger: HostLogger, store: HostStore, tz: tzinfo, context: PatientContext | None = None) -> None:
        self.logger = logger
        self.store = store
        self.tz = tz
        self.context = context or PatientContext()
        self._learn_limit = self.context.feedback_limit_bw is None  # a limit given is kept; else the cues tell it
        self._streamed = False
        # (computed at, (patient, limit), (walking minutes, steps over the limit)): see _from_steps
        self._walking: tuple[float, tuple[str, float | None], tuple[float, int | None]] = (
            -1e9,
            ("", None),
            (0.0, None),
        )
        self.port: int | None = None
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._runner: web.AppRunner | None = None
        self._totals_task: asyncio.Task[None] | None = None
        self._last_state = logger.state
        self._patient = ""  # from the records: device info carries no patient id (issue 13 item 11)
        logger.on_live = self._on_live
        logger.on_state = self._on_state
        logger.on_record = self._on_record

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0 = any free port); returns the port.

        Raises
        ------
        OSError
            If the port cannot be bound (e.g. already in use).
        """
        app = web.Application(middlewares=[_plain_responses])
        app.router.add_get("/", self._page)
        app.router.add_get("/events", self._events)
        app.router.add_get("/today", self._today)
        app.router.add_get("/patient", self._patient_json)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, LOOPBACK, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._totals_task = asyncio.create_task(self._push_totals())
        return self.port

    async def stop(self) -> None:
        """Stop serving: end every open event stream, then close the server."""
        if self._totals_task is not None:
            self._totals_task.cancel()
            await asyncio.gather(self._totals_task, return_exceptions=True)
        for queue in list(self._clients):
            queue.put_nowait(None)  # each stream ends after what it already holds
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Where the page is."""
        return f"http://{LOOPBACK}:{self.port}/"

    # ---------------------------------------------------------------- data

    def today(self) -> dict[str, Any]:
        """Today's steps, cumulative vertical impulse, cues, steps over the limit and walking minutes.

        ``over_limit`` counts today's steps whose highest vertical peak is above the feedback limit (None while
        the limit is not known); ``cues`` counts the cue records the host holds for the patient.
        """
        patient = self._patient or str(self.logger.device_info.get("patient_id", ""))
        if not patient:
            return {
                "patient_id": None,
                "steps": 0,
                "load_bws": 0.0,
                "cues": 0,
                "over_limit": None,
                "walking_min": 0.0,
            }
        start, end = day_bounds(datetime.now(self.tz).date(), self.tz)
        steps, load, cues = self.store.day_totals(patient, start, end)
        walking_min, over_limit = self._from_steps(patient, start, end)
        return {
            "patient_id": patient,
            "steps": steps,
            "load_bws": round(load, 1),
            "cues": cues,
            "over_limit": over_limit,
            "walking_min": walking_min,
        }

    def _from_steps(self, patient: str, start: float, end: float) -> tuple[float, int | None]:
        """Minutes in walking bouts today (as the report counts them) and steps over the limit.

        Worked out from the day's step records at most every :data:`WALKING_PERIOD_S` (and when the limit changes).
        """
        limit = self.context.feedback_limit_bw
        computed, key, found = self._walking
        now = time.monotonic()
        if key == (patient, limit) and now - computed < WALKING_PERIOD_S:
            return found
        steps = self.store.dated_records(patient, StepRecord, start, end)
        table = pd.DataFrame(
            {"t": [s.t_host for s in steps], "stance_s": [s.record.stance_s for s in steps]}, dtype=float
        )
        minutes = round(float(find_bouts(table, AnalyticsConfig())["duration_s"].sum()) / 60.0, 1)
        over = None
        if limit is not None:
            peaks = [
                max((p for p in (s.record.peak1_bw, s.record.peak2_bw) if p is not None), default=0.0) for s in steps
            ]
            over = sum(peak > limit for peak in peaks)
        self._walking = (now, (patient, limit), (minutes, over))
        return minutes, over

    def patient(self) -> dict[str, Any]:
        """What the page shows about the patient: affected leg, feedback limit (BW and N), body mass."""
        c = self.context
        mass = c.body_mass_kg
        limit = c.feedback_limit_bw
        return {
            "affected_leg": c.affected_leg,
            "affected_side": c.affected_side,
            "limit_bw": limit,
            "limit_n": round(limit * mass * GRAVITY_MPS2) if limit is not None and mass is not None else None,
            "body_mass_kg": mass,
        }

    def state(self) -> dict[str, Any]:
        """The connection state: the client's word for it, the device, and a sentence for the patient."""
        state = self._last_state
        device = self.logger.device_id
        return {"state": state, "device_id": device, "text": state_text(state, device, self._streamed)}

    def _broadcast(self, event: str, data: dict[str, Any]) -> None:
        message = _sse(event, data)
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
        if state == "streaming":
            self._streamed = True
        self._broadcast("state", self.state())

    def _on_record(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            record = decode(kind, payload)
        except RecordError:
            return  # the client counted it; nothing to show
        if record.patient_id:
            self._patient = record.patient_id
        if isinstance(record, EventRecord) and record.event is EventType.CUE:
            if self._learn_limit and record.limit_bw and record.limit_bw != self.context.feedback_limit_bw:
                # the device's limit now (a profile written to it changes it): the latest cue says it
                self.context = replace(self.context, feedback_limit_bw=record.limit_bw)
                self._broadcast("patient", self.patient())
            # The page shows the force that crossed the limit as the cue's peak.
            self._broadcast(
                "cue",
                {"leg": record.leg, "peak_bw": record.force_bw, "limit_bw": record.limit_bw, "t_unix": record.t_unix},
            )
        elif isinstance(record, StepRecord):
            if self.context.body_mass_kg is None and record.peak1_n and record.peak1_bw:
                # a step's newtons over its body weights give the body weight the device uses
                mass = round(record.peak1_n / record.peak1_bw / GRAVITY_MPS2, 1)
                self.context = replace(self.context, body_mass_kg=mass)
                self._broadcast("patient", self.patient())
            self._broadcast("step", {"leg": record.leg, "peak1_bw": record.peak1_bw})

    async def _push_totals(self) -> None:
        while True:
            if self._clients:
                self._broadcast("today", self.today())
            await asyncio.sleep(TOTALS_PERIOD_S)

    # ---------------------------------------------------------------- HTTP

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_live_page(), content_type="text/html", charset="utf-8")

    async def _today(self, request: web.Request) -> web.Response:
        return web.json_response(self.today())

    async def _patient_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.patient())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """The server-sent-events stream: the current state and totals first, then every broadcast."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._clients.add(queue)
        queue.put_nowait(_sse("state", self.state()))
        queue.put_nowait(_sse("patient", self.patient()))
        queue.put_nowait(_sse("today", self.today()))
        try:
            while (message := await queue.get()) is not None:
                await response.write(message.encode())
        except ConnectionError:
            log.debug("live view: an event stream's client went away")
        finally:
            self._clients.discard(queue)
        return response


def state_text(state: str, device_id: str | None, streamed: bool) -> str:
    """The connection state in words: never "no device" beside a device that streams, never "streaming" without one.

    Parameters
    ----------
    state
        The host client's state (``idle``, ``scanning``, ``connecting``, ``syncing``, ``streaming``,
        ``disconnected``).
    device_id
        The device last connected (None before the first connection).
    streamed
        Whether this session has streamed from a device before (a new scan is then a reconnection).
    """
    device = device_id or "the device"
    if state == "streaming":
        return f"streaming from {device}"
    if state in ("connecting", "syncing"):
        return f"connecting to {device}" + (": catching up on records" if state == "syncing" else "")
    if streamed:
        return f"connection to {device} lost: reconnecting"
    if state == "scanning":
        return "no device yet: looking for it"
    if state == "disconnected":
        return "no device found: still looking"
    return "starting"


def _sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event (``event:`` and one ``data:`` line of compact JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@web.middleware
async def _plain_responses(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every response but the event stream is never cached and closes its connection (one request each).

    HTTP errors (404 for an unknown path, 405 for a method other than GET) become short plain-text answers.
    """
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = web.Response(status=exc.status, text=f"{exc.reason.lower()}\n", headers=exc.headers)
    if response.content_type != "text/event-stream":
        response.headers["Cache-Control"] = "no-store"
        response.force_close()
    return response


@cache
def _live_page() -> bytes:
    """The page (package data: ``templates/live.html``)."""
    return files("forcecast.host_app").joinpath("templates", "live.html").read_bytes()
