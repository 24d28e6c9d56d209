"""Schema migrations of the clinic database, run from code (Alembic, scripts in ``migrations/versions``).

``forcecast clinic migrate`` upgrades an empty or older database to the newest schema (:func:`upgrade`);
``forcecast clinic serve`` refuses a database that is not at that schema (:func:`require_current`) unless it is
told to migrate first. Both work the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.edge.errors import ForcecastRuntimeError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaVersionError(ForcecastRuntimeError):
    """The database is not at the schema this software serves (never migrated, older, or newer)."""

    reason = "schema_not_current"


@dataclass(frozen=True)
class MigrationOutcome:
    """What :func:`upgrade` did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        """Whether any migration ran."""
        return self.before != self.after


def alembic_config() -> Config:
    """Alembic's configuration for the clinic's migration scripts (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this software knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise ForcecastRuntimeError(f"{MIGRATIONS}: no migration scripts found (a broken install)")
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's schema revision (None: never migrated, e.g. an empty database)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> MigrationOutcome:
    """Migrate the database to the newest schema, in one transaction (nothing changes if a step fails).

    Raises
    ------
    SchemaVersionError
        If the database is at a revision this software does not know (made by a newer forcecast).
    """
    before = await current_revision(engine)
    _refuse_unknown(before, engine)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
    return MigrationOutcome(before, head_revision())


def _refuse_unknown(revision: str | None, engine: AsyncEngine) -> None:
    if revision is None:
        return
    scripts = ScriptDirectory.from_config(alembic_config())
    if revision not in {script.revision for script in scripts.walk_revisions()}:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaVersionError(
            f"{where}: schema revision {revision!r} is unknown to this forcecast (made by a newer one?); "
            "update forcecast on this server"
        )


async def require_current(engine: AsyncEngine) -> str:
    """The database's revision if it is the newest; else a clear refusal.

    Raises
    ------
    SchemaVersionError
        Naming the database, its revision and the command that migrates it.
    """
    revision = await current_revision(engine)
    _refuse_unknown(revision, engine)
    head = head_revision()
    if revision != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no forcecast schema yet" if revision is None else f"is at schema revision {revision}"
        raise SchemaVersionError(
            f"{where} {state}, this forcecast serves revision {head}: run 'forcecast clinic migrate' "
            "(or serve with --migrate)"
        )
    return revision
