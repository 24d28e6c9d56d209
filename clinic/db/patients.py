"""Patients of a clinic and their device profile (feedback limit and static features, versioned).

A patient's *profile* is what their device must know: the feedback limit and the static features the model
reads (knee alignment, affected side, body mass, height). Every change to it bumps ``profile_version``; the
sync API hands the newest profile to the patient's host until the host reports that version applied.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.audit import audit
from forcecast.clinic.db.errors import AlreadyExistsError, NotFoundError
from forcecast.clinic.db.schema import patients
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.profile import PatientProfile

PROFILE_FIELDS = ("feedback_limit_bw", "hka_deg", "affected_side", "body_mass_kg", "height_m")
"""The patient columns that make up the device profile (a change to any bumps its version)."""


def check_profile_values(values: dict[str, Any]) -> None:
    """Refuse profile values the device could not use: the ranges of :class:`PatientProfile` (``device.toml``).

    ``values`` may hold any of :data:`PROFILE_FIELDS`; the others are taken as valid.

    Raises
    ------
    forcecast.edge.profile.ProfileError
        Naming the field, the value and its range.
    """
    probe = {"version": 1, "feedback_limit_bw": None, "body_mass_kg": 70.0, "height_m": 1.7, "hka_deg": None}
    PatientProfile(**(probe | {"affected_side": "none"} | values))


async def add_patient(
    connection: AsyncConnection,
    clinic_id: int,
    code: str,
    display_name: str,
    *,
    affected_side: str,
    body_mass_kg: float,
    height_m: float,
    hka_deg: float | None = None,
    feedback_limit_bw: float | None = None,
) -> int:
    """Create a patient of a clinic (profile version 1); returns the patient's id.

    Raises
    ------
    ForcecastValueError
        A profile value the device could not use (:class:`~forcecast.edge.profile.ProfileError`), or an empty
        code.
    AlreadyExistsError
        If the clinic has a patient of that code.
    """
    code = code.strip()
    if not code:
        raise ForcecastValueError("a patient needs a code (pseudonymous, unique in the clinic)")
    values = {
        "affected_side": affected_side,
        "body_mass_kg": body_mass_kg,
        "height_m": height_m,
        "hka_deg": hka_deg,
        "feedback_limit_bw": feedback_limit_bw,
    }
    check_profile_values(values)
    try:
        async with connection.begin_nested():
            result = await connection.execute(
                insert(patients)
                .values(
                    clinic_id=clinic_id,
                    code=code,
                    display_name=display_name.strip() or code,
                    profile_version=1,
                    created_at=time.time(),
                    **values,
                )
                .returning(patients.c.id)
            )
    except IntegrityError:
        raise AlreadyExistsError(f"the clinic has a patient {code!r} already") from None
    patient_id = int(result.scalar_one())
    await audit(connection, clinic_id, "patient.create", "patient", patient_id, detail={"code": code})
    return patient_id


async def patient_id_of(connection: AsyncConnection, clinic_id: int, code: str) -> int:
    """The id of the clinic's patient of that code (another clinic's patient is not found either).

    Raises
    ------
    NotFoundError
        Naming the code.
    """
    found = await connection.scalar(
        select(patients.c.id).where(patients.c.clinic_id == clinic_id, patients.c.code == code.strip())
    )
    if found is None:
        raise NotFoundError(f"the clinic has no patient {code!r}")
    return int(found)


async def profile_of(connection: AsyncConnection, patient_id: int) -> PatientProfile:
    """A patient's current device profile.

    Raises
    ------
    NotFoundError
        If there is no such patient.
    """
    row = (
        await connection.execute(
            select(patients.c.profile_version, *(patients.c[name] for name in PROFILE_FIELDS)).where(
                patients.c.id == patient_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no patient {patient_id}")
    return PatientProfile(
        version=int(row.profile_version),
        feedback_limit_bw=row.feedback_limit_bw,
        hka_deg=row.hka_deg,
        affected_side=row.affected_side,
        body_mass_kg=float(row.body_mass_kg),
        height_m=float(row.height_m),
    )


async def change_profile(
    connection: AsyncConnection, clinic_id: int, patient_id: int, user_id: int | None = None, **changes: Any
) -> PatientProfile:
    """Change profile fields of a clinic's patient and bump the profile version; returns the new profile.

    ``changes`` holds fields of :data:`PROFILE_FIELDS` (a value of None clears ``hka_deg`` or
    ``feedback_limit_bw``). Nothing changes, and the version stays, when the values are the ones stored.

    Raises
    ------
    ForcecastValueError
        An unknown field or a value the device could not use.
    NotFoundError
        If the clinic has no such patient (another clinic's patient is not found either).
    """
    unknown = sorted(set(changes) - set(PROFILE_FIELDS))
    if unknown:
        raise ForcecastValueError(f"not profile fields: {', '.join(unknown)}; known: {', '.join(PROFILE_FIELDS)}")
    check_profile_values(changes)
    owner = await connection.scalar(select(patients.c.clinic_id).where(patients.c.id == patient_id))
    if owner != clinic_id:
        raise NotFoundError(f"the clinic has no patient {patient_id}")
    current = await profile_of(connection, patient_id)
    if all(getattr(current, name) == value for name, value in changes.items()):
        return current
    await connection.execute(
        update(patients)
        .where(patients.c.id == patient_id)
        .values(profile_version=patients.c.profile_version + 1, **changes)
    )
    profile = await profile_of(connection, patient_id)
    detail = {name: value for name, value in changes.items()} | {"version": profile.version}
    await audit(connection, clinic_id, "patient.profile", "patient", patient_id, user_id=user_id, detail=detail)
    return profile
