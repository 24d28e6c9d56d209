"""Running the clinic server: check (or migrate) the schema, then serve on one port with one or more processes.

Several processes share the port through ``SO_REUSEPORT`` (Linux): the kernel spreads connections over them.
Each process builds its own application and connection pool; nothing else is shared, since everything that
matters between requests is in the database. The first process supervises the others: when it stops (Ctrl-C,
``systemctl stop``), they stop; a worker whose supervisor died (``kill -9``) exits by itself within a second.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy.engine import make_url

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard import DashboardOptions
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import require_current, upgrade
from forcecast.edge.errors import UsageError
from forcecast.host_app.analytics import zone

log = logging.getLogger(__name__)
PARENT_POLL_S = 1.0


async def prepare_database(settings: ClinicSettings, migrate: bool) -> str:
    """Check that the database is at this software's schema, migrating it first if asked; returns the revision.

    Raises
    ------
    SchemaVersionError
        If it is not, and ``migrate`` is False (the message names the command that migrates it).
    """
    engine = create_engine(settings.database_url)
    try:
        if migrate:
            await upgrade(engine)
        return await require_current(engine)
    finally:
        await engine.dispose()


def serve(
    settings: ClinicSettings, migrate: bool = False, verbose: bool = False, options: DashboardOptions | None = None
) -> None:
    """Serve until stopped (SIGINT/SIGTERM), with ``settings.processes`` processes on one port.

    ``options`` are the dashboard's (the ``[dashboard]`` table of the settings file; None: the defaults).
    """
    options = options or DashboardOptions()
    if settings.processes > 1 and settings.port == 0:
        raise UsageError("several processes need a fixed --port (0 would give each its own port)")
    revision = asyncio.run(prepare_database(settings, migrate))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s")
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    print(
        f"forcecast clinic: serving http://{settings.host}:{settings.port} ({settings.processes} process"
        f"{'es' if settings.processes > 1 else ''}, database {where} at revision {revision}); "
        f"users reach it at {settings.base_url}; days start at midnight in {_zone_name(options)}",
        flush=True,
    )
    workers = []
    context = multiprocessing.get_context("spawn")
    for _ in range(settings.processes - 1):
        worker = context.Process(target=_worker, args=(settings, os.getpid(), verbose, options), daemon=True)
        worker.start()
        workers.append(worker)
    try:
        _run(settings, verbose, None, options)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(5)


def _zone_name(options: DashboardOptions) -> str:
    if options.timezone:
        return options.timezone
    return f"the server's time zone ({zone(None)}; set [dashboard] timezone)"


def _worker(settings: ClinicSettings, supervisor: int, verbose: bool, options: DashboardOptions) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops the workers
    _run(settings, verbose, supervisor, options)


def _run(settings: ClinicSettings, verbose: bool, supervisor: int | None, options: DashboardOptions) -> None:
    app = create_app(settings, options=options)
    if supervisor is not None:
        app.cleanup_ctx.append(_orphan_watch(supervisor))
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=settings.processes > 1,
        access_log=logging.getLogger("aiohttp.access") if verbose else None,
        print=None,
        handle_signals=True,
    )


def _orphan_watch(supervisor: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that ends this worker once its supervisor (the first process) is gone."""

    async def watch(app: web.Application) -> AsyncIterator[None]:
        async def poll() -> None:
            while os.getppid() == supervisor:
                await asyncio.sleep(PARENT_POLL_S)
            log.warning("clinic worker %s: supervisor %s is gone, stopping", os.getpid(), supervisor)
            sys.stdout.flush()
            os._exit(0)

        task = asyncio.create_task(poll())
        yield
        task.cancel()

    return watch
