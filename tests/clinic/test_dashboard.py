"""The dashboard over HTTP on both backends: login and sessions, patient list order, patient page, report,
comparison, feedback limit, notes, CSV export and the audit log (every view and change audited)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from clinic_db import ClinicTestDb
from dashboard_world import PASSWORD, SECRET_B, STEPS, World, build_world, csrf_of, dashboard_app, login
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.dashboard import DASHBOARD, csrf
from forcecast.clinic.dashboard.auth import COOKIE
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.schema import audit_log, notes, patients, sessions
from forcecast.clinic.tokens import token_hash

Client = TestClient[web.Request, web.Application]
Body = Callable[[Client, World, AsyncEngine], Awaitable[None]]


@asynccontextmanager
async def served(db: ClinicTestDb) -> AsyncIterator[tuple[Client, World, AsyncEngine]]:
    """The dashboard on a test server over a database with two clinics' data."""
    engine = create_engine(db.url)
    try:
        world = await build_world(engine, datetime.now(UTC).date())
        async with TestClient(TestServer(dashboard_app(engine, db.settings))) as client:
            yield client, world, engine
    finally:
        await engine.dispose()


def run(db: ClinicTestDb, body: Body) -> None:
    """Run a test body against a served dashboard."""

    async def main() -> None:
        async with served(db) as (client, world, engine):
            await body(client, world, engine)

    asyncio.run(main())


async def actions(engine: AsyncEngine, action: str) -> list[Any]:
    async with engine.connect() as conn:
        query = sa.select(audit_log.c.user_id, audit_log.c.object_id, audit_log.c.detail).where(
            audit_log.c.action == action
        )
        return list((await conn.execute(query)).all())


def test_login_then_the_patient_list_in_attention_order(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        first = await client.get("/", allow_redirects=False)
        assert first.status == 302 and first.headers["Location"] == "/login"
        assert await login(client, world.physio_a) == 302
        page = await client.get("/")
        html = await page.text()
        assert page.status == 200
        order = [int(part.split('"', 1)[0]) for part in html.split('data-patient-id="')[1:]]
        assert order == [world.patients_a[c] for c in ("A-FLAG", "A-MISSING", "A-LOWWEAR", "A-FINE")]
        assert "steps 40 below the usual" in html
        assert "no data on 3 of the last days" in html
        assert "worn 3.0 h per day with data" in html
        assert "nothing unusual" in html
        assert SECRET_B not in html and "B-ONE" not in html
        assert page.headers["X-Frame-Options"] == "SAMEORIGIN" and page.headers["Cache-Control"] == "no-store"
        assert len(await actions(engine, "patients.list")) == 1
        assert len(await actions(engine, "login")) == 1

    run(clinic_db, body)


def test_bad_passwords_are_refused_alike_then_throttled(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        assert await login(client, "nobody@a.example", PASSWORD) == 401
        for _ in range(5):
            assert await login(client, world.physio_a, "wrong password!") == 401
        page = await client.get("/login")
        assert "E-mail address or password is wrong" not in await page.text()
        assert await login(client, world.physio_a, PASSWORD) == 429
        assert len(await actions(engine, "login.failed")) == 5
        assert len(await actions(engine, "login.throttled")) == 1
        assert (await client.get("/", allow_redirects=False)).status == 302
        client.session.cookie_jar.clear()
        assert await login(client, world.admin_a) == 302  # another account of the clinic is not throttled

    run(clinic_db, body)


def test_login_form_needs_its_csrf_cookie_and_next_stays_local(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        refused = await client.post("/login", data={"email": world.physio_a, "password": PASSWORD, "csrf_token": "x"})
        assert refused.status == 403
        page = await (await client.get("/login")).text()
        token = csrf_of(page)
        form = {"email": world.physio_a, "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"}
        response = await client.post("/login", data=form, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/"
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/" and not cookie["secure"]
        dashboard = client.app[DASHBOARD]
        dashboard.settings = dataclasses.replace(dashboard.settings, cookie_secure=True)
        client.session.cookie_jar.clear()
        form_page = await client.get("/login")
        token = csrf_of(await form_page.text())
        assert form_page.cookies[csrf.LOGIN_COOKIE]["secure"]  # not sent back over plain HTTP: the test sends it itself
        form = {"email": world.physio_a, "password": PASSWORD, "csrf_token": token, "next": "/"}
        headers = {"Cookie": f"{csrf.LOGIN_COOKIE}={token}"}
        secure = await client.post("/login", data=form, headers=headers, allow_redirects=False)
        assert secure.status == 302 and secure.cookies[COOKIE]["secure"]

    run(clinic_db, body)


def test_login_rotates_the_session_and_logout_ends_it(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        client.session.cookie_jar.update_cookies({COOKIE: "planted-by-someone-else"})
        assert await login(client, world.physio_a) == 302
        second = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
        assert second != "planted-by-someone-else" and len(second) == 43
        again = await client.get("/login", allow_redirects=False)
        assert again.status == 302 and again.headers["Location"] == "/"
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(sessions.c.token_hash))).scalars().all()
        assert stored == [token_hash(second)]
        html = await (await client.get("/")).text()
        assert (await client.post("/logout", allow_redirects=False)).status == 403
        out = await client.post("/logout", data={"csrf_token": csrf_of(html)}, allow_redirects=False)
        assert out.status == 302 and out.headers["Location"] == "/login"
        client.session.cookie_jar.update_cookies({COOKIE: second})
        assert (await client.get("/", allow_redirects=False)).status == 302
        assert len(await actions(engine, "logout")) == 1

    run(clinic_db, body)


def test_sessions_expire_in_the_database(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        assert (await client.get("/", allow_redirects=False)).status == 200
        dashboard = client.app[DASHBOARD]
        later = dashboard.clock() + dashboard.settings.session_lifetime_s + 1
        dashboard.clock = lambda: later
        moved = await client.get("/patients/1", allow_redirects=False)
        assert moved.status == 302 and moved.headers["Location"] == "/login?next=/patients/1"

    run(clinic_db, body)


def test_patient_page_and_the_daily_report(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        pid = world.patients_a["A-FINE"]
        html = await (await client.get(f"/patients/{pid}")).text()
        yesterday = world.today - timedelta(days=1)
        assert 'id="trend"' in html and "data:image/png;base64," in html
        assert f'href="/patients/{pid}/report/{yesterday.isoformat()}"' in html
        assert "Anna Berg" in html and SECRET_B not in html
        report = await client.get(f"/patients/{pid}/report/{yesterday.isoformat()}")
        text = await report.text()
        assert report.status == 200
        for plot in ("stance-curves", "peak-distribution", "load-over-day", "trend", "asymmetry"):
            assert f'id="plot-{plot}"' in text
        assert 'id="card-steps"' in text and f">{STEPS}<" in text
        assert "the clinic&#39;s patient record" in text or "the clinic's patient record" in text
        views = await actions(engine, "report.view")
        assert [(r.object_id, r.detail) for r in views] == [(str(pid), f'{{"day": "{yesterday.isoformat()}"}}')]
        assert len(await actions(engine, "patient.view")) == 1

    run(clinic_db, body)


def test_setting_the_feedback_limit_bumps_the_profile_and_is_audited(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        pid = world.patients_a["A-FLAG"]
        token = csrf_of(await (await client.get(f"/patients/{pid}")).text())
        saved = await client.post(
            f"/patients/{pid}/limit", data={"csrf_token": token, "feedback_limit_bw": "1.4"}, allow_redirects=False
        )
        assert saved.status == 303 and saved.headers["Location"] == f"/patients/{pid}?done=limit"
        page = await (await client.get(saved.headers["Location"])).text()
        assert "Feedback limit saved" in page and "1.40 BW" in page
        for bad in ("abc", "50", "nan"):
            refused = await client.post(f"/patients/{pid}/limit", data={"csrf_token": token, "feedback_limit_bw": bad})
            assert refused.status == 400, bad
        cleared = await client.post(
            f"/patients/{pid}/limit", data={"csrf_token": token, "feedback_limit_bw": ""}, allow_redirects=False
        )
        assert cleared.status == 303
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(patients.c.feedback_limit_bw, patients.c.profile_version).where(patients.c.id == pid)
                )
            ).one()
        assert row.feedback_limit_bw is None and row.profile_version == 3
        changes = await actions(engine, "patient.profile")
        assert [r.object_id for r in changes] == [str(pid), str(pid)] and all(r.user_id for r in changes)
        assert '"feedback_limit_bw": 1.4' in str(changes[0].detail)

    run(clinic_db, body)


def test_notes_are_kept_escaped_and_audited(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        pid = world.patients_a["A-FINE"]
        token = csrf_of(await (await client.get(f"/patients/{pid}")).text())
        text = "Knee pain <script>alert(1)</script> after stairs"
        added = await client.post(f"/patients/{pid}/notes", data={"csrf_token": token, "text": text})
        html = await added.text()
        assert added.status == 200 and "Note added." in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
        assert (await client.post(f"/patients/{pid}/notes", data={"csrf_token": token, "text": "  "})).status == 400
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(notes.c.text))).scalars().all() == [text]
        assert len(await actions(engine, "note.add")) == 1

    run(clinic_db, body)


def test_compare_two_days_and_two_weeks(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        pid = world.patients_a["A-FLAG"]
        a, b = world.today - timedelta(days=2), world.today - timedelta(days=1)
        page = await client.get(f"/patients/{pid}/compare", params={"a": a.isoformat(), "b": b.isoformat()})
        html = await page.text()
        assert page.status == 200
        steps_row = html.split('id="row-steps_per_day"', 1)[1].split("</tr>", 1)[0]
        assert f">{STEPS}<" in steps_row and ">40<" in steps_row and f"{40 - STEPS:+} (" in steps_row
        for key in ("peak_bw_mean", "loading_rate_bw_s_mean", "load_bws_per_day", "asymmetry", "cadence_spm"):
            assert f'id="row-{key}"' in html
        year, week, _ = (world.today - timedelta(days=7)).isocalendar()
        weeks = await client.get(f"/patients/{pid}/compare", params={"a": f"{year}-W{week:02d}", "b": b.isoformat()})
        assert weeks.status == 200 and f"{year}-W{week:02d}" in await weeks.text()
        bad = await client.get(f"/patients/{pid}/compare", params={"a": "last tuesday", "b": b.isoformat()})
        assert bad.status == 400 and "neither a day" in await bad.text()
        assert len(await actions(engine, "compare.view")) == 2

    run(clinic_db, body)


def test_csv_export_of_a_date_range(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        pid = world.patients_a["A-MISSING"]
        first, last = world.today - timedelta(days=5), world.today - timedelta(days=1)
        response = await client.get(f"/patients/{pid}/export.csv", params={"from": str(first), "to": str(last)})
        assert response.status == 200 and response.content_type == "text/csv"
        assert f'filename="A-MISSING_steps_{first}_{last}.csv"' in response.headers["Content-Disposition"]
        table = list(csv.DictReader(io.StringIO(await response.text())))
        assert len(table) == 2 * STEPS  # days 5 and 1 before today; 2, 3 and 4 are missing
        assert {row["patient"] for row in table} == {"A-MISSING"} and {row["leg"] for row in table} == {"l", "r"}
        assert all(0.9 < float(row["peak1_bw"]) < 1.4 for row in table)
        assert table[0]["time"].startswith(str(first))
        export = await actions(engine, "patient.export")
        assert len(export) == 1 and f'"steps": {2 * STEPS}' in str(export[0].detail)
        backwards = await client.get(f"/patients/{pid}/export.csv", params={"from": str(last), "to": str(first)})
        assert backwards.status == 400

    run(clinic_db, body)


def test_audit_log_for_admins_filterable(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        await client.get(f"/patients/{world.patients_a['A-FINE']}")
        assert (await client.get("/audit")).status == 403
        client.session.cookie_jar.clear()
        await login(client, world.admin_a)
        html = await (await client.get("/audit", params={"action": "patient.view"})).text()
        body_rows = html.split("<tbody>", 1)[1]
        assert "physio@a.example" in body_rows and "patient.view" in body_rows and "login" not in body_rows
        everything = await (await client.get("/audit")).text()
        assert "patient.create" in everything and "B-ONE" not in everything and "physio@b.example" not in everything
        assert (await client.get("/audit", params={"from": "yesterday"})).status == 400

    run(clinic_db, body)


def test_missing_things_are_404(clinic_db: ClinicTestDb) -> None:
    async def body(client: Client, world: World, engine: AsyncEngine) -> None:
        await login(client, world.physio_a)
        for path in ("/patients/999999", "/patients/99999999999999", "/patients/1/report/2026-02-30", "/nothing"):
            assert (await client.get(path)).status == 404, path

    run(clinic_db, body)
