"""The demo's clinic: an SQLite clinic database holding the demo patient, synced from the demo's host store.

``forcecast demo`` calls :func:`prepare_demo_clinic` after the report: it migrates a fresh database in the demo's
folder, creates a clinic, a physiotherapist's login (a new random password, printed and kept in ``login.txt``) and
the demo patient with the walker's static features, enrols the demo device, and pushes the host store's records
through the real sync API (an in-process server on a free loopback port, the host's own push client). The demo
then prints the command that serves the dashboard; it does not keep a server running itself.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.accounts import add_clinic, add_user
from forcecast.clinic.db.devices import enroll_device
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import upgrade
from forcecast.clinic.db.patients import add_patient
from forcecast.host_app.clinic_sync import ClinicPusher
from forcecast.host_app.store import HostStore

CLINIC_NAME = "Demo clinic"
EMAIL = "physio@demo.clinic"


@dataclass(frozen=True)
class DemoClinic:
    """What the demo prints: the database, the login and the command that serves the dashboard."""

    database_url: str
    email: str
    password: str
    patient_id: int
    records: int
    login_file: Path

    @property
    def command(self) -> str:
        """The command that serves the dashboard on this machine (plain HTTP on the loopback interface)."""
        return f"forcecast clinic serve --database {self.database_url} --insecure-cookies"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the password stays in ``login.txt``, not in the demo's JSON)."""
        return {
            "database": self.database_url,
            "email": self.email,
            "login_file": str(self.login_file),
            "patient_id": self.patient_id,
            "records": self.records,
            "serve": self.command,
        }


async def prepare_demo_clinic(host_store: Path, folder: Path, device_id: str, profile: dict[str, Any]) -> DemoClinic:
    """Build the demo's clinic database from the demo's host store (anything a previous demo left is replaced).

    Parameters
    ----------
    host_store
        The demo's host store (its records are pushed to the clinic).
    folder
        Where the database and ``login.txt`` go.
    device_id
        The demo device (enrolled to the patient).
    profile
        The patient: ``patient_id`` (the code), ``affected_side``, ``body_mass_kg``, ``height_m``, ``hka_deg``
        and ``feedback_limit_bw``.

    Returns
    -------
    DemoClinic
        The database, login and serve command.
    """
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "clinic.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{database.resolve()}"
    password = secrets.token_urlsafe(12)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            clinic_id = await add_clinic(conn, CLINIC_NAME)
            await add_user(conn, clinic_id, EMAIL, "Demo physiotherapist", password, "admin")
            patient_id = await add_patient(
                conn,
                clinic_id,
                str(profile["patient_id"]),
                "Demo walker (synthetic)",
                affected_side=str(profile["affected_side"]),
                body_mass_kg=float(profile["body_mass_kg"]),
                height_m=float(profile["height_m"]),
                hka_deg=None if profile.get("hka_deg") is None else float(profile["hka_deg"]),
                feedback_limit_bw=profile.get("feedback_limit_bw"),
            )
            _, token = await enroll_device(conn, clinic_id, patient_id, device_id)
    finally:
        await engine.dispose()
    records = await _push(host_store, url, token)
    login = folder / "login.txt"
    login.write_text(f"{EMAIL}\n{password}\n", encoding="utf-8")
    login.chmod(0o600)
    return DemoClinic(url, EMAIL, password, patient_id, records, login)


async def _push(host_store: Path, url: str, token: str) -> int:
    """Push the host store's records through the sync API of an in-process server; returns how many were new."""
    runner = web.AppRunner(create_app(ClinicSettings(database_url=url, port=0)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        with HostStore(host_store) as store:
            stats = await ClinicPusher(store, f"http://127.0.0.1:{port}", token).push_until_done()
    finally:
        await runner.cleanup()
    return stats.accepted
