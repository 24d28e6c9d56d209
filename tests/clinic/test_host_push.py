"""The host's home sync against an in-process clinic: every record arrives once, through lost answers, a server
that dies and comes back, and days offline; offered profiles are written to the device and reported."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from clinic_db import ClinicTestDb
from clinic_seed import count_records, seed
from sqlalchemy import select

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.patients import change_profile
from forcecast.clinic.db.schema import devices, records
from forcecast.edge.profile import PatientProfile
from forcecast.host_app.clinic_sync import (
    ClinicPusher,
    ClinicRefusedError,
    ClinicSyncConfig,
    ClinicUnavailableError,
    read_token,
)
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

DEVICE = "fc-demo"
FAST = ClinicSyncConfig(batch_records=100, backoff_min_s=1.0, backoff_max_s=600.0, request_timeout_s=10.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_store(tmp_path: Path, days: int = 2, steps: int = 300) -> tuple[HostStore, int]:
    """A host store with ``days`` synthetic days of one device; returns it and its record count."""
    store = HostStore(tmp_path / "host.sqlite")
    seqs = None
    for day in range(days):
        seqs = write_day(store, date(2026, 11, 20 + day), steps, patient="P1", device=DEVICE, seed=day, first_seq=seqs)
    total = sum(store.count(DEVICE, kind) for kind in ("step", "summary", "event"))
    return store, total


class Clinic:
    """The clinic application on a fixed loopback port that can be stopped and started again."""

    def __init__(self, settings: ClinicSettings, port: int, middlewares: tuple[Any, ...] = ()) -> None:
        self.settings, self.port, self.middlewares = settings, port, middlewares
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = create_app(self.settings)
        app.middlewares.extend(self.middlewares)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


def lose_answers(numbers: set[int]) -> tuple[Any, list[int]]:
    """A middleware that handles request N (storing its batch) and then drops the connection for N in ``numbers``."""
    seen = [0]

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        seen[0] += 1
        response = await handler(request)
        if seen[0] in numbers and request.path.endswith("/records"):
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("answer lost on purpose")
        return response

    return middleware, seen


async def stored_keys(url: str) -> list[tuple[str, str, int]]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(records.c.store_id, records.c.kind, records.c.seq))).all()
    await engine.dispose()
    return sorted((str(s), str(k), int(q)) for s, k, q in rows)


def host_keys(store: HostStore) -> list[tuple[str, str, int]]:
    return sorted(("", r.kind, r.seq) for kind in ("step", "summary", "event") for r in store.records(DEVICE, kind))


class FakeDevice:
    """A profile writer that keeps what it was given, like a device that takes every newer version."""

    def __init__(self) -> None:
        self.profiles: list[PatientProfile] = []

    async def write_profile(self, profile: PatientProfile) -> int:
        self.profiles.append(profile)
        return profile.version


def test_every_record_arrives_once_and_a_second_pass_sends_nothing(clinic_db: ClinicTestDb, tmp_path: Path) -> None:
    store, total = host_store(tmp_path)

    async def scenario() -> None:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        clinic = Clinic(clinic_db.settings, free_port())
        await clinic.start()
        try:
            device = FakeDevice()
            pusher = ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, writer=device)
            first = await pusher.push_until_done()
            assert (first.sent, first.accepted, first.duplicates, first.skipped) == (total, total, 0, 0)
            assert [p.version for p in device.profiles] == [1] and first.profile_version_applied == 1
            second = await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, writer=device).push_until_done()
            assert (second.sent, second.batches) == (0, 0) and len(device.profiles) == 1
            engine = create_engine(clinic_db.url)
            async with engine.begin() as connection:
                await change_profile(connection, seeded.clinic_id, seeded.patient_id, feedback_limit_bw=1.15)
            await engine.dispose()
            third = await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, writer=device).push_until_done()
            assert device.profiles[-1].version == 2 and device.profiles[-1].feedback_limit_bw == 1.15
            assert third.profile_version_applied == 2
        finally:
            await clinic.stop()

    asyncio.run(scenario())
    assert asyncio.run(stored_keys(clinic_db.url)) == host_keys(store)


def test_lost_answers_and_a_server_that_dies_and_comes_back_lose_and_double_nothing(
    clinic_db: ClinicTestDb, tmp_path: Path
) -> None:
    store, total = host_store(tmp_path)

    async def scenario() -> Any:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        middleware, seen = lose_answers({3, 7})
        clinic = Clinic(clinic_db.settings, free_port(), (middleware,))
        await clinic.start()
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 2:  # down for the second and third attempts, then back
                await clinic.stop()
            if len(waits) == 4:
                await clinic.start()

        try:
            pusher = ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, sleep=sleep)
            stats = await pusher.push_until_done()
        finally:
            await clinic.stop()
        assert seen[0] > 7 and len(waits) == 4
        return stats

    stats = asyncio.run(scenario())
    assert stats.failed_attempts == 4 and stats.sent == stats.accepted + stats.duplicates
    # The batches whose answers were lost were stored, sent again and then counted as duplicates: stored once.
    assert stats.sent == total and stats.duplicates > 0
    assert asyncio.run(count_records(clinic_db.url)) == (total, total)
    assert asyncio.run(stored_keys(clinic_db.url)) == host_keys(store)


def test_days_offline_back_off_to_the_cap_and_catch_up(clinic_db: ClinicTestDb, tmp_path: Path) -> None:
    store, total = host_store(tmp_path, days=3, steps=200)
    clock = [0.0]

    async def scenario() -> Any:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        clinic = Clinic(clinic_db.settings, free_port())

        async def sleep(seconds: float) -> None:
            clock[0] += seconds
            if clock[0] > 2.5 * 86400 and clinic.server is None:
                await clinic.start()  # the laptop is back online after two and a half days

        pusher = ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, sleep=sleep)
        try:
            return await pusher.push_until_done()
        finally:
            await clinic.stop()

    stats = asyncio.run(scenario())
    assert stats.accepted == total and stats.duplicates == 0
    assert max(stats.waits_s) <= 600.0 * 1.2 and stats.waits_s[0] <= 1.2
    assert all(later >= earlier * 1.3 for earlier, later in zip(stats.waits_s[:8], stats.waits_s[1:9], strict=True))
    assert stats.failed_attempts > 300  # capped waits: it kept trying every ~10 minutes
    assert asyncio.run(stored_keys(clinic_db.url)) == host_keys(store)


def test_a_revoked_token_stops_the_push_without_retrying_or_marking(clinic_db: ClinicTestDb, tmp_path: Path) -> None:
    store, _ = host_store(tmp_path, days=1, steps=100)

    async def scenario() -> tuple[ClinicRefusedError, int]:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        engine = create_engine(clinic_db.url)
        async with engine.begin() as connection:
            await connection.execute(devices.update().values(revoked_at=1.0))
        await engine.dispose()
        clinic = Clinic(clinic_db.settings, free_port())
        await clinic.start()
        pusher = ClinicPusher(store, clinic.url, seeded.tokens[0], FAST)
        try:
            with pytest.raises(ClinicRefusedError) as refused:
                await pusher.push_until_done()
        finally:
            await clinic.stop()
        return refused.value, pusher.stats.failed_attempts

    error, attempts = asyncio.run(scenario())
    assert error.status == 401 and error.reason == "revoked_token" and attempts == 0
    assert store.clinic_mark("http://x", DEVICE, "", "step") == 0
    assert asyncio.run(count_records(clinic_db.url)) == (0, 0)


def test_giving_up_after_a_while_raises_the_last_error(tmp_path: Path) -> None:
    store, _ = host_store(tmp_path, days=1, steps=10)
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    pusher = ClinicPusher(store, f"http://127.0.0.1:{free_port()}", "t", FAST, sleep=sleep)
    with pytest.raises(ClinicUnavailableError, match=r"127\.0\.0\.1"):
        asyncio.run(pusher.push_until_done(give_up_s=30.0))
    assert 30.0 <= sum(waited) < 80.0


def test_the_token_file_is_read_strictly(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n  abc_DEF-123  \n")
    assert read_token(path) == "abc_DEF-123"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no token"):
        read_token(path)
    path.write_text("abc def\n")
    with pytest.raises(ValueError, match="blanks"):
        read_token(path)


def test_a_clinic_restored_from_an_older_backup_gets_the_lost_tail_again(
    clinic_db: ClinicTestDb, tmp_path: Path
) -> None:
    store, total = host_store(tmp_path, days=1, steps=300)

    async def scenario() -> Any:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        clinic = Clinic(clinic_db.settings, free_port())
        await clinic.start()
        try:
            await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST).push_until_done()
            engine = create_engine(clinic_db.url)
            async with engine.begin() as connection:  # the backup was taken after step 120
                await connection.execute(records.delete().where(records.c.kind == "step", records.c.seq > 120))
            await engine.dispose()
            return await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST).push_until_done()
        finally:
            await clinic.stop()

    again = asyncio.run(scenario())
    assert again.accepted == store.count(DEVICE, "step") - 120 and again.duplicates == 0
    assert asyncio.run(stored_keys(clinic_db.url)) == host_keys(store)
    assert asyncio.run(count_records(clinic_db.url)) == (total, total)


def test_the_background_pusher_keeps_pushing_and_stops_quietly_on_a_refusal(
    clinic_db: ClinicTestDb, tmp_path: Path
) -> None:
    store, total = host_store(tmp_path, days=1, steps=100)
    quick = ClinicSyncConfig(batch_records=100, backoff_min_s=0.01, backoff_max_s=0.05, interval_s=0.05)

    async def scenario() -> tuple[int, str | None]:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        clinic = Clinic(clinic_db.settings, free_port())
        await clinic.start()
        stop = asyncio.Event()
        pusher = ClinicPusher(store, clinic.url, seeded.tokens[0], quick)
        task = asyncio.create_task(pusher.run(stop))
        try:
            while pusher.stats.passes < 2:
                await asyncio.sleep(0.02)
            engine = create_engine(clinic_db.url)
            async with engine.begin() as connection:
                await connection.execute(devices.update().values(revoked_at=1.0))
            await engine.dispose()
            stats = await asyncio.wait_for(task, 30)  # ends by itself: the token was revoked
        finally:
            stop.set()
            await clinic.stop()
        return stats.accepted, stats.last_error

    accepted, error = asyncio.run(scenario())
    assert accepted == total and error is not None and "revoked_token" in error


class DroppingDevice(FakeDevice):
    """The BLE link drops during the first write (bleak raises), the next pass writes it."""

    async def write_profile(self, profile: PatientProfile) -> int:
        if not self.profiles and not getattr(self, "dropped", False):
            self.dropped = True
            from bleak.exc import BleakError

            raise BleakError("disconnected during the request")
        return await super().write_profile(profile)


def test_a_link_dropping_during_the_profile_write_is_retried_on_the_next_pass(
    clinic_db: ClinicTestDb, tmp_path: Path
) -> None:
    store, total = host_store(tmp_path)

    async def scenario() -> None:
        seeded = await seed(clinic_db.url, names=(DEVICE,))
        clinic = Clinic(clinic_db.settings, free_port())
        await clinic.start()
        try:
            device = DroppingDevice()
            first = await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, writer=device).push_until_done()
            assert first.accepted == total and device.profiles == [] and first.profile_version_applied != 1
            second = await ClinicPusher(store, clinic.url, seeded.tokens[0], FAST, writer=device).push_until_done()
            assert [p.version for p in device.profiles] == [1] and second.profile_version_applied == 1
        finally:
            await clinic.stop()

    asyncio.run(scenario())
