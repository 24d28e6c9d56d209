"""The hand-written migrations build exactly schema.py's tables, on SQLite and PostgreSQL; serve refuses older DBs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from clinic_db import ClinicTestDb
from sqlalchemy import Connection, text

from forcecast.clinic.db import schema
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import (
    SchemaVersionError,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, schema.metadata))


async def _migrate_and_compare(url: str) -> tuple[Any, list[Any], str | None]:
    engine = create_engine(url)
    try:
        outcome = await upgrade(engine)
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
        again = await upgrade(engine)
        assert not again.changed
        return outcome, diff, await current_revision(engine)
    finally:
        await engine.dispose()


def test_migrate_an_empty_database_gives_exactly_the_schema(empty_clinic_db: ClinicTestDb) -> None:
    outcome, diff, revision = asyncio.run(_migrate_and_compare(empty_clinic_db.url))
    assert outcome.before is None and outcome.changed
    assert revision == head_revision()
    assert diff == []


def test_the_comparison_sees_a_difference(empty_clinic_db: ClinicTestDb) -> None:
    """The schema check is real: a column the migrations did not make shows up as a difference."""

    async def scenario() -> list[Any]:
        engine = create_engine(empty_clinic_db.url)
        try:
            await upgrade(engine)
            async with engine.begin() as connection:
                await connection.execute(text("ALTER TABLE notes ADD COLUMN stray INTEGER"))
            async with engine.connect() as connection:
                return await connection.run_sync(_diff)
        finally:
            await engine.dispose()

    diff = asyncio.run(scenario())
    assert any(change[0] == "remove_column" and change[2] == "notes" for change in diff), diff


def test_an_unmigrated_or_unknown_database_is_refused_by_name(empty_clinic_db: ClinicTestDb) -> None:
    async def scenario() -> tuple[str, str]:
        engine = create_engine(empty_clinic_db.url)
        try:
            with pytest.raises(SchemaVersionError) as empty:
                await require_current(engine)
            await upgrade(engine)
            assert await require_current(engine) == head_revision()
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            with pytest.raises(SchemaVersionError) as newer:
                await upgrade(engine)
            return str(empty.value), str(newer.value)
        finally:
            await engine.dispose()

    empty, newer = asyncio.run(scenario())
    assert "forcecast clinic migrate" in empty and "no forcecast schema" in empty
    assert "'9999'" in newer and "newer" in newer
