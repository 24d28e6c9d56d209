"""The audit log: who (a user or a device) did what to which object of a clinic, and when."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.schema import audit_log


async def audit(
    connection: AsyncConnection,
    clinic_id: int,
    action: str,
    object_type: str | None = None,
    object_id: str | int | None = None,
    *,
    user_id: int | None = None,
    device_pk: int | None = None,
    detail: dict[str, Any] | None = None,
    at: float | None = None,
) -> None:
    """Add one audit row (in the caller's transaction, so it is kept exactly when the change is).

    Parameters
    ----------
    connection
        The connection of the transaction that makes the change.
    clinic_id
        The clinic the object belongs to.
    action
        What happened, e.g. ``device.enrol``, ``device.revoke``, ``sync.session``, ``patient.profile``.
    object_type, object_id
        What it happened to (``device``, its device id ...).
    user_id, device_pk
        Who did it: a dashboard user, a device, or neither (the command line on the server).
    detail
        Further facts, stored as JSON.
    at
        When (epoch seconds; now by default).
    """
    await connection.execute(
        insert(audit_log).values(
            clinic_id=clinic_id,
            user_id=user_id,
            device_pk=device_pk,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            at=time.time() if at is None else at,
            detail=None if detail is None else json.dumps(detail, sort_keys=True),
        )
    )
