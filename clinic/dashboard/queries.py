"""The dashboard's SQL on the clinic schema (SQLAlchemy Core), every query scoped by clinic.

Every query that reads or changes a patient's data is scoped by the logged-in user's ``clinic_id``: a patient
of another clinic is not found, exactly like a missing one.

Times are Unix seconds (the schema's convention). Day figures are added up by the database over the local days
the caller names (exact bounds, so daylight-saving days count 23 or 25 hours, as in the report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.dashboard.attention import DayFigures
from forcecast.clinic.db.schema import (
    audit_log,
    clinics,
    devices,
    notes,
    patients,
    record_buckets,
    records,
    sessions,
    users,
)
from forcecast.clinic.tally import BUCKET_S
from forcecast.clinic.tally import COLUMNS as TALLY_COLUMNS

LOGIN_FAILED = "login.failed"


@dataclass(frozen=True)
class SessionUser:
    """The user behind a valid session cookie."""

    user_id: int
    clinic_id: int
    clinic_name: str
    email: str
    display_name: str
    role: str
    csrf_token: str
    token_hash: str
    last_seen_at: float

    @property
    def is_admin(self) -> bool:
        """Admins also read the clinic's audit log."""
        return self.role == "admin"


@dataclass(frozen=True)
class LoginUser:
    """A user as the login form needs them (the password hash is checked by the caller)."""

    user_id: int
    clinic_id: int
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class Patient:
    """One patient of the user's clinic."""

    id: int
    code: str
    display_name: str
    affected_side: str
    hka_deg: float | None
    body_mass_kg: float
    height_m: float
    feedback_limit_bw: float | None
    profile_version: int


@dataclass(frozen=True)
class StoredRecord:
    """A record row as the reports read it: the device it came from, kind, host time, JSON payload, waveform."""

    device_id: str
    kind: str
    t_host: float
    payload: str
    waveform: bytes | None


@dataclass(frozen=True)
class Note:
    """A clinician's note on a patient."""

    created_at: float
    author: str
    text: str


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log, with the user's name."""

    at: float
    user: str
    device: str
    action: str
    object_type: str
    object_id: str
    detail: str


# ---------------------------------------------------------------- sessions and login


async def login_user(conn: AsyncConnection, email: str) -> LoginUser | None:
    """The user with this e-mail address (compared without case), or None."""
    row = (
        await conn.execute(
            sa.select(users.c.id, users.c.clinic_id, users.c.password_hash, users.c.disabled_at).where(
                sa.func.lower(users.c.email) == email.strip().lower()
            )
        )
    ).first()
    if row is None:
        return None
    return LoginUser(row.id, row.clinic_id, row.password_hash, row.disabled_at is not None)


async def recent_login_failures(conn: AsyncConnection, user: LoginUser, since: float) -> int:
    """Failed logins of this user since a time (audit rows: the throttle lives in the database, not a process)."""
    query = sa.select(sa.func.count()).where(
        audit_log.c.clinic_id == user.clinic_id,
        audit_log.c.action == LOGIN_FAILED,
        audit_log.c.object_type == "user",
        audit_log.c.object_id == str(user.user_id),
        audit_log.c.at >= since,
    )
    return int((await conn.execute(query)).scalar_one())


async def set_password_hash(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    """Store a new hash of the user's password (after a login with one made by older parameters)."""
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash))


async def create_session(
    conn: AsyncConnection, user_id: int, token_hash: str, csrf_token: str, now: float, lifetime_s: float
) -> None:
    """A new server-side session."""
    await conn.execute(
        sa.insert(sessions).values(
            token_hash=token_hash,
            user_id=user_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=now + lifetime_s,
            last_seen_at=now,
        )
    )


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    """End a session (logout, or the old session at a new login)."""
    await conn.execute(sa.delete(sessions).where(sessions.c.token_hash == token_hash))


async def session_user(conn: AsyncConnection, token_hash: str, now: float) -> SessionUser | None:
    """The user of an unexpired session of an enabled user, or None."""
    query = (
        sa.select(
            users.c.id,
            users.c.clinic_id,
            clinics.c.name,
            users.c.email,
            users.c.display_name,
            users.c.role,
            sessions.c.csrf_token,
            sessions.c.last_seen_at,
        )
        .select_from(sessions.join(users, users.c.id == sessions.c.user_id).join(clinics))
        .where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now, users.c.disabled_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return SessionUser(row[0], row[1], row[2], row[3], row[4], row[5], row[6], token_hash, row[7])


async def touch_session(conn: AsyncConnection, token_hash: str, now: float, lifetime_s: float) -> None:
    """Slide a session's expiry (called at most once a minute per session)."""
    await conn.execute(
        sa.update(sessions)
        .where(sessions.c.token_hash == token_hash)
        .values(last_seen_at=now, expires_at=now + lifetime_s)
    )


async def purge_sessions(conn: AsyncConnection, now: float) -> None:
    """Delete expired sessions (at each login: no background task needed)."""
    await conn.execute(sa.delete(sessions).where(sessions.c.expires_at <= now))


# ---------------------------------------------------------------- audit


async def audit_entries(
    conn: AsyncConnection,
    clinic_id: int,
    *,
    action: str = "",
    user_email: str = "",
    object_type: str = "",
    object_id: str = "",
    since: float | None = None,
    until: float | None = None,
    limit: int = 500,
) -> list[AuditEntry]:
    """The clinic's audit log, newest first, filtered by whatever is given."""
    query = (
        sa.select(
            audit_log.c.at,
            users.c.email,
            devices.c.device_id,
            audit_log.c.action,
            audit_log.c.object_type,
            audit_log.c.object_id,
            audit_log.c.detail,
        )
        .select_from(audit_log.outerjoin(users, users.c.id == audit_log.c.user_id).outerjoin(devices))
        .where(audit_log.c.clinic_id == clinic_id)
        .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        .limit(limit)
    )
    if action:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if user_email:
        query = query.where(sa.func.lower(users.c.email).contains(user_email.lower(), autoescape=True))
    if object_type:
        query = query.where(audit_log.c.object_type == object_type)
    if object_id:
        query = query.where(audit_log.c.object_id == object_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    rows = (await conn.execute(query)).all()
    return [AuditEntry(r[0], r[1] or "", r[2] or "", r[3], r[4] or "", r[5] or "", r[6] or "") for r in rows]


# ---------------------------------------------------------------- patients


def _patient(row: Any) -> Patient:
    return Patient(
        row.id,
        row.code,
        row.display_name,
        row.affected_side,
        row.hka_deg,
        row.body_mass_kg,
        row.height_m,
        row.feedback_limit_bw,
        row.profile_version,
    )


_PATIENT_COLUMNS = (
    patients.c.id,
    patients.c.code,
    patients.c.display_name,
    patients.c.affected_side,
    patients.c.hka_deg,
    patients.c.body_mass_kg,
    patients.c.height_m,
    patients.c.feedback_limit_bw,
    patients.c.profile_version,
)


async def clinic_patients(conn: AsyncConnection, clinic_id: int) -> list[Patient]:
    """Every patient of the clinic, by id."""
    rows = await conn.execute(
        sa.select(*_PATIENT_COLUMNS).where(patients.c.clinic_id == clinic_id).order_by(patients.c.id)
    )
    return [_patient(r) for r in rows]


async def clinic_patient(conn: AsyncConnection, clinic_id: int, patient_id: int) -> Patient | None:
    """The patient if they belong to the clinic; None for another clinic's patient or a missing one."""
    row = (
        await conn.execute(
            sa.select(*_PATIENT_COLUMNS).where(patients.c.id == patient_id, patients.c.clinic_id == clinic_id)
        )
    ).first()
    return None if row is None else _patient(row)


async def add_note(conn: AsyncConnection, patient_id: int, user_id: int, text: str, now: float) -> int:
    """Store a note (the caller has checked the patient is the user's clinic's); returns its id."""
    result = await conn.execute(
        sa.insert(notes).values(patient_id=patient_id, user_id=user_id, created_at=now, text=text).returning(notes.c.id)
    )
    return int(result.scalar_one())


async def patient_notes(conn: AsyncConnection, clinic_id: int, patient_id: int, limit: int = 50) -> list[Note]:
    """The patient's notes, newest first (nothing for another clinic's patient)."""
    rows = await conn.execute(
        sa.select(notes.c.created_at, users.c.display_name, notes.c.text)
        .select_from(
            notes.join(users, users.c.id == notes.c.user_id).join(patients, patients.c.id == notes.c.patient_id)
        )
        .where(notes.c.patient_id == patient_id, patients.c.clinic_id == clinic_id)
        .order_by(notes.c.created_at.desc(), notes.c.id.desc())
        .limit(limit)
    )
    return [Note(r[0], r[1], r[2]) for r in rows]


async def patient_devices(conn: AsyncConnection, clinic_id: int, patient_id: int) -> list[dict[str, Any]]:
    """The patient's devices as the report's provenance table reads them (``device_id``, ``last_seen_utc`` ...)."""
    rows = await conn.execute(
        sa.select(
            devices.c.device_id,
            devices.c.last_sync_at,
            devices.c.revoked_at,
            devices.c.profile_version_applied,
        ).where(devices.c.patient_id == patient_id, devices.c.clinic_id == clinic_id)
    )
    return [
        {
            "device_id": r.device_id,
            "last_seen_utc": _utc(r.last_sync_at),
            "revoked": r.revoked_at is not None,
            "profile_version_applied": r.profile_version_applied,
        }
        for r in rows
    ]


def _utc(t: float | None) -> str:
    return "–" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- records


async def patient_records(
    conn: AsyncConnection,
    clinic_id: int,
    patient_id: int,
    start: float,
    end: float,
    kinds: Sequence[str] = ("step", "summary", "event"),
    waveforms: bool = False,
) -> list[StoredRecord]:
    """The patient's records with ``start <= t_host < end``, by time (the waveform column only when asked)."""
    query = (
        sa.select(
            devices.c.device_id,
            records.c.kind,
            records.c.t_host,
            records.c.payload,
            records.c.waveform if waveforms else sa.null().label("waveform"),
        )
        .select_from(
            records.join(devices, devices.c.id == records.c.device_pk).join(
                patients, patients.c.id == records.c.patient_id
            )
        )
        .where(
            records.c.patient_id == patient_id,
            patients.c.clinic_id == clinic_id,
            records.c.kind.in_(list(kinds)),
            records.c.t_host >= start,
            records.c.t_host < end,
        )
        .order_by(records.c.t_host, records.c.id)
    )
    rows = await conn.execute(query)
    return [StoredRecord(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]


async def daily_figures(
    conn: AsyncConnection, clinic_id: int, bounds: Sequence[tuple[date, float, float]], patient_id: int | None = None
) -> dict[int, list[DayFigures]]:
    """Per patient of the clinic (or one patient), figures per local day, added up from the quarter-hour buckets.

    Each record's share was worked out once when it arrived (:mod:`forcecast.clinic.tally`), so a page reads
    at most 96 rows per patient and day whatever the number of records.

    Parameters
    ----------
    bounds
        ``(day, start, end)`` per day, in Unix seconds, in order and not overlapping. A day holds the buckets that
        start within it (exact for every time zone in use, all a whole number of quarter hours from UTC).
    patient_id
        One patient only (None: every patient of the clinic).

    Returns
    -------
    dict[int, list[DayFigures]]
        Patient id → the days with any record (days without are left out).
    """
    if not bounds:
        return {}
    b = record_buckets
    first = [math.ceil(start / BUCKET_S) for _, start, _ in bounds]
    after = [math.ceil(end / BUCKET_S) for _, _, end in bounds]
    in_range = sa.and_(b.c.bucket >= first[0], b.c.bucket < after[-1])
    day_index = sa.case(
        *((sa.and_(b.c.bucket >= lo, b.c.bucket < hi), k) for k, (lo, hi) in enumerate(zip(first, after, strict=True))),
        else_=None,
    ).label("day_index")
    query = (
        sa.select(b.c.patient_id, day_index, *(sa.func.sum(b.c[name]).label(name) for name in TALLY_COLUMNS))
        .select_from(b.join(patients, patients.c.id == b.c.patient_id))
        .where(patients.c.clinic_id == clinic_id, in_range)
        .group_by(b.c.patient_id, day_index)
    )
    if patient_id is not None:
        query = query.where(b.c.patient_id == patient_id)
    out: dict[int, list[DayFigures]] = {}
    for row in await conn.execute(query):
        if row.day_index is None:
            continue
        day = bounds[int(row.day_index)][0]
        peak_n, rate_n = int(row.peak_n or 0), int(row.loading_rate_n or 0)
        out.setdefault(int(row.patient_id), []).append(
            DayFigures(
                day=day,
                steps=int(row.steps or 0),
                wear_min=float(row.wear_s or 0.0) / 60.0,
                peak_bw_mean=round(float(row.peak_sum) / peak_n, 4) if peak_n else None,
                loading_rate_bw_s_mean=round(float(row.loading_rate_sum) / rate_n, 3) if rate_n else None,
                load_bws=float(row.load_bws or 0.0),
                cues=int(row.cues or 0),
                quality_events=int(row.quality or 0),
            )
        )
    for figures in out.values():
        figures.sort(key=lambda d: d.day)
    return out
