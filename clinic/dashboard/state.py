"""What the dashboard's handlers share: the engine, settings, options, templates and clock (no per-user state).

Everything that matters between requests (sessions, login throttling, audit) is in the database, so several
server processes can serve one clinic behind a proxy; this object only holds what every process builds the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard.attention import AttentionConfig
from forcecast.clinic.dashboard.queries import SessionUser
from forcecast.edge.config import from_dict, read_toml
from forcecast.host_app.analytics import zone


@dataclass(frozen=True)
class DashboardOptions:
    """The dashboard's own knobs (the server's are :class:`~forcecast.clinic.config.ClinicSettings`).

    Attributes
    ----------
    timezone
        IANA name of the clinic's time zone (where days start); empty: the server's.
    login_failures
        Failed logins of one account within ``login_window_s`` after which its logins are refused until the
        window has passed (stored as audit rows, so it holds across processes).
    login_window_s
        The throttling window.
    attention
        Thresholds of the patient list's order.
    """

    timezone: str = ""
    login_failures: int = 5
    login_window_s: float = 900.0
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self) -> None:
        if self.login_failures < 1 or self.login_window_s <= 0:
            raise ValueError(
                f"login_failures must be ≥ 1 and login_window_s > 0, not {self.login_failures}, {self.login_window_s}"
            )
        try:
            zone(self.timezone or None)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not an IANA time zone (e.g. 'Europe/Berlin'; empty: the server's)"
            ) from None


def load_options(path: Path | str | None) -> DashboardOptions:
    """The dashboard's options from the ``[dashboard]`` table of the server's TOML file (defaults without one).

    Parameters
    ----------
    path
        The file ``forcecast clinic serve --config`` reads (its ``[clinic]`` table is the server's settings);
        None: the defaults.

    Raises
    ------
    ConfigError
        Naming the file and the key (an unknown key, a value out of range, an unknown time zone).
    """
    if path is None:
        return DashboardOptions()
    data = read_toml(Path(path))
    if "dashboard" not in data:
        return DashboardOptions()
    return from_dict(DashboardOptions, data["dashboard"], f"{path}: [dashboard] ")


@dataclass
class Dashboard:
    """The dashboard of one server process."""

    engine: AsyncEngine
    settings: ClinicSettings
    options: DashboardOptions = field(default_factory=DashboardOptions)
    clock: Callable[[], float] = time.time
    """Unix seconds now (tests move it)."""

    def __post_init__(self) -> None:
        self.tz: tzinfo = zone(self.options.timezone or None)
        self.templates = Environment(
            loader=PackageLoader("forcecast.clinic.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["clock"] = self.local_time

    def today(self) -> date:
        """The clinic's date now."""
        return datetime.fromtimestamp(self.clock(), self.tz).date()

    def local_time(self, t: float | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
        """A Unix time as the clinic's local time."""
        return "–" if t is None else datetime.fromtimestamp(t, self.tz).strftime(pattern)

    def render(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        """A page: the template with the logged-in user (if any) and their CSRF token."""
        user = request.get(USER)
        page = self.templates.get_template(template).render(
            user=user, csrf_token=user.csrf_token if user else "", path=request.path, **values
        )
        response = web.Response(text=page, status=status, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response


DASHBOARD = web.AppKey("forcecast_dashboard", Dashboard)
USER = web.RequestKey("forcecast_user", SessionUser)


def dashboard_of(request: web.Request) -> Dashboard:
    """The dashboard serving this request."""
    return request.app[DASHBOARD]


def user_of(request: web.Request) -> SessionUser:
    """The logged-in user (the session middleware has refused the request otherwise)."""
    user = request.get(USER)
    if user is None:
        raise web.HTTPUnauthorized(text="log in first")
    return user
