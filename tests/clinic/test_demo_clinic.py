"""The demo's clinic: a host store's days reach an SQLite clinic through the sync API, and the printed login
opens a dashboard that lists the demo patient with their days."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from dashboard_world import csrf_of

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.schema import records
from forcecast.clinic.demo_clinic import prepare_demo_clinic
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

PROFILE = {
    "patient_id": "DEMO-01",
    "affected_side": "left",
    "body_mass_kg": 71.5,
    "height_m": 1.72,
    "hka_deg": 4.0,
    "feedback_limit_bw": 1.25,
}


def test_the_demo_clinic_holds_the_host_store_and_its_login_works(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    host = tmp_path / "host.sqlite"
    with HostStore(host) as store:
        seq = None
        for back in (3, 2, 1):
            seq = write_day(store, today - timedelta(days=back), 300, patient="DEMO-01", first_seq=seq, seed=back)
        held = sum(store.count("fc-demo", kind) for kind in ("step", "summary", "event"))

    async def main() -> None:
        clinic = await prepare_demo_clinic(host, tmp_path / "clinic", "fc-demo", PROFILE)
        assert clinic.records == held
        assert clinic.login_file.read_text().split() == [clinic.email, clinic.password]
        assert clinic.command.endswith(f"--database {clinic.database_url} --insecure-cookies")
        assert "password" not in clinic.as_dict()
        engine = create_engine(clinic.database_url)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(sa.select(sa.func.count()).select_from(records))).scalar_one() == held
        finally:
            await engine.dispose()
        settings = ClinicSettings(database_url=clinic.database_url, port=0, cookie_secure=False)
        async with TestClient(TestServer(create_app(settings))) as client:
            token = csrf_of(await (await client.get("/login")).text())
            form = {"email": clinic.email, "password": clinic.password, "csrf_token": token, "next": "/"}
            assert (await client.post("/login", data=form, allow_redirects=False)).status == 302
            page = await (await client.get("/")).text()
            assert "DEMO-01" in page and "3 / 7" in page
            patient = await (await client.get(f"/patients/{clinic.patient_id}")).text()
            assert "1.25 BW" in patient and "+4.0°" in patient

        again = await prepare_demo_clinic(host, tmp_path / "clinic", "fc-demo", PROFILE)  # a second demo run
        assert again.records == held and again.password != clinic.password

    asyncio.run(main())
