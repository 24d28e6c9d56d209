"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without a dependency.

The service manager passes a datagram socket in ``$NOTIFY_SOCKET``; the runtime sends ``READY=1``
once calibrated and ``WATCHDOG=1`` while it keeps processing. If the pipeline hangs, the pings stop
and systemd restarts the service. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Send notify messages to systemd, rate-limiting watchdog pings to ``min_interval_s``."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._min_interval_s = min_interval_s
        self._last_ping = 0.0
        self.sent: list[str] = []

    @property
    def active(self) -> bool:
        """Whether systemd is listening."""
        return bool(self._address)

    def send(self, message: str) -> None:
        """Send one message such as ``READY=1`` or ``STATUS=calibrating``."""
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self._address)
            sock.sendall(message.encode())
        self.sent.append(message)

    def ready(self, status: str) -> None:
        """Tell systemd the service is up."""
        self.send(f"READY=1\nSTATUS={status}")

    def ping(self) -> None:
        """Watchdog keep-alive (at most once per ``min_interval_s``)."""
        now = time.monotonic()
        if now - self._last_ping >= self._min_interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")
