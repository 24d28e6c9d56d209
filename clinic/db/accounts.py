"""Clinics and their dashboard users (the server's command line creates them; the dashboard reads them)."""

from __future__ import annotations

import time

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.audit import audit
from forcecast.clinic.db.errors import AlreadyExistsError, NotFoundError
from forcecast.clinic.db.schema import ROLES, clinics, users
from forcecast.clinic.passwords import hash_password
from forcecast.edge.errors import ForcecastValueError


async def add_clinic(connection: AsyncConnection, name: str) -> int:
    """Create a clinic; returns its id.

    Raises
    ------
    AlreadyExistsError
        If a clinic of that name exists.
    """
    name = name.strip()
    if not name:
        raise ForcecastValueError("a clinic needs a name")
    try:
        async with connection.begin_nested():
            result = await connection.execute(
                insert(clinics).values(name=name, created_at=time.time()).returning(clinics.c.id)
            )
    except IntegrityError:
        raise AlreadyExistsError(f"clinic {name!r} exists already") from None
    clinic_id = int(result.scalar_one())
    await audit(connection, clinic_id, "clinic.create", "clinic", clinic_id)
    return clinic_id


async def clinic_id_of(connection: AsyncConnection, name: str) -> int:
    """The id of the clinic of that name.

    Raises
    ------
    NotFoundError
        Naming the clinic.
    """
    found = await connection.scalar(select(clinics.c.id).where(clinics.c.name == name.strip()))
    if found is None:
        raise NotFoundError(f"no clinic {name!r} (create it with 'forcecast clinic add-clinic')")
    return int(found)


async def add_user(
    connection: AsyncConnection, clinic_id: int, email: str, display_name: str, password: str, role: str = "physio"
) -> int:
    """Create a dashboard user of a clinic with an argon2id password hash; returns the user's id.

    Raises
    ------
    ForcecastValueError
        An unknown role, an address without ``@`` or a weak password (:class:`PasswordPolicyError`).
    AlreadyExistsError
        If the e-mail address is taken.
    """
    if role not in ROLES:
        raise ForcecastValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ForcecastValueError(f"{email!r} is not an e-mail address")
    password_hash = hash_password(password)
    try:
        async with connection.begin_nested():
            result = await connection.execute(
                insert(users)
                .values(
                    clinic_id=clinic_id,
                    email=email,
                    display_name=display_name.strip() or email,
                    password_hash=password_hash,
                    role=role,
                    created_at=time.time(),
                )
                .returning(users.c.id)
            )
    except IntegrityError:
        raise AlreadyExistsError(f"a user {email!r} exists already") from None
    user_id = int(result.scalar_one())
    await audit(connection, clinic_id, "user.create", "user", user_id, detail={"email": email, "role": role})
    return user_id
