"""The clinic's repository functions on SQLite and PostgreSQL: clinics, users, patients and profiles, devices and
tokens, sync sessions and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from argon2 import PasswordHasher
from clinic_db import ClinicTestDb
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.accounts import add_clinic, add_user, clinic_id_of
from forcecast.clinic.db.devices import (
    device_by_id,
    device_by_token,
    enroll_device,
    list_devices,
    mark_profile_applied,
    note_sync,
    revoke_device,
)
from forcecast.clinic.db.engine import DatabaseUrlError, async_url, create_engine
from forcecast.clinic.db.errors import AlreadyExistsError, NotFoundError
from forcecast.clinic.db.patients import add_patient, change_profile, patient_id_of, profile_of
from forcecast.clinic.db.schema import audit_log, devices, users
from forcecast.clinic.passwords import PasswordPolicyError, hash_password, needs_rehash, verify_password
from forcecast.clinic.tokens import looks_like_token, new_token, token_hash
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.profile import ProfileError

T = TypeVar("T")


def run(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work`` in one transaction on the database."""

    async def go() -> T:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def two_clinics(connection: AsyncConnection) -> tuple[int, int, int, int]:
    """Clinics A and B with a patient each: ``(clinic_a, patient_a, clinic_b, patient_b)``."""
    a = await add_clinic(connection, "A")
    b = await add_clinic(connection, "B")
    pa = await add_patient(connection, a, "P1", "", affected_side="left", body_mass_kg=70, height_m=1.7)
    pb = await add_patient(connection, b, "P1", "", affected_side="none", body_mass_kg=80, height_m=1.8)
    return a, pa, b, pb


def test_clinics_and_users(clinic_db: ClinicTestDb) -> None:
    async def work(connection: AsyncConnection) -> dict[str, Any]:
        clinic = await add_clinic(connection, "  Physio Nord ")
        assert await clinic_id_of(connection, "Physio Nord") == clinic
        with pytest.raises(AlreadyExistsError):
            await add_clinic(connection, "Physio Nord")
        with pytest.raises(NotFoundError, match="add-clinic"):
            await clinic_id_of(connection, "Physio Süd")
        user = await add_user(connection, clinic, " Ann@Example.ORG ", "Ann", "a long enough secret")
        with pytest.raises(AlreadyExistsError):
            await add_user(connection, clinic, "ann@example.org", "Ann 2", "another long secret")
        with pytest.raises(PasswordPolicyError):
            await add_user(connection, clinic, "bob@example.org", "Bob", "short")
        with pytest.raises(ForcecastValueError, match="role"):
            await add_user(connection, clinic, "bob@example.org", "Bob", "a long enough secret", role="root")
        row = (await connection.execute(select(users).where(users.c.id == user))).one()
        return dict(row._mapping)

    row = run(clinic_db.url, work)
    assert row["email"] == "ann@example.org" and row["role"] == "physio"
    assert row["password_hash"].startswith("$argon2id$") and "a long enough secret" not in row["password_hash"]
    assert verify_password(row["password_hash"], "a long enough secret")
    assert not verify_password(row["password_hash"], "a long enough secreT")


def test_password_hashes_upgrade_and_garbage_does_not_verify() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("a long enough secret")
    assert verify_password(weak, "a long enough secret") and needs_rehash(weak)
    assert not needs_rehash(hash_password("a long enough secret"))
    assert not verify_password("not a hash", "x") and needs_rehash("not a hash")


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(looks_like_token(t) for t in tokens)
    token = tokens.pop()
    assert token_hash(token) != token and len(token_hash(token)) == 64 and not looks_like_token(token + "=")


def test_patients_profiles_are_versioned_and_scoped_to_their_clinic(clinic_db: ClinicTestDb) -> None:
    async def work(connection: AsyncConnection) -> None:
        a, pa, b, pb = await two_clinics(connection)
        assert await patient_id_of(connection, a, "P1") == pa and await patient_id_of(connection, b, "P1") == pb
        with pytest.raises(AlreadyExistsError):
            await add_patient(connection, a, "P1", "", affected_side="left", body_mass_kg=70, height_m=1.7)
        with pytest.raises(ProfileError, match="height_m"):
            await add_patient(connection, a, "P2", "", affected_side="left", body_mass_kg=70, height_m=3.7)
        first = await profile_of(connection, pa)
        assert (first.version, first.feedback_limit_bw, first.affected_side) == (1, None, "left")
        same = await change_profile(connection, a, pa, affected_side="left")
        assert same.version == 1  # no change, no new version for the device
        changed = await change_profile(connection, a, pa, feedback_limit_bw=1.2, hka_deg=4.5)
        assert (changed.version, changed.feedback_limit_bw, changed.hka_deg) == (2, 1.2, 4.5)
        with pytest.raises(NotFoundError):
            await change_profile(connection, b, pa, feedback_limit_bw=1.0)  # another clinic's patient
        with pytest.raises(ForcecastValueError, match="not profile fields: code"):
            await change_profile(connection, a, pa, code="X")
        with pytest.raises(ProfileError, match="feedback_limit_bw"):
            await change_profile(connection, a, pa, feedback_limit_bw=9.0)
        assert (await profile_of(connection, pa)).version == 2
        actions = (await connection.execute(select(audit_log.c.action, audit_log.c.detail))).all()
        assert [a for a, _ in actions].count("patient.profile") == 1

    run(clinic_db.url, work)


def test_devices_enrol_revoke_and_re_enrol(clinic_db: ClinicTestDb) -> None:
    async def work(connection: AsyncConnection) -> None:
        a, pa, b, pb = await two_clinics(connection)
        device, token = await enroll_device(connection, a, pa, "fc-1")
        stored = await connection.scalar(select(devices.c.token_hash).where(devices.c.device_id == "fc-1"))
        assert stored == token_hash(token) and token not in str(stored)
        found = await device_by_token(connection, token)
        assert found is not None and found.device_id == "fc-1" and found.patient_code == "P1" and found.active
        assert await device_by_token(connection, new_token()) is None
        with pytest.raises(AlreadyExistsError, match="revoke it first"):
            await enroll_device(connection, a, pa, "fc-1")
        with pytest.raises(AlreadyExistsError, match="another clinic"):
            await enroll_device(connection, b, pb, "fc-1")
        with pytest.raises(NotFoundError):
            await enroll_device(connection, a, pb, "fc-2")  # clinic A cannot enrol to clinic B's patient
        revoked = await revoke_device(connection, "fc-1")
        assert not revoked.active
        assert not (await device_by_token(connection, token)).active  # type: ignore[union-attr]
        again, second = await enroll_device(connection, a, pa, "fc-1")
        assert second != token and again.active and again.pk == device.pk
        assert await device_by_token(connection, token) is None
        with pytest.raises(NotFoundError):
            await revoke_device(connection, "fc-404")
        assert [d.device_id for d in await list_devices(connection, b)] == []
        assert [d.device_id for d in await list_devices(connection)] == ["fc-1"]
        actions = [r[0] for r in (await connection.execute(select(audit_log.c.action).order_by(audit_log.c.id)))]
        assert actions.count("device.enrol") == 2 and actions.count("device.revoke") == 1

    run(clinic_db.url, work)


def test_sync_sessions_are_audited_once_and_applied_profiles_only_go_up(clinic_db: ClinicTestDb) -> None:
    async def work(connection: AsyncConnection) -> None:
        a, pa, _, _ = await two_clinics(connection)
        await enroll_device(connection, a, pa, "fc-1")
        await change_profile(connection, a, pa, feedback_limit_bw=1.1)
        device = await device_by_id(connection, "fc-1")
        assert device is not None and device.profile_version == 2
        assert await note_sync(connection, device, now=1000.0)
        for t in (1010.0, 1100.0, 1500.0):  # within the session: no new audit row
            current = await device_by_id(connection, "fc-1")
            assert current is not None and not await note_sync(connection, current, now=t)
        later = await device_by_id(connection, "fc-1")
        assert later is not None and later.last_sync_at == 1500.0
        assert await note_sync(connection, later, now=1500.0 + 601.0)  # a new session after 10 minutes
        sessions = (await connection.execute(select(audit_log).where(audit_log.c.action == "sync.session"))).all()
        assert len(sessions) == 2
        assert await mark_profile_applied(connection, later, 2) == 2
        newer = await device_by_id(connection, "fc-1")
        assert newer is not None and await mark_profile_applied(connection, newer, 1) == 2
        with pytest.raises(ForcecastValueError, match="never issued"):
            await mark_profile_applied(connection, newer, 3)

    run(clinic_db.url, work)


def test_database_urls_get_their_async_driver() -> None:
    assert async_url("postgresql://u:p@h/db").drivername == "postgresql+asyncpg"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(DatabaseUrlError, match="mysql"):
        async_url("mysql://u@h/db")
    with pytest.raises(DatabaseUrlError, match="not a URL"):
        async_url("just words")
