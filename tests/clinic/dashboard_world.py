"""Two clinics with users, patients, devices and a few weeks of synced records, for the dashboard's tests.

Clinic A has four patients, each shaped to land in a known place of the attention order; clinic B has one
patient with data of its own (the access test must never see it from A). Records go in through the sync API's
own parser and ingestion (:func:`forcecast.clinic.sync_wire.parse_record`, :func:`store_records`), so they are
stored exactly as a home host's would be. Everything runs in the clinic's zone, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard import DashboardOptions, setup
from forcecast.clinic.db.accounts import add_clinic, add_user
from forcecast.clinic.db.devices import enroll_device
from forcecast.clinic.db.patients import add_patient
from forcecast.clinic.db.records import store_records
from forcecast.clinic.sync_wire import IncomingRecord, parse_record
from forcecast.edge.records import EventRecord, EventType, StepRecord, SummaryRecord

PASSWORD = "correct horse battery"
SECRET_B = "Bea Secret-Patient"
"""Clinic B's patient's name: it must appear in no response to a user of clinic A."""
PHASE = np.linspace(0.0, 1.0, 101)


@dataclass
class World:
    """Ids of what :func:`build_world` made."""

    today: date
    clinic_a: int = 0
    clinic_b: int = 0
    physio_a: str = "physio@a.example"
    admin_a: str = "admin@a.example"
    physio_b: str = "physio@b.example"
    patients_a: dict[str, int] = field(default_factory=dict)
    patient_b: int = 0
    device_b: str = "fc-b-1"
    tokens: dict[str, str] = field(default_factory=dict)


def _waveform(peak1: float, peak2: float) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    hump = np.exp(-(((PHASE - 0.25) / 0.12) ** 2)) * peak1 + np.exp(-(((PHASE - 0.75) / 0.12) ** 2)) * peak2
    vertical = np.minimum(hump + 0.75 * np.sin(np.pi * PHASE) ** 2, max(peak1, peak2))
    ap = -0.2 * np.sin(2 * np.pi * PHASE)
    ml = 0.06 * np.sin(np.pi * PHASE)
    v, a, m = (tuple(np.round(c, 4).tolist()) for c in (vertical, ap, ml))
    return v, a, m


def day_records(
    day: date, steps: int, wear_h: int, peak: float, first_seq: dict[str, int], code: str, cues: int = 0
) -> list[IncomingRecord]:
    """One day: ``steps`` steps from 09:00 UTC (alternating legs), ``wear_h`` hourly wear summaries, cues."""
    rng = np.random.default_rng(day.toordinal())
    base = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()
    items: list[tuple[str, float, dict[str, object]]] = []
    for k in range(steps):
        leg = "r" if k % 2 == 0 else "l"
        t = base + k * 0.55 + (k // 50) * 600.0
        peak1 = round(peak + rng.normal(0, 0.03) - (0.06 if leg == "l" else 0.0), 4)
        peak2 = round(peak - 0.07 + rng.normal(0, 0.03), 4)
        record = StepRecord(
            t_unix=t,
            patient_id=code,
            leg=leg,
            ic_s=t,
            tc_s=t + 0.62,
            stance_s=0.62,
            peak1_bw=peak1,
            peak2_bw=peak2,
            peak1_n=round(peak1 * 700, 1),
            peak2_n=round(peak2 * 700, 1),
            loading_rate_bw_s=round(9.0 + rng.normal(0, 0.5), 3),
            impulse_v_bws=0.55,
            peak_ml_bw=0.06,
            peak_ml_n=42.0,
            waveform_bw=_waveform(peak1, peak2),
            flags=(),
            calibrated=True,
            model_version="cnn_lstm_static-int8-test",
        )
        items.append(("step", t, record.to_payload()))
    for hour in range(wear_h):
        t = base - 3600.0 + hour * 3600.0
        items.append(("summary", t, SummaryRecord(t_unix=t, patient_id=code, start_s=0.0, end_s=3600.0).to_payload()))
    for k in range(cues):
        t = base + 30.0 + k
        items.append(("event", t, EventRecord(event=EventType.CUE, t_unix=t, patient_id=code).to_payload()))
    out = []
    for index, (kind, t, payload) in enumerate(items):
        first_seq[kind] = first_seq.get(kind, 0) + 1
        out.append(parse_record({"kind": kind, "seq": first_seq[kind], "t_host": t, "payload": payload}, index))
    return out


@dataclass(frozen=True)
class Plan:
    """How one patient of clinic A wore the device: steps a day, wear hours, days without data, yesterday's steps."""

    steps: int
    wear_h: int
    missing: tuple[int, ...]
    yesterday: int


STEPS = 120
PLAN: dict[str, Plan] = {
    "A-FINE": Plan(STEPS, 10, (), STEPS),
    "A-LOWWEAR": Plan(STEPS, 3, (), STEPS),
    "A-MISSING": Plan(STEPS, 10, (2, 3, 4), STEPS),
    "A-FLAG": Plan(STEPS, 10, (), 40),
}
"""Clinic A's patients; the attention order is A-FLAG, A-MISSING, A-LOWWEAR, A-FINE."""
NAMES = {"A-FINE": "Anna Berg", "A-LOWWEAR": "Lena Wolf", "A-MISSING": "Max Roth", "A-FLAG": "Frida Lang"}
DAYS = 9


async def build_world(engine: AsyncEngine, today: date, days: int = DAYS) -> World:
    """Two clinics, their users and patients, devices and ``days`` days of records before ``today``."""
    world = World(today)
    async with engine.begin() as conn:
        world.clinic_a = await add_clinic(conn, "Clinic A")
        world.clinic_b = await add_clinic(conn, "Clinic B")
        await add_user(conn, world.clinic_a, world.physio_a, "Pat Physio", PASSWORD, "physio")
        await add_user(conn, world.clinic_a, world.admin_a, "Ada Admin", PASSWORD, "admin")
        await add_user(conn, world.clinic_b, world.physio_b, "Bob B", PASSWORD, "physio")
        for code in PLAN:
            world.patients_a[code] = await add_patient(
                conn,
                world.clinic_a,
                code,
                NAMES[code],
                affected_side="left",
                body_mass_kg=70.0,
                height_m=1.7,
                hka_deg=3.5,
            )
        world.patient_b = await add_patient(
            conn, world.clinic_b, "B-ONE", SECRET_B, affected_side="right", body_mass_kg=80.0, height_m=1.8, hka_deg=4.0
        )
    async with engine.begin() as conn:
        for code, plan in PLAN.items():
            device, token = await enroll_device(conn, world.clinic_a, world.patients_a[code], f"fc-{code.lower()}")
            world.tokens[code] = token
            seq: dict[str, int] = {}
            batch: list[IncomingRecord] = []
            for back in range(days, 0, -1):
                if back in plan.missing:
                    continue
                steps = plan.yesterday if back == 1 else plan.steps + (0 if back < 6 else (back * 37) % 41 - 20)
                batch += day_records(today - timedelta(days=back), steps, plan.wear_h, 1.15, seq, code, cues=1)
            await store_records(conn, device, "store-1", batch)
        device_b, world.tokens["B-ONE"] = await enroll_device(conn, world.clinic_b, world.patient_b, world.device_b)
        seq_b: dict[str, int] = {}
        batch_b = []
        for back in range(days, 0, -1):
            batch_b += day_records(today - timedelta(days=back), 150, 9, 1.3, seq_b, "B-ONE")
        await store_records(conn, device_b, "store-b", batch_b)
    return world


def dashboard_app(engine: AsyncEngine, settings: ClinicSettings) -> web.Application:
    """The dashboard alone on an application (the server's app adds the sync API beside it)."""
    app = web.Application()
    setup(app, settings, engine, DashboardOptions(timezone="UTC"))
    return app


async def login(client: TestClient[web.Request, web.Application], email: str, password: str = PASSWORD) -> int:
    """Log in through the form (fetching it first for its CSRF cookie); returns the final status."""
    page = await client.get("/login")
    text = await page.text()
    marker = 'name="csrf_token" value="'
    token = text[text.index(marker) + len(marker) :].split('"', 1)[0]
    response = await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"}, allow_redirects=False
    )
    return response.status


def csrf_of(html: str) -> str:
    """The session's CSRF token from a page's forms."""
    marker = 'name="csrf_token" value="'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]
