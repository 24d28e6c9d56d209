"""Home sync end to end: a real device runtime over the in-process BLE link, the host logging it, and the host's
clinic push writing the clinic's profile to the running device (``host log --clinic``'s pieces, together).

On SQLite only: the database side is tested on both databases elsewhere; this test is about the chain.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from clinic_db import ClinicTestDb
from clinic_seed import seed
from device_toml import BOTH_LEGS_TOML
from sqlalchemy import select
from test_host_push import FAST, Clinic, free_port
from virtual_sync import QUICK, until

from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import upgrade
from forcecast.clinic.db.schema import devices, records
from forcecast.edge.ble.serve import gatt_server
from forcecast.edge.runtime.launch import Runtime, build_runtime
from forcecast.host_app.clinic_sync import ClinicPusher
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import virtual_link

logging.getLogger("bumble").setLevel(logging.ERROR)
DATA = Path(__file__).parents[1] / "data"
DEVICE = "fc-home"


def runtime_at_home(folder: Path) -> Runtime:
    """A device on the synthetic walker whose device.toml has no cue limit (profile version 0)."""
    config = folder / "device.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\n[patient]\npatient_id = "P001"\nbody_mass_kg = 60.0\nheight_m = 1.6\n'
        'peak_limit_bw = 0.0\naffected_side = "none"\n' + BOTH_LEGS_TOML
    )
    return build_runtime(
        DATA / "grf_int8.fcpkg", "synthetic:3", config, [DATA / "forcecast-test.pub"], folder / "device.sqlite",
        speed=3.0,
    )  # fmt: skip


def test_records_reach_the_clinic_and_its_profile_reaches_the_running_device(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    db = ClinicTestDb("sqlite", url, ClinicSettings(database_url=url, port=0))
    runtime = runtime_at_home(tmp_path)
    host = HostStore(tmp_path / "host.sqlite")

    async def scenario() -> dict[str, Any]:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        seeded = await seed(db.url, names=(DEVICE,))  # profile version 1: limit 1.3 BW, left side, 70 kg, 1.75 m
        clinic = Clinic(db.settings, free_port())
        await clinic.start()
        try:
            async with virtual_link(lambda d: gatt_server(runtime, d)) as link:
                logger = link.logger(host, QUICK)
                logging_task = asyncio.create_task(logger.run())
                running = asyncio.create_task(asyncio.to_thread(runtime.run, 120.0))
                try:
                    await until(lambda: logger.client is not None and host.count(DEVICE, "step") >= 4, 60.0)
                    stats = await ClinicPusher(host, clinic.url, seeded.tokens[0], FAST, writer=logger).push_once()
                    limit = runtime.pipeline.feedback.limit_bw  # at once
                    await until(lambda: runtime.pipeline.patient.body_mass_kg == 70.0, 30.0)  # from the next chunk
                    patient = runtime.pipeline.patient
                finally:
                    runtime.source.close()
                    await running
                    logger.stop()
                    await logging_task
            engine = create_engine(url)
            async with engine.connect() as connection:
                applied = await connection.scalar(select(devices.c.profile_version_applied))
                stored = len((await connection.execute(select(records.c.seq).where(records.c.kind == "step"))).all())
            await engine.dispose()
        finally:
            await clinic.stop()
        return {"stats": stats, "limit": limit, "patient": patient, "applied": applied, "stored": stored}

    result = asyncio.run(scenario())
    stats = result["stats"]
    assert stats.device_id == DEVICE and stats.accepted >= 4 and result["stored"] >= 4
    assert stats.profile_version_applied == 1 and result["applied"] == 1
    assert result["limit"] == 1.3
    patient = result["patient"]
    assert (patient.body_mass_kg, patient.height_m, patient.hka_deg, patient.affected_side) == (70.0, 1.75, 3.0, "left")
