"""The clinic server's settings: a frozen dataclass from a TOML file's ``[clinic]`` table and command-line overrides.

Example ``clinic.toml``::

    [clinic]
    database_url = "postgresql://forcecast:secret@127.0.0.1/forcecast_clinic"
    host = "127.0.0.1"
    port = 8750
    public_base_url = "https://clinic.example.org"

Every key is optional; without a file the server runs on an SQLite file in the working folder
(:data:`DEFAULT_DATABASE_URL`), on the loopback interface, as the README's two commands do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forcecast.edge.config import ConfigError, bounded, check_bounds, load_config

DEFAULT_DATABASE_URL = "sqlite:///forcecast-clinic.db"
DEFAULT_PORT = 8750
MIB = 1024 * 1024


@dataclass(frozen=True)
class ClinicSettings:
    """Everything a clinic server process needs; all processes behind one proxy share one of these.

    Attributes
    ----------
    database_url
        ``postgresql://user:password@host:port/database`` (production) or ``sqlite:///path`` (embedded).
    host, port
        Where the process listens (behind a TLS proxy: the loopback interface).
    public_base_url
        The address users and hosts reach through the proxy (``https://...``); links and the docs use it.
        Empty: ``http://host:port``.
    cookie_secure
        Session cookies only over HTTPS (turn off only for a loopback demo without a proxy).
    session_lifetime_s
        How long a dashboard login lasts without activity.
    max_batch_records, max_body_bytes
        The largest sync batch accepted (records, and bytes of the request body).
    pool_size
        Database connections each process keeps open (PostgreSQL; as many again may open under load).
    processes
        Server processes ``serve`` starts on one port (``reuse_port``; Linux).
    """

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = bounded(DEFAULT_PORT, 0, 65535)
    public_base_url: str = ""
    cookie_secure: bool = True
    session_lifetime_s: float = bounded(12 * 3600.0, 60.0, 90 * 86400.0, unit="s")
    max_batch_records: int = bounded(1000, 1, 100_000)
    max_body_bytes: int = bounded(4 * MIB, 1024, 256 * MIB, unit="bytes")
    pool_size: int = bounded(10, 1, 200)
    processes: int = bounded(1, 1, 64)

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.database_url:
            raise ValueError("database_url: empty; give postgresql://... or sqlite:///path")

    @property
    def base_url(self) -> str:
        """``public_base_url``, or the address the process listens on."""
        return self.public_base_url.rstrip("/") or f"http://{self.host}:{self.port}"


def load_settings(path: Path | str | None = None, **overrides: Any) -> ClinicSettings:
    """Settings from a TOML file's ``[clinic]`` table (or the defaults), then ``overrides`` that are not None.

    Parameters
    ----------
    path
        TOML file with a ``[clinic]`` table; None: the defaults.
    **overrides
        Field values from the command line; None leaves the file's value.

    Raises
    ------
    ConfigError
        Naming the file and key, or the overridden field.
    """
    settings = ClinicSettings() if path is None else load_config(ClinicSettings, path, "clinic")
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return dataclasses.replace(settings, **given)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"clinic settings: {exc}") from None
