"""The dashboard in a real browser (Debian's Chromium under WebDriver): a wrong password refused, login, the
patient list in attention order, a patient page and its daily report with every plot drawn, the feedback
limit set through the form (saved, profile version bumped, audited) and the comparison of two weeks.

Screenshots go to the test's folder; with ``FORCECAST_SCREENSHOTS=1`` to ``docs/img/clinic-*.png`` (the README's).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from clinic_db import ClinicTestDb
from dashboard_world import PASSWORD, World, build_world
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from webdriver import chromium_session, click_and_load, save_screenshot, wait_for

from forcecast.clinic.app import create_app
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.schema import audit_log, patients

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


class ServedClinic:
    """The whole clinic server in a thread of its own (Selenium blocks the test's thread), over two clinics."""

    def __init__(self, db: ClinicTestDb, days: int) -> None:
        self.db = db
        self.days = days
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.world: World | None = None
        self.url = ""
        self.error: BaseException | None = None
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the test's thread
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        engine = create_engine(self.db.url)
        try:
            self.world = await build_world(engine, datetime.now(UTC).date(), self.days)
        finally:
            await engine.dispose()
        self._runner = web.AppRunner(create_app(self.db.settings), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> ServedClinic:
        self.thread.start()
        self.ready.wait(120)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def clinic(clinic_db: ClinicTestDb) -> Iterator[ServedClinic]:
    """The server with 21 days of data (enough for a trend and two whole ISO weeks)."""
    with ServedClinic(clinic_db, 21) as served:
        yield served


def shot(driver: WebDriver, name: str, tmp_path: Path, height: int | None = None) -> Path:
    """A screenshot of the page (the whole page up to ``height`` pixels) for the README or the test's folder."""
    if height is not None:
        full = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1280, min(max(full, 700), height) + 140)  # the window's frame takes ~140 px
    folder = DOCS_IMG if os.environ.get("FORCECAST_SCREENSHOTS") else tmp_path
    return save_screenshot(driver, folder / f"clinic-{name}.png")  # type: ignore[arg-type]


def log_in(driver: WebDriver, url: str, email: str, password: str) -> None:
    driver.get(url + "/login")
    driver.find_element(By.ID, "email").clear()
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password)
    click_and_load(driver, driver.find_element(By.ID, "login-submit"))


async def _limit_and_audit(url: str, patient_id: int) -> tuple[float | None, int, list[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(patients.c.feedback_limit_bw, patients.c.profile_version).where(
                        patients.c.id == patient_id
                    )
                )
            ).one()
            actions = (
                await conn.execute(
                    sa.select(audit_log.c.action)
                    .where(audit_log.c.object_id == str(patient_id))
                    .order_by(audit_log.c.id)
                )
            ).scalars()
            return row.feedback_limit_bw, row.profile_version, list(actions)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("clinic_db", ["sqlite"], indirect=True)  # the HTTP tests cover PostgreSQL; ~60 s budget
def test_dashboard_in_chromium(clinic: ServedClinic, clinic_db: ClinicTestDb, tmp_path: Path) -> None:
    world = clinic.world
    assert world is not None
    with chromium_session(1280, 900) as driver:
        log_in(driver, clinic.url, world.physio_a, "not the password")
        error = wait_for(driver).until(ec.visibility_of_element_located((By.ID, "login-error")))
        assert "wrong" in error.text and driver.current_url.endswith("/login")

        log_in(driver, clinic.url, world.physio_a, PASSWORD)
        table = wait_for(driver).until(ec.presence_of_element_located((By.ID, "patient-list")))
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        order = [int(str(row.get_attribute("data-patient-id"))) for row in rows]
        assert order == [world.patients_a[c] for c in ("A-FLAG", "A-MISSING", "A-LOWWEAR", "A-FINE")]
        assert "below the usual" in rows[0].text and "no data on 3" in rows[1].text and "worn 3.0 h" in rows[2].text
        shot(driver, "patients", tmp_path, 900)

        driver.set_window_size(1280, 900)
        click_and_load(driver, rows[0].find_element(By.TAG_NAME, "a"))
        field = wait_for(driver).until(ec.presence_of_element_located((By.ID, "limit")))
        field.clear()
        field.send_keys("1.35")
        click_and_load(driver, driver.find_element(By.ID, "limit-submit"))
        message = wait_for(driver).until(ec.visibility_of_element_located((By.ID, "message")))
        assert "Feedback limit saved" in message.text
        assert driver.find_element(By.ID, "current-limit").text == "1.35 BW"
        driver.find_element(By.ID, "note").send_keys(
            "Less walking since Friday: knee pain after the stairs <b>test</b>"
        )
        click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#note-form button"))
        notes = wait_for(driver).until(ec.presence_of_element_located((By.ID, "notes")))
        assert "knee pain after the stairs <b>test</b>" in notes.text  # shown as text, not markup
        assert driver.execute_script("return document.querySelector('#trend img').naturalWidth") > 0
        shot(driver, "patient", tmp_path, 1800)

        click_and_load(driver, driver.find_element(By.ID, "latest-report"))
        wait_for(driver).until(ec.presence_of_element_located((By.ID, "plot-stance-curves")))
        widths = driver.execute_script("return [...document.querySelectorAll('figure img')].map(i => i.naturalWidth)")
        assert len(widths) >= 5 and all(w > 0 for w in widths)
        shot(driver, "report", tmp_path, 1900)

        pid = world.patients_a["A-FLAG"]
        driver.set_window_size(1280, 900)
        last_week = world.today - timedelta(days=7)
        weeks = [f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in (last_week - timedelta(days=7), last_week)]
        driver.get(f"{clinic.url}/patients/{pid}/compare?a={weeks[0]}&b={weeks[1]}")
        wait_for(driver).until(ec.presence_of_element_located((By.ID, "compare")))
        assert driver.find_element(By.ID, "row-steps_per_day").text.startswith("Steps per day")
        assert driver.execute_script("return document.querySelector('#compare-plot img').naturalWidth") > 0
        shot(driver, "compare", tmp_path, 1400)

    limit, version, actions = asyncio.run(_limit_and_audit(clinic_db.url, pid))
    assert limit == 1.35 and version == 2
    assert {"patient.view", "patient.profile", "note.add", "report.view", "compare.view"} <= set(actions)
