"""Helpers of the clinic tests: a clinic with a patient and enrolled devices, the app on a test server, records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.accounts import add_clinic
from forcecast.clinic.db.devices import enroll_device
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.patients import add_patient
from forcecast.clinic.db.schema import records
from forcecast.clinic.sync_wire import encode_waveform
from forcecast.edge.records import StepRecord
from forcecast.host_app.synthetic_days import waveform


@dataclass(frozen=True)
class Seeded:
    """A clinic with one patient and its enrolled devices (``tokens[i]`` belongs to ``device_ids[i]``)."""

    clinic_id: int
    patient_id: int
    device_ids: tuple[str, ...]
    tokens: tuple[str, ...]


async def seed(
    url: str, devices: int = 1, clinic: str = "Clinic A", code: str = "P001", names: tuple[str, ...] = ()
) -> Seeded:
    """A clinic, a patient (left side affected, 70 kg, 1.75 m, limit 1.3 BW) and enrolled devices.

    The devices are ``names``, else ``devices`` devices named ``{code}-dev{k}``.
    """
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            clinic_id = await add_clinic(connection, clinic)
            patient_id = await add_patient(
                connection, clinic_id, code, "Test patient", affected_side="left", body_mass_kg=70.0,
                height_m=1.75, hka_deg=3.0, feedback_limit_bw=1.3,
            )  # fmt: skip
            ids, tokens = [], []
            for name in names or tuple(f"{code}-dev{k}" for k in range(devices)):
                device, token = await enroll_device(connection, clinic_id, patient_id, name)
                ids.append(device.device_id)
                tokens.append(token)
    finally:
        await engine.dispose()
    return Seeded(clinic_id, patient_id, tuple(ids), tuple(tokens))


@asynccontextmanager
async def app_client(settings: ClinicSettings) -> AsyncIterator[TestClient[Any, Any]]:
    """The clinic application on an in-process test server, and a client of it."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates a device."""
    return {"Authorization": f"Bearer {token}"}


def step_item(seq: int, t0: float = 1_764_489_600.0, rng_seed: int = 0, b64: bool = True) -> dict[str, Any]:
    """A wire record of a realistic step (waveform as ``waveform_b64``, or inside the payload)."""
    rng = np.random.default_rng(rng_seed + seq)
    curves = waveform(1.1, 1.05, rng)
    step = StepRecord(
        t_unix=t0 + 0.55 * seq, patient_id="P001", leg="r" if seq % 2 else "l", stance_s=0.62, peak1_bw=1.1,
        peak2_bw=1.05, impulse_v_bws=0.55, waveform_bw=curves, calibrated=True,
    )  # fmt: skip
    payload = step.to_payload()
    item: dict[str, Any] = {"kind": "step", "seq": seq, "t_host": t0 + 0.55 * seq + 1.0}
    if b64:
        payload.pop("waveform_bw")
        item["waveform_b64"] = encode_waveform(np.asarray(curves, dtype="<f4").tobytes())
    item["payload"] = payload
    return item


async def count_records(url: str) -> tuple[int, int]:
    """``(rows, distinct keys)`` of the records table."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalar(select(func.count()).select_from(records))
            keys = select(records.c.device_pk, records.c.store_id, records.c.kind, records.c.seq).distinct().subquery()
            distinct = await connection.scalar(select(func.count()).select_from(keys))
    finally:
        await engine.dispose()
    return int(rows or 0), int(distinct or 0)
