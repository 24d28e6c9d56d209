"""The physiotherapist's dashboard of the clinic server: login, patient list, reports, limits, notes, audit.

:func:`setup` adds it to the server's aiohttp application: the session and security middlewares, the pages
(:mod:`.routes`), login and logout (:mod:`.auth`) and the stylesheet. Pages are Jinja2 templates with
autoescaping (package data under ``templates/``); no JavaScript framework, no external resource.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard import auth, routes
from forcecast.clinic.dashboard.state import DASHBOARD, Dashboard, DashboardOptions, load_options
from forcecast.clinic.web_keys import ENGINE

__all__ = ["DASHBOARD", "Dashboard", "DashboardOptions", "load_options", "setup"]


def setup(
    app: web.Application,
    settings: ClinicSettings,
    engine: AsyncEngine | None = None,
    options: DashboardOptions | None = None,
    clock: Callable[[], float] = time.time,
) -> Dashboard:
    """Add the dashboard to a clinic server application (before it starts).

    Parameters
    ----------
    app
        The server's application (its router gets the dashboard's routes, its middlewares the session check).
    settings
        The server's settings (cookie security, session lifetime).
    engine
        The database engine; None: the application's (``app[ENGINE]``, set by
        :func:`~forcecast.clinic.app.create_app`).
    options
        The dashboard's own knobs (time zone, login throttling, attention thresholds).
    clock
        Unix seconds now (tests move it).

    Returns
    -------
    Dashboard
        What the handlers share (also ``app[DASHBOARD]``).
    """
    dashboard = Dashboard(app[ENGINE] if engine is None else engine, settings, options or DashboardOptions(), clock)
    app[DASHBOARD] = dashboard
    app.middlewares.append(auth.security_headers)
    app.middlewares.append(auth.session_middleware)
    auth.add_routes(app)
    routes.add_routes(app)
    app.router.add_static("/static/", str(files("forcecast.clinic.dashboard") / "static"), name="static")
    return dashboard
