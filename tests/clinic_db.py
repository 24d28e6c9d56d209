"""Clinic databases for tests, on SQLite and on PostgreSQL (every server test runs on both).

A pytest plugin (``pytest_plugins`` in tests/conftest.py: one module name for every conftest would clash in the
type check). Fixtures, usable by every test:

``clinic_db``
    A migrated, empty clinic database (:class:`ClinicTestDb`: backend, URL, settings), parametrised over
    ``sqlite`` and ``postgresql``. SQLite: a new file per test. PostgreSQL: one throw-away database per test
    session (random name, dropped at the end), emptied before each test.
``empty_clinic_db``
    The same, but never migrated (a new database per test, also on PostgreSQL): for migration tests.

PostgreSQL comes from ``FORCECAST_TEST_POSTGRES_URL`` (a role that may create databases, e.g.
``postgresql://forcecast:forcecast@127.0.0.1:5432/postgres``, as ``.ci/run`` exports it). Without it the
PostgreSQL half skips, unless ``FORCECAST_REQUIRE_POSTGRES=1`` (then it fails: CI must not skip it silently).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from forcecast.clinic.config import ClinicSettings

POSTGRES_ENV = "FORCECAST_TEST_POSTGRES_URL"
REQUIRE_ENV = "FORCECAST_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class ClinicTestDb:
    """A test's clinic database."""

    backend: str
    url: str
    settings: ClinicSettings


def postgres_admin_url() -> str:
    """The PostgreSQL server for tests, or a skip (a failure when PostgreSQL is required)."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        message = f"{POSTGRES_ENV} is not set (run bash .ci/postgres.sh and export it)"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}) but {message}")
        pytest.skip(f"PostgreSQL tests skipped: {message}")
    return url


async def _admin(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_database(admin_url: str) -> str:
    """A new, empty PostgreSQL database (random name) on the admin URL's server; returns its URL."""
    from sqlalchemy.engine import make_url

    name = f"forcecast_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database :func:`create_database` made (its connections are closed by force)."""
    from sqlalchemy.engine import make_url

    from forcecast.clinic.loadtest import drop_database as drop

    name = make_url(url).database
    assert name is not None
    asyncio.run(drop(admin_url, name))


async def _migrate(url: str) -> None:
    from forcecast.clinic.db.engine import create_engine
    from forcecast.clinic.db.migrate import upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _empty(url: str) -> None:
    from forcecast.clinic.db import schema
    from forcecast.clinic.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            names = ", ".join(table.name for table in schema.metadata.sorted_tables)
            await connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_session_db() -> Iterator[str]:
    """This session's migrated PostgreSQL database (dropped at the end of the session)."""
    admin = postgres_admin_url()
    url = create_database(admin)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        drop_database(admin, url)


@pytest.fixture(params=BACKENDS)
def clinic_db(request: pytest.FixtureRequest, tmp_path: Path) -> ClinicTestDb:
    """A migrated, empty clinic database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'clinic.db'}"
        asyncio.run(_migrate(url))
    else:
        url = request.getfixturevalue("postgres_session_db")
        asyncio.run(_empty(url))
    return ClinicTestDb(request.param, url, ClinicSettings(database_url=url, port=0, cookie_secure=False))


@pytest.fixture(params=BACKENDS)
def empty_clinic_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClinicTestDb]:
    """A clinic database that was never migrated (a new one per test on both backends)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        yield ClinicTestDb("sqlite", url, ClinicSettings(database_url=url, port=0, cookie_secure=False))
        return
    admin = postgres_admin_url()
    url = create_database(admin)
    try:
        yield ClinicTestDb("postgresql", url, ClinicSettings(database_url=url, port=0, cookie_secure=False))
    finally:
        drop_database(admin, url)
