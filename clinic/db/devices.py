"""Devices enrolled to patients: enrolment (a new token, shown once), revocation, listing, token lookup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.audit import audit
from forcecast.clinic.db.errors import AlreadyExistsError, NotFoundError
from forcecast.clinic.db.schema import devices, patients
from forcecast.clinic.tokens import new_token, token_hash
from forcecast.edge.errors import ForcecastValueError


@dataclass(frozen=True)
class Device:
    """One enrolled device as the clinic knows it.

    Attributes
    ----------
    pk
        The row's id (records point to it).
    device_id
        The device's own id (what its host reports).
    clinic_id, patient_id
        Whose device it is.
    patient_code
        The patient's pseudonymous code.
    enrolled_at, revoked_at, last_sync_at
        Epoch seconds (None: not revoked, never synced).
    profile_version_applied
        The newest profile version the host wrote to the device (0: none yet).
    profile_version
        The patient's current profile version (newer than the applied one: the host gets the profile).
    """

    pk: int
    device_id: str
    clinic_id: int
    patient_id: int
    patient_code: str
    enrolled_at: float
    revoked_at: float | None
    last_sync_at: float | None
    profile_version_applied: int
    profile_version: int

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


_COLUMNS = (
    devices.c.id,
    devices.c.device_id,
    devices.c.clinic_id,
    devices.c.patient_id,
    patients.c.code,
    devices.c.enrolled_at,
    devices.c.revoked_at,
    devices.c.last_sync_at,
    devices.c.profile_version_applied,
    patients.c.profile_version,
)


def _device(row: Row[Any]) -> Device:
    return Device(
        pk=int(row.id),
        device_id=str(row.device_id),
        clinic_id=int(row.clinic_id),
        patient_id=int(row.patient_id),
        patient_code=str(row.code),
        enrolled_at=float(row.enrolled_at),
        revoked_at=None if row.revoked_at is None else float(row.revoked_at),
        last_sync_at=None if row.last_sync_at is None else float(row.last_sync_at),
        profile_version_applied=int(row.profile_version_applied),
        profile_version=int(row.profile_version),
    )


def _select() -> Select[Any]:
    return select(*_COLUMNS).join(patients, patients.c.id == devices.c.patient_id)


async def enroll_device(
    connection: AsyncConnection, clinic_id: int, patient_id: int, device_id: str, user_id: int | None = None
) -> tuple[Device, str]:
    """Enrol a device to a clinic's patient; returns the device and its token (shown once, stored hashed).

    A revoked device may be enrolled again (to any patient of the same clinic): it gets a new token and its
    old records stay with the patient they came from.

    Raises
    ------
    NotFoundError
        If the clinic has no such patient.
    AlreadyExistsError
        If the device is enrolled (not revoked), or belongs to another clinic.
    """
    device_id = device_id.strip()
    if not device_id or len(device_id) > 128:
        raise ForcecastValueError("a device id is 1 to 128 characters")
    owner = await connection.scalar(select(patients.c.clinic_id).where(patients.c.id == patient_id))
    if owner != clinic_id:
        raise NotFoundError(f"the clinic has no patient {patient_id}")
    token = new_token()
    now = time.time()
    existing = await device_by_id(connection, device_id)
    if existing is not None and (existing.active or existing.clinic_id != clinic_id):
        where = "enrolled (revoke it first)" if existing.clinic_id == clinic_id else "enrolled in another clinic"
        raise AlreadyExistsError(f"device {device_id!r} is {where}")
    if existing is None:
        await connection.execute(
            insert(devices).values(
                clinic_id=clinic_id,
                patient_id=patient_id,
                device_id=device_id,
                token_hash=token_hash(token),
                enrolled_at=now,
                profile_version_applied=0,
            )
        )
    else:
        await connection.execute(
            update(devices)
            .where(devices.c.id == existing.pk)
            .values(
                patient_id=patient_id,
                token_hash=token_hash(token),
                enrolled_at=now,
                revoked_at=None,
                profile_version_applied=0,
            )
        )
    device = await device_by_id(connection, device_id)
    assert device is not None
    await audit(
        connection, clinic_id, "device.enrol", "device", device_id, user_id=user_id, detail={"patient": patient_id}
    )
    return device, token


async def revoke_device(connection: AsyncConnection, device_id: str, user_id: int | None = None) -> Device:
    """Revoke a device's token (its host is refused from now on; its records stay).

    Raises
    ------
    NotFoundError
        If no such device is enrolled.
    """
    device = await device_by_id(connection, device_id)
    if device is None:
        raise NotFoundError(f"no device {device_id!r} is enrolled")
    if device.active:
        await connection.execute(update(devices).where(devices.c.id == device.pk).values(revoked_at=time.time()))
        await audit(connection, device.clinic_id, "device.revoke", "device", device_id, user_id=user_id)
    revoked = await device_by_id(connection, device_id)
    assert revoked is not None
    return revoked


async def device_by_id(connection: AsyncConnection, device_id: str) -> Device | None:
    """The device of that id, or None."""
    row = (await connection.execute(_select().where(devices.c.device_id == device_id))).one_or_none()
    return None if row is None else _device(row)


async def device_by_token(connection: AsyncConnection, token: str) -> Device | None:
    """The device a token was issued to (revoked ones too: the caller refuses them), or None."""
    row = (await connection.execute(_select().where(devices.c.token_hash == token_hash(token)))).one_or_none()
    return None if row is None else _device(row)


async def list_devices(connection: AsyncConnection, clinic_id: int | None = None) -> list[Device]:
    """Every device (of one clinic, if given), by device id."""
    query = _select().order_by(devices.c.device_id)
    if clinic_id is not None:
        query = query.where(devices.c.clinic_id == clinic_id)
    return [_device(row) for row in (await connection.execute(query)).all()]


SYNC_SESSION_GAP_S = 600.0
"""Requests of one device less than this apart belong to one sync session (one audit row per session)."""
LAST_SYNC_RESOLUTION_S = 30.0
"""``last_sync_at`` is written at most this often per device (it is a status, not a log)."""


async def note_sync(connection: AsyncConnection, device: Device, now: float | None = None) -> bool:
    """Record that a device synced: ``last_sync_at``, and an audit row when a new sync session starts.

    Cheap on purpose (it runs with every request): nothing is written when the device synced within
    :data:`LAST_SYNC_RESOLUTION_S`, and a session's audit row is written once, by whichever request's
    conditional update wins. Returns whether this request started a new session.
    """
    now = time.time() if now is None else now
    last = device.last_sync_at
    if last is not None and now - last < LAST_SYNC_RESOLUTION_S:
        return False
    stale = devices.c.last_sync_at.is_(None) | (devices.c.last_sync_at < now - SYNC_SESSION_GAP_S)
    started = await connection.execute(update(devices).where(devices.c.id == device.pk, stale).values(last_sync_at=now))
    if started.rowcount:
        await audit(connection, device.clinic_id, "sync.session", "device", device.device_id, device_pk=device.pk)
        return True
    await connection.execute(update(devices).where(devices.c.id == device.pk).values(last_sync_at=now))
    return False


async def mark_profile_applied(connection: AsyncConnection, device: Device, version: int) -> int:
    """Record that the host wrote profile ``version`` to the device; returns the applied version now held.

    The applied version only goes up (a late report of an older version changes nothing).

    Raises
    ------
    ForcecastValueError
        If ``version`` is below 1 or newer than the patient's current profile.
    """
    if not 1 <= version <= device.profile_version:
        raise ForcecastValueError(
            f"profile version {version} was never issued for device {device.device_id!r} "
            f"(current: {device.profile_version})"
        )
    if version > device.profile_version_applied:
        await connection.execute(
            update(devices)
            .where(devices.c.id == device.pk, devices.c.profile_version_applied < version)
            .values(profile_version_applied=version)
        )
        await audit(
            connection, device.clinic_id, "device.profile_applied", "device", device.device_id,
            device_pk=device.pk, detail={"version": version},
        )  # fmt: skip
    return max(version, device.profile_version_applied)
