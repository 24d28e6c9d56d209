"""Home sync: the host pushes the records it holds to the patient's clinic, and brings back profile changes.

The clinic's sync API (docs/clinic.md) is spoken over HTTPS with the device's token (issued when the device
was enrolled to a patient). One pass (:meth:`ClinicPusher.push_once`):

1. ``GET /api/v1/sync/state``: which device the token belongs to, and the patient's current profile;
2. for each of that device's stores and each record kind, the records after the *clinic mark* (kept in the
   host store per clinic, device store and kind), in bounded batches by seq, ``POST /api/v1/sync/records``;
   the mark moves only after the clinic answered, and never past the host's own resume point (a record the
   host is still missing, asked for again from the device, is pushed once it arrives);
3. a profile the clinic offers (newer than the one the device applied) is written to the device through the
   :class:`ProfileWriter` (:meth:`forcecast.host_app.client.HostLogger.write_profile` in ``host log``) and
   reported with ``POST /api/v1/sync/profile-applied``.

The clinic stores a record once per ``(device, store id, kind, seq)``, so anything sent twice (an answer
lost, a pass cut short by a restart) is only counted as a duplicate. :meth:`ClinicPusher.push_until_done`
retries a pass that could not reach the clinic with capped, jittered exponential backoff: a laptop offline for
days catches up when it is back, batch after batch. A refused token (401) or a refused batch (400) stops
the pass with an error that names the reason; retrying would not help.

This module speaks HTTP only: the host never imports the clinic's server code.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from bleak.exc import BleakError

from forcecast.edge.config import bounded, check_bounds
from forcecast.edge.errors import EXIT_REFUSED, ForcecastError, ForcecastRuntimeError, ForcecastValueError
from forcecast.edge.profile import PatientProfile, ProfileError, StaleProfileError
from forcecast.edge.records import KIND_LABELS, RecordError, decode
from forcecast.host_app.store import HostStore

log = logging.getLogger(__name__)
API = "/api/v1/sync"


class ClinicSyncError(ForcecastRuntimeError):
    """The clinic sync failed; the message says why (the subclasses say whether to retry)."""

    reason = "clinic_sync_failed"


class ClinicUnavailableError(ClinicSyncError):
    """The clinic could not be reached or answered with a server error: try again later (with backoff)."""

    reason = "clinic_unavailable"


class ClinicRefusedError(ClinicSyncError):
    """The clinic refused the token (401) or a batch (400/403/413): retrying the same will not help."""

    reason = "clinic_refused"
    exit_code = EXIT_REFUSED

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"the clinic refused ({status} {reason}): {message}")
        self.status = status
        self.reason = reason


class ProfileWriter(Protocol):
    """What writes a patient profile to the device (``HostLogger`` in ``host log``; a fake in tests)."""

    async def write_profile(self, profile: PatientProfile) -> int:
        """Write ``profile``; returns the version the device holds afterwards."""
        ...


@dataclass(frozen=True)
class ClinicSyncConfig:
    """How the host pushes to its clinic.

    Attributes
    ----------
    batch_records
        Records per request (the clinic takes up to 1000 and 4 MiB; a step record with its waveform is ~2 KiB).
    backoff_min_s, backoff_max_s
        First and longest wait between attempts while the clinic is unreachable (each doubles the last, with
        ±20 % jitter so that many hosts do not return at once after an outage).
    request_timeout_s
        One request's limit.
    interval_s
        Time between passes in ``host log --clinic``.
    """

    batch_records: int = bounded(500, 1, 10_000)
    backoff_min_s: float = bounded(2.0, 0.0, 3600.0, unit="s")
    backoff_max_s: float = bounded(600.0, 0.0, 86400.0, unit="s")
    request_timeout_s: float = bounded(60.0, 0.1, 3600.0, low_open=True, unit="s")
    interval_s: float = bounded(300.0, 0.0, 86400.0, unit="s")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass
class SyncStats:
    """What the pusher did (cumulative over passes)."""

    device_id: str | None = None
    passes: int = 0
    batches: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    """Records the host holds that do not decode (kept on the host, never sent: the clinic would refuse them)."""
    failed_attempts: int = 0
    last_error: str | None = None
    profile_version_offered: int | None = None
    profile_version_applied: int | None = None
    waits_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values (the backoff waits summarised)."""
        data = asdict(self)
        waits = data.pop("waits_s")
        data["waited_s"] = round(sum(waits), 3)
        data["longest_wait_s"] = round(max(waits, default=0.0), 3)
        return data


def read_token(path: Path) -> str:
    """The device token from a file (its first non-empty line).

    Raises
    ------
    ForcecastValueError
        If the file holds no token, or a line with blanks in it.
    """
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.strip()
        if token:
            if any(c.isspace() for c in token):
                raise ForcecastValueError(f"--clinic-token-file {path}: the token has blanks in it")
            return token
    raise ForcecastValueError(f"--clinic-token-file {path}: the file holds no token")


class ClinicPusher:
    """Pushes one device's records from a host store to its clinic (see the module's description).

    Parameters
    ----------
    store
        The host store.
    base_url
        The clinic's address (``https://clinic.example.org``); it also names the clinic's marks in the store.
    token
        The device's sync token.
    config
        Batch size, backoff, timeouts.
    writer
        Writes offered profiles to the device (None: a profile is only reported as pending).
    sleep
        Waits between attempts (tests pass a clock that does not really wait).
    """

    def __init__(
        self,
        store: HostStore,
        base_url: str,
        token: str,
        config: ClinicSyncConfig | None = None,
        writer: ProfileWriter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.config = config or ClinicSyncConfig()
        self.writer = writer
        self.stats = SyncStats()
        self._sleep = sleep
        self._headers = {"Authorization": f"Bearer {token}"}
        self._batch = self.config.batch_records
        self._profile: PatientProfile | None = None

    # ------------------------------------------------------------------ HTTP

    async def _request(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> dict[str, Any]:
        url = f"{self.base_url}{API}{path}"
        try:
            async with session.request(method, url, json=body, headers=self._headers) as answer:
                if answer.status >= 500:
                    raise ClinicUnavailableError(f"{method} {url}: the clinic answered {answer.status}")
                try:
                    data = await answer.json(content_type=None)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise ClinicUnavailableError(f"{method} {url}: answer {answer.status} is not a JSON object")
                if answer.status != 200:
                    found = data.get("error")
                    error: dict[str, Any] = found if isinstance(found, dict) else {}
                    raise ClinicRefusedError(
                        answer.status, str(error.get("reason", "refused")), str(error.get("message", ""))
                    )
                return data
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ClinicUnavailableError(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s))

    # ------------------------------------------------------------------ one pass

    async def push_once(self) -> SyncStats:
        """One pass: every record after the clinic marks, then any offered profile (see the module).

        Raises
        ------
        ClinicUnavailableError
            The clinic could not be reached (or failed) part-way: what was acknowledged stays marked.
        ClinicRefusedError
            The token or a batch was refused.
        """
        async with self._session() as session:
            state = await self._request(session, "GET", "/state")
            device_id = str(state.get("device_id", ""))
            if not device_id or not isinstance(state.get("stores"), list):
                raise ClinicUnavailableError(f"{self.base_url}: the state answer names no device or stores")
            self.stats.device_id = device_id
            self._offer(state.get("profile"), int(state.get("profile_version_applied") or 0))
            held = {(str(h.get("store_id")), str(h.get("kind"))): int(h.get("max_seq", 0)) for h in state["stores"]}
            for store_id in await asyncio.to_thread(self.store.stores_with_records, device_id):
                for kind in KIND_LABELS:
                    # A clinic that holds less than it acknowledged (restored from a backup) gets the rest again.
                    if self.store.lower_clinic_mark(
                        self.base_url, device_id, store_id, kind, held.get((store_id, kind), 0)
                    ):
                        log.warning(
                            "clinic %s holds less of %s %s %s than it acknowledged: pushing it again",
                            self.base_url,
                            device_id,
                            store_id,
                            kind,
                        )
                    await self._push_store(session, device_id, store_id, kind)
            await self._apply_profile(session)
        self.stats.passes += 1
        return self.stats

    async def _push_store(self, session: aiohttp.ClientSession, device_id: str, store_id: str, kind: str) -> None:
        mark = self.store.clinic_mark(self.base_url, device_id, store_id, kind)
        complete = await asyncio.to_thread(self.store.resume_point, device_id, kind, store_id)
        after = mark
        while True:
            rows = await asyncio.to_thread(self.store.outgoing, device_id, store_id, kind, after, self._batch)
            if not rows:
                return
            items = []
            for seq, t_host, brief, waveform in rows:
                try:
                    decode(kind, brief)
                except RecordError as exc:
                    self.stats.skipped += 1
                    log.warning("%s %s record %s of store %r not sent: %s", device_id, kind, seq, store_id, exc)
                    continue
                item: dict[str, Any] = {"kind": kind, "seq": seq, "t_host": t_host, "payload": brief}
                if waveform is not None:
                    item["waveform_b64"] = _b64(waveform)
                items.append(item)
            if items:
                await self._post_batch(session, device_id, store_id, items)
            after = rows[-1][0]
            self.store.set_clinic_mark(self.base_url, device_id, store_id, kind, min(after, max(complete, mark)))

    async def _post_batch(
        self, session: aiohttp.ClientSession, device_id: str, store_id: str, items: list[dict[str, Any]]
    ) -> None:
        start = 0
        while start < len(items):
            chunk = items[start : start + self._batch]
            body = {"device_id": device_id, "store_id": store_id, "records": chunk}
            try:
                answer = await self._request(session, "POST", "/records", body)
            except ClinicRefusedError as exc:
                if exc.status == 413 and self._batch > 1:
                    self._batch = max(1, self._batch // 2)  # the clinic takes smaller batches: halve and go on
                    log.info("clinic %s: batch too large, now %d records per request", self.base_url, self._batch)
                    continue
                raise
            self.stats.batches += 1
            self.stats.sent += len(chunk)
            self.stats.accepted += int(answer.get("accepted", 0))
            self.stats.duplicates += int(answer.get("duplicates", 0))
            self._offer(answer.get("profile"), None)
            start += len(chunk)

    # ------------------------------------------------------------------ profiles

    def _offer(self, data: Any, applied: int | None) -> None:
        if not isinstance(data, dict):
            return
        try:
            profile = PatientProfile.from_json(data, "the clinic's profile")
        except ProfileError as exc:
            log.warning("clinic %s: profile not usable: %s", self.base_url, exc)
            return
        if applied is not None and profile.version <= applied:
            return
        if self._profile is None or profile.version > self._profile.version:
            self._profile = profile
            self.stats.profile_version_offered = profile.version

    async def _apply_profile(self, session: aiohttp.ClientSession) -> None:
        profile = self._profile
        if profile is None or self.writer is None:
            return
        try:
            version = await self.writer.write_profile(profile)
        except StaleProfileError as exc:
            log.warning("clinic %s: the device holds a newer profile than the clinic's: %s", self.base_url, exc)
            return
        except (TimeoutError, OSError, BleakError, ForcecastError) as exc:  # the link dropped, a refusal: next pass
            log.warning("profile version %d not written to the device yet: %s", profile.version, exc)
            return
        answer = await self._request(session, "POST", "/profile-applied", {"version": min(version, profile.version)})
        self.stats.profile_version_applied = int(answer.get("profile_version_applied", version))
        self._profile = None

    # ------------------------------------------------------------------ retrying

    async def push_until_done(self, stop: asyncio.Event | None = None, give_up_s: float | None = None) -> SyncStats:
        """Passes until one completes, backing off while the clinic is unreachable.

        Parameters
        ----------
        stop
            Set to give up waiting (returns the stats so far).
        give_up_s
            Stop retrying once the waits add up to this (then the last error is raised); None: never.

        Raises
        ------
        ClinicRefusedError
            Not retried.
        ClinicUnavailableError
            Only after ``give_up_s``.
        """
        delay = self.config.backoff_min_s
        waited = 0.0
        while True:
            try:
                return await self.push_once()
            except ClinicUnavailableError as exc:
                self.stats.failed_attempts += 1
                self.stats.last_error = str(exc)
                if give_up_s is not None and waited >= give_up_s:
                    raise
                wait = delay * random.uniform(0.8, 1.2)
                log.info("clinic unreachable (%s); next attempt in %.0f s", exc, wait)
                self.stats.waits_s.append(wait)
                waited += wait
                if await self._wait(wait, stop):
                    return self.stats
                delay = min(max(delay * 2, self.config.backoff_min_s), self.config.backoff_max_s)

    async def _wait(self, seconds: float, stop: asyncio.Event | None) -> bool:
        """Wait ``seconds`` (or until ``stop``); True if stopped."""
        if stop is None:
            await self._sleep(seconds)
            return False
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, stopper):
            task.cancel()
        return stop.is_set()

    async def run(self, stop: asyncio.Event) -> SyncStats:
        """Push every ``interval_s`` until ``stop`` (``host log --clinic``).

        A refusal (a revoked token, a refused batch) ends the pushing, logged as an error and kept in
        ``stats.last_error``; whatever runs beside it (the BLE logger) goes on.
        """
        while not stop.is_set():
            try:
                await self.push_until_done(stop)
            except ClinicRefusedError as exc:
                self.stats.last_error = str(exc)
                log.error("home sync to %s stopped: %s", self.base_url, exc)
                break
            if await self._wait(self.config.interval_s, stop):
                break
        return self.stats


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
