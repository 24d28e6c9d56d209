"""The clinic's async database engine: one URL, PostgreSQL (asyncpg) or SQLite (aiosqlite).

A URL is given as people write it (``postgresql://user:pw@host/db``, ``sqlite:///path/clinic.db``) and gets its
async driver here: :func:`async_url`. SQLite connections run with foreign keys on, WAL and a busy timeout,
so several server processes can share one file on one machine (PostgreSQL is the answer beyond that).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from forcecast.edge.errors import ForcecastValueError

DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
"""Backend name → the async driver the clinic uses with it."""
SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseUrlError(ForcecastValueError):
    """A database URL the clinic cannot use (not PostgreSQL or SQLite, or not a URL)."""

    reason = "bad_database_url"


def async_url(url: str | URL) -> URL:
    """The URL with the clinic's async driver (``postgresql://`` → ``postgresql+asyncpg://`` ...).

    Raises
    ------
    DatabaseUrlError
        If it is not a URL, or names a database other than PostgreSQL or SQLite.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"database url {str(url)!r} is not a URL ({exc})") from None
    backend = parsed.get_backend_name()
    if backend not in DRIVERS:
        raise DatabaseUrlError(
            f"database url {parsed.render_as_string(hide_password=True)!r}: backend {backend!r} is not supported; "
            "use postgresql://... or sqlite:///path"
        )
    return parsed.set(drivername=DRIVERS[backend])


def backend_of(url: str | URL) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    return async_url(url).get_backend_name()


def create_engine(url: str | URL, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine for a clinic database URL.

    Parameters
    ----------
    url
        PostgreSQL or SQLite URL, with or without its async driver.
    pool_size
        Connections each process keeps to PostgreSQL (as many again may open under load).
    echo
        Log every statement (debugging).
    """
    target = async_url(url)
    options: dict[str, Any] = {"echo": echo}
    if target.get_backend_name() == "postgresql":
        options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_timeout=120)
    engine = create_async_engine(target, **options)
    if target.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()
