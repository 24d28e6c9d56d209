"""The clinic's web application: one factory, :func:`create_app`, for every server process and every test.

The application holds a database engine (a connection pool) and the settings, nothing else between requests
(sessions, throttling and audit live in the database), so any number of processes can serve one database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic import dashboard, sync_api
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard import DashboardOptions
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import require_current
from forcecast.clinic.web_keys import ENGINE, SETTINGS


def create_app(
    settings: ClinicSettings, engine: AsyncEngine | None = None, options: DashboardOptions | None = None
) -> web.Application:
    """The clinic's aiohttp application: the sync API, ``/healthz`` and the dashboard.

    Parameters
    ----------
    settings
        The server's settings (database, limits, cookies).
    engine
        A database engine to use (tests); None: one is made from ``settings.database_url``. Either way the
        application disposes of it when it stops.
    options
        The dashboard's options (time zone, login throttling, attention thresholds: the ``[dashboard]`` table of
        the server's TOML file); None: the defaults.

    The database must be at the newest schema: the application refuses to start otherwise
    (:class:`~forcecast.clinic.db.migrate.SchemaVersionError`, naming the command that migrates it).
    """
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[ENGINE] = engine if engine is not None else create_engine(settings.database_url, settings.pool_size)
    app.cleanup_ctx.append(_database)
    app.router.add_get("/healthz", healthz)
    sync_api.setup(app)
    dashboard.setup(app, settings, options=options)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    try:
        await require_current(engine)
        yield
    finally:
        await engine.dispose()


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 ``{"status": "ok"}`` when the database answers, 503 otherwise (for the proxy)."""
    try:
        async with request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy"; the proxy only needs the status
        return web.json_response({"status": "database unavailable", "detail": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok"})
