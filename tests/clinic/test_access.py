"""Access control over every route of the clinic server (enumerated from its router, not listed by hand).

- A user of clinic A who puts clinic B's ids (or made-up ids) into every path parameter of every route, with
  every method, gets 404/403 and never a byte of B's data; B's data is unchanged afterwards.
- Without a session, every dashboard route redirects to the login page (GET, HEAD) or is refused (401), and
  the sync API answers 401.
- A state-changing request without the session's CSRF token, or with another one, is refused (403) and
  changes nothing.
Both backends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from clinic_db import ClinicTestDb
from dashboard_world import SECRET_B, World, build_world, csrf_of, login
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.app import create_app
from forcecast.clinic.dashboard.auth import is_public
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.schema import audit_log, notes, patients, sessions

Client = TestClient[web.Request, web.Application]
PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
RANDOM_PATIENTS = (424242, 2**31 + 5)


@dataclass(frozen=True)
class Route:
    """One route of the application: method and path template (``{name}`` for each parameter)."""

    method: str
    template: str

    @property
    def parameters(self) -> list[str]:
        """The names of its path parameters."""
        return PARAMETER.findall(self.template)

    def path(self, values: dict[str, str]) -> str:
        """The template with each parameter replaced."""
        return PARAMETER.sub(lambda m: values[m.group(1)], self.template)


def every_route(app: web.Application) -> list[Route]:
    """Every (method, path template) the router serves; a static folder as one made-up file under it."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:  # a static folder
            template = str(info["prefix"]).rstrip("/") + "/no-such-file.css"
        else:
            template = str(info.get("formatter") or info.get("path"))
        found.add(Route(route.method, template))
    return sorted(found, key=lambda r: (r.template == "/logout", r.template, r.method))


def forbidden_texts(world: World) -> list[str]:
    """What of clinic B must appear in no answer to clinic A."""
    return [SECRET_B, "B-ONE", world.physio_b, world.device_b, "Clinic B"]


FORM = {"feedback_limit_bw": "2.0", "text": "a note that must not land", "email": "x@y.z", "password": "p"}


async def request(client: Client, route: Route, path: str, csrf: str | None) -> tuple[int, str]:
    """Send one request the way the dashboard's forms would (form fields and token for state changes)."""
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    params = {"a": yesterday, "b": yesterday, "from": yesterday, "to": yesterday}
    data: dict[str, str] | None = None
    if route.method not in ("GET", "HEAD"):
        data = dict(FORM) | ({"csrf_token": csrf} if csrf is not None else {})
    response = await client.request(route.method, path, params=params, data=data, allow_redirects=False)
    return response.status, await response.text()


@asynccontextmanager
async def served(db: ClinicTestDb) -> AsyncIterator[tuple[Client, World, AsyncEngine, web.Application]]:
    """The whole clinic server (sync API and dashboard) over two clinics' data."""
    engine = create_engine(db.url)
    world = await build_world(engine, datetime.now(UTC).date())
    app = create_app(db.settings, create_engine(db.url))
    try:
        async with TestClient(TestServer(app)) as client:
            yield client, world, engine, app
    finally:
        await engine.dispose()


async def b_state(engine: AsyncEngine, world: World) -> tuple[Any, ...]:
    """Everything a request of clinic A could have changed of clinic B's patient."""
    async with engine.connect() as conn:
        patient = (
            await conn.execute(
                sa.select(patients.c.feedback_limit_bw, patients.c.profile_version).where(
                    patients.c.id == world.patient_b
                )
            )
        ).one()
        n_notes = (
            await conn.execute(sa.select(sa.func.count()).where(notes.c.patient_id == world.patient_b))
        ).scalar_one()
        b_audit = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    audit_log.c.clinic_id == world.clinic_b, audit_log.c.action != "sync.session"
                )
            )
        ).scalar_one()
    return tuple(patient), n_notes, b_audit


def test_clinic_a_can_reach_nothing_of_clinic_b_on_any_route(clinic_db: ClinicTestDb) -> None:
    async def main() -> None:
        async with served(clinic_db) as (client, world, engine, app):
            routes = every_route(app)
            assert {r.template for r in routes} >= {
                "/",
                "/patients/{patient_id}",
                "/patients/{patient_id}/report/{day}",
                "/patients/{patient_id}/limit",
                "/audit",
            }
            before = await b_state(engine, world)
            yesterday = (world.today - timedelta(days=1)).isoformat()
            tried = 0
            for email in (world.physio_a, world.admin_a):
                client.session.cookie_jar.clear()
                assert await login(client, email) == 302
                csrf = csrf_of(await (await client.get("/")).text())
                for route in routes:
                    ids = [world.patient_b, *RANDOM_PATIENTS] if "patient_id" in route.parameters else [0]
                    for patient_id in ids:
                        path = route.path({"patient_id": str(patient_id), "day": yesterday})
                        status, text = await request(client, route, path, csrf)
                        tried += 1
                        where = f"{email} {route.method} {path}"
                        for secret in forbidden_texts(world):
                            assert secret not in text, f"{where} answered {status} with clinic B's {secret!r}"
                        if route.parameters:
                            assert status in (403, 404), f"{where} answered {status}"
                        elif route.template.startswith("/api/"):
                            assert status == 401, f"{where} answered {status}"
                for template in sorted({r.template for r in routes}):
                    path = Route("GET", template).path({"patient_id": str(world.patient_b), "day": yesterday})
                    for method in ("PUT", "DELETE", "PATCH"):
                        status, text = await request(client, Route(method, template), path, csrf)
                        tried += 1
                        assert status in (401, 403, 404, 405), f"{email} {method} {path} answered {status}"
                        assert not any(secret in text for secret in forbidden_texts(world)), f"{method} {path}"
            assert tried > 80
            assert await b_state(engine, world) == before

    asyncio.run(main())


def test_without_a_session_every_route_is_refused(clinic_db: ClinicTestDb) -> None:
    async def main() -> None:
        async with served(clinic_db) as (client, world, engine, app):
            yesterday = (world.today - timedelta(days=1)).isoformat()
            before = await b_state(engine, world)
            checked = 0
            for route in every_route(app):
                path = route.path({"patient_id": str(world.patients_a["A-FINE"]), "day": yesterday})
                status, text = await request(client, route, path, "made-up")
                where = f"{route.method} {path}"
                if route.template.startswith("/api/"):
                    assert status == 401, where
                elif is_public(route.template):
                    continue
                elif route.method in ("GET", "HEAD"):
                    assert status == 302, where
                    response = await client.request(route.method, path, allow_redirects=False)
                    assert response.headers["Location"].startswith("/login"), where
                else:
                    assert status == 401, where
                for secret in [*forbidden_texts(world), "A-FINE", "Anna Berg"]:
                    assert secret not in text, where
                checked += 1
            assert checked >= 10
            assert await b_state(engine, world) == before
            async with engine.connect() as conn:
                assert (await conn.execute(sa.select(sa.func.count()).select_from(sessions))).scalar_one() == 0

    asyncio.run(main())


def test_state_changes_without_the_sessions_csrf_token_are_refused(clinic_db: ClinicTestDb) -> None:
    async def main() -> None:
        async with served(clinic_db) as (client, world, engine, app):
            assert await login(client, world.physio_a) == 302
            own = world.patients_a["A-FINE"]
            posts = [r for r in every_route(app) if r.method == "POST" and not is_public(r.template)]
            assert {r.template for r in posts} >= {
                "/logout",
                "/patients/{patient_id}/limit",
                "/patients/{patient_id}/notes",
            }
            async with engine.connect() as conn:
                before = (
                    await conn.execute(
                        sa.select(patients.c.feedback_limit_bw, patients.c.profile_version).where(patients.c.id == own)
                    )
                ).one()
            for route in posts:
                path = route.path({"patient_id": str(own)})
                for token in (None, "", "a-token-of-no-session-at-all"):
                    status, text = await request(client, route, path, token)
                    assert status == 403 and "CSRF" in text, f"{route.method} {path} with {token!r}: {status}"
                header = await client.post(path, data=FORM, headers={"X-CSRF-Token": "wrong"}, allow_redirects=False)
                assert header.status == 403
            async with engine.connect() as conn:
                after = (
                    await conn.execute(
                        sa.select(patients.c.feedback_limit_bw, patients.c.profile_version).where(patients.c.id == own)
                    )
                ).one()
                assert (await conn.execute(sa.select(sa.func.count()).select_from(notes))).scalar_one() == 0
            assert tuple(after) == tuple(before)
            assert (
                await client.get("/", allow_redirects=False)
            ).status == 200  # still logged in: logout was refused too
            csrf = csrf_of(await (await client.get("/")).text())
            by_header = await client.post(
                f"/patients/{own}/notes",
                data={"text": "by fetch"},
                headers={"X-CSRF-Token": csrf},
                allow_redirects=False,
            )
            assert by_header.status == 303

    asyncio.run(main())
