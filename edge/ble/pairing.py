"""When new hosts may pair: a window closed at every start, opened only by a local action on the device.

The device has no display or keys, so LE Secure Connections pairing is "Just Works": whoever is in radio
range when pairing is open gets a bond. Pairing is therefore closed whenever the runtime starts (a power
cut or a crash never opens it) and opens for ``[ble] pairing_window_s`` seconds only when someone with root
on the device asks the running service to, with ``forcecast edge pair``. That command talks to the service
over a Unix socket (``[ble] pairing_socket``, default ``/run/forcecast/pairing.sock``) which the service
creates with mode 0600 in a folder only it can write; the service also checks the peer's credentials
(``SO_PEERCRED``) and answers only root and its own user. Bonded hosts reconnect at any time.

Requests and replies are one line of JSON each::

    {"command": "open", "seconds": 120}   ->  {"ok": true, "open": true, "closes_in_s": 120.0, ...}
    {"command": "close"}                  ->  {"ok": true, "open": false, ...}
    {"command": "status"}                 ->  {"ok": true, "open": false, "accepted": 1, "refused": 3}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bumble.pairing import PairingDelegate

from forcecast.edge.errors import ForcecastRuntimeError

log = logging.getLogger(__name__)

MAX_OPEN_S = 3600.0
"""Longest window one request may open."""
REQUEST_LIMIT_BYTES = 512
REPLY_TIMEOUT_S = 5.0


class PairingError(ForcecastRuntimeError):
    """The pairing control socket cannot be created, reached or understood; the message says which and why."""

    reason = "pairing_unavailable"


class PairingWindow(PairingDelegate):
    """A device without display or keys: "Just Works" pairing, accepted only while the window is open.

    The window starts closed; :meth:`open` (the local action) opens it for a while.

    Parameters
    ----------
    open_s
        How long :meth:`open` opens the window when it is not given a duration.
    clock
        Monotonic clock (seconds); tests may pass their own.
    """

    def __init__(self, open_s: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT)
        if not open_s >= 0:
            raise ValueError(f"pairing window length must be ≥ 0 s, got {open_s}")
        self.open_s = open_s
        self._clock = clock
        self.closes_at = -math.inf
        self.refused = 0
        self.accepted = 0

    @property
    def is_open(self) -> bool:
        """Whether a new host may pair now."""
        return self._clock() < self.closes_at

    @property
    def closes_in_s(self) -> float:
        """Seconds until the window closes (0 when closed)."""
        return max(0.0, self.closes_at - self._clock())

    def open(self, seconds: float | None = None) -> float:
        """Open the window for ``seconds`` (default ``open_s``) from now; return how long it stays open."""
        duration = self.open_s if seconds is None else seconds
        if not duration >= 0:
            raise ValueError(f"pairing window length must be ≥ 0 s, got {duration}")
        self.closes_at = self._clock() + duration
        log.warning("pairing window open for %g s: a new host may pair now", duration)
        return self.closes_in_s

    def close(self) -> None:
        """Close the window now."""
        self.closes_at = -math.inf

    async def accept(self) -> bool:
        """Accept a pairing request while the window is open (bumble asks this for every new pairing)."""
        if not self.is_open:
            self.refused += 1
            log.warning("pairing request refused: pairing is closed (run `sudo forcecast edge pair` on the device)")
            return False
        self.accepted += 1
        return True

    def status(self) -> dict[str, Any]:
        """State for the control socket and the logs."""
        return {
            "open": self.is_open,
            "closes_in_s": round(self.closes_in_s, 1),
            "accepted": self.accepted,
            "refused": self.refused,
        }


class PairingControl:
    """The service's end of ``forcecast edge pair``: a Unix socket that opens or closes a :class:`PairingWindow`.

    Parameters
    ----------
    path
        Socket path. Its folder is created 0700 when missing; an existing folder must not be writable by
        others. A stale socket there is replaced; any other file is refused.
    window
        The window to control.
    allowed_uids
        Peers allowed to send requests (default: root and this process's user).
    """

    def __init__(self, path: Path, window: PairingWindow, allowed_uids: Iterable[int] | None = None) -> None:
        self.path = Path(path)
        self.window = window
        self.allowed_uids = frozenset(allowed_uids) if allowed_uids is not None else frozenset({0, os.geteuid()})
        self.refused_peers = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Create the socket (mode 0600) and serve requests on the running loop.

        Raises
        ------
        PairingError
            Naming the path, when the socket cannot be created safely.
        """
        sock = _bind(self.path)
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=REQUEST_LIMIT_BYTES)
        except BaseException:
            sock.close()
            raise

    async def stop(self) -> None:
        """Stop serving and remove the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError, OSError):  # closing anyway: a slow or broken client is no news
                await asyncio.wait_for(server.wait_closed(), 1.0)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            try:  # read the (bounded) request first, so that the peer never writes into a closed socket
                line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT_S)
            except (ValueError, asyncio.LimitOverrunError):
                line = b"{too long"
            if uid not in self.allowed_uids:
                self.refused_peers += 1
                log.warning("pairing control: refused a request from uid %s (only root or the service's user)", uid)
                reply: dict[str, Any] = {"ok": False, "error": f"uid {uid} may not control pairing"}
            else:
                reply = self.handle(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.warning("pairing control: request dropped (%s)", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # the peer may have gone already (ConnectionError is an OSError)
                await writer.wait_closed()

    def handle(self, line: bytes) -> dict[str, Any]:
        """Answer one request line (see the module docstring); never raises."""
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "not a JSON request line"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "the request must be a JSON object"}
        command = request.get("command")
        if command == "open":
            seconds = request.get("seconds", self.window.open_s)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_OPEN_S:
                return {"ok": False, "error": f"seconds must be a number in (0, {MAX_OPEN_S:g}], got {seconds!r}"}
            self.window.open(float(seconds))
        elif command == "close":
            self.window.close()
        elif command != "status":
            return {"ok": False, "error": f"unknown command {command!r}; use open, close or status"}
        return {"ok": True} | self.window.status()


def _bind(path: Path) -> socket.socket:
    folder = path.parent
    if not folder.exists():
        try:
            folder.mkdir(mode=0o700, parents=True)
            folder.chmod(0o700)  # mkdir's mode is masked by the umask
        except OSError as exc:
            raise PairingError(f"{folder}: cannot create the folder of the pairing socket ({exc.strerror})") from None
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
        raise PairingError(
            f"{folder}: the pairing socket's folder must be a real folder that only its owner can write "
            f"(mode {stat.S_IMODE(info.st_mode):04o})"
        )
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise PairingError(f"{path} exists and is not a socket; remove it or choose another [ble] pairing_socket")
        path.unlink()  # a stale socket left by a crash
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o600)  # the umask may have left group bits; peers are checked again on every request
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise PairingError(f"{path}: cannot create the pairing socket ({exc.strerror})") from None
    return sock


def _peer_uid(writer: asyncio.StreamWriter) -> int:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def request_pairing(
    path: Path, command: str = "open", seconds: float | None = None, timeout_s: float = REPLY_TIMEOUT_S
) -> dict[str, Any]:
    """Send one request to a running service's pairing socket (``forcecast edge pair``); return its reply.

    Raises
    ------
    PairingError
        If no service answers there, the caller may not use it, or the reply is not understood.
    """
    request: dict[str, Any] = {"command": command}
    if seconds is not None:
        request["seconds"] = seconds
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer before reading
                sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise PairingError(
                f"{path}: no pairing socket; is the forcecast service running with [ble] enabled?"
            ) from None
        except PermissionError:
            raise PairingError(f"{path}: permission denied; run it as root (sudo forcecast edge pair)") from None
        except ConnectionRefusedError:
            raise PairingError(f"{path}: no service listens there (a stale socket); is the service running?") from None
        except TimeoutError:
            raise PairingError(f"{path}: the service did not answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise PairingError(f"{path}: cannot talk to the service ({exc.strerror or exc})") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise PairingError(f"{path}: the service's reply is not JSON: {data[:80]!r}") from None
    if not isinstance(reply, dict):
        raise PairingError(f"{path}: the service's reply is not a JSON object")
    return reply
