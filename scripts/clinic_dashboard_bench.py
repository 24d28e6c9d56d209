"""Figure: how long the clinic dashboard's pages take for an active patient (SQLite, one process, loopback).

A host store gets ``--days`` synthetic worn days of ``--steps`` steps each (:func:`write_day`: 14 h of wear,
one summary a minute); the demo's clinic builder pushes it through the real sync API into a fresh SQLite
clinic database; then one logged-in client times each page once: the patient list, the patient page, the
last day's report (the host's report over 28 days of the clinic's records) and the comparison of two ISO weeks.

Prints one JSON object (seconds per page, and how many records the clinic holds).

Usage::

    python scripts/clinic_dashboard_bench.py [--days 28] [--steps 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.demo_clinic import prepare_demo_clinic
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

PROFILE = {"patient_id": "BENCH-01", "affected_side": "left", "body_mass_kg": 72.0, "height_m": 1.74, "hka_deg": 3.0}


async def bench(folder: Path, days: int, steps: int) -> dict[str, Any]:
    """Fill, sync and time the pages (see the module docstring)."""
    today = datetime.now(UTC).date()
    host = folder / "host.sqlite"
    with HostStore(host) as store:
        seq = None
        for back in range(days, 0, -1):
            seq = write_day(store, today - timedelta(days=back), steps, patient="BENCH-01", first_seq=seq, seed=back)
    started = time.perf_counter()
    clinic = await prepare_demo_clinic(host, folder / "clinic", "fc-demo", PROFILE)
    out: dict[str, Any] = {"days": days, "steps_per_day": steps, "records": clinic.records}
    out["sync_s"] = round(time.perf_counter() - started, 2)
    settings = ClinicSettings(database_url=clinic.database_url, port=0, cookie_secure=False)
    yesterday = today - timedelta(days=1)
    first_week, second_week = (
        (yesterday - timedelta(days=14)).isocalendar(),
        (yesterday - timedelta(days=7)).isocalendar(),
    )
    pages = {
        "patient_list_s": "/",
        "patient_page_s": f"/patients/{clinic.patient_id}",
        "report_s": f"/patients/{clinic.patient_id}/report/{yesterday.isoformat()}",
        "compare_weeks_s": f"/patients/{clinic.patient_id}/compare?a={first_week[0]}-W{first_week[1]:02d}"
        f"&b={second_week[0]}-W{second_week[1]:02d}",
    }
    async with TestClient(TestServer(create_app(settings))) as client:
        page = await (await client.get("/login")).text()
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"email": clinic.email, "password": clinic.password, "csrf_token": token, "next": "/"}
        if (await client.post("/login", data=form, allow_redirects=False)).status != 302:
            raise RuntimeError("the bench could not log in to its own clinic")
        for name, path in pages.items():
            begun = time.perf_counter()
            answer = await client.get(path)
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{path} answered {answer.status}")
            out[name] = round(time.perf_counter() - begun, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=28, help="synthetic days before today (default 28)")
    parser.add_argument("--steps", type=int, default=3000, help="steps a day (default 3000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clinic-bench-") as folder:
        print(json.dumps(asyncio.run(bench(Path(folder), args.days, args.steps))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
