"""What every part of the clinic's web application shares through the aiohttp ``Application``.

``app[ENGINE]`` is the process's database engine (one connection pool per process, made by
:func:`forcecast.clinic.app.create_app` and disposed when the application stops); ``app[SETTINGS]`` its settings.
Handlers keep nothing else between requests: several processes can serve one database.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.config import ClinicSettings

ENGINE = web.AppKey("forcecast_clinic_engine", AsyncEngine)
SETTINGS = web.AppKey("forcecast_clinic_settings", ClinicSettings)
