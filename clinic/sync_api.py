"""The sync API a home host talks to: push records, read what the clinic holds, report a profile applied.

Routes (JSON in and out; ``Authorization: Bearer <device token>`` on every one; docs/clinic.md has examples):

``POST /api/v1/sync/records``
    A batch of one device store's records → ``{"accepted", "duplicates", "profile"}``. Idempotent per
    ``(device, store_id, kind, seq)``; the whole batch is stored, or (any bad record) nothing of it.
``GET /api/v1/sync/state``
    Per store id and kind the highest seq held and the count, and the patient's current profile.
``POST /api/v1/sync/profile-applied``
    ``{"version"}``: the host wrote that profile to the device.

``profile`` in a batch's answer is the patient's profile while the device has not applied its newest version,
else ``null``. Errors are ``{"error": {"reason", "message", "record"?, "field"?}}`` with status 400 (bad body or
record, naming it), 401 (no, unknown or revoked token), 403 (a batch for another device than the token's), 413
(body or batch too large).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from forcecast.clinic.db.devices import Device, device_by_token, mark_profile_applied, note_sync
from forcecast.clinic.db.patients import profile_of
from forcecast.clinic.db.records import held_stores, store_records
from forcecast.clinic.sync_wire import SyncRequestError, parse_batch, parse_json_body
from forcecast.clinic.web_keys import ENGINE, SETTINGS
from forcecast.edge.errors import ForcecastValueError

PREFIX = "/api/v1/sync"
READ_CHUNK = 64 * 1024


def setup(app: web.Application) -> None:
    """Add the sync routes to the clinic's application."""
    app.router.add_post(f"{PREFIX}/records", push_records)
    app.router.add_get(f"{PREFIX}/state", sync_state)
    app.router.add_post(f"{PREFIX}/profile-applied", profile_applied)


def error_response(error: SyncRequestError) -> web.Response:
    """The JSON answer to a refused request."""
    response = web.json_response(error.to_json(), status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="forcecast-clinic"'
    return response


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SyncRequestError(401, "no_token", "send the device token as 'Authorization: Bearer <token>'")
    return token.strip()


async def _device(engine: AsyncEngine, request: web.Request) -> Device:
    token = _bearer(request)
    async with engine.connect() as connection:
        device = await device_by_token(connection, token)
    if device is None:
        raise SyncRequestError(401, "unknown_token", "this device token is not known to the clinic")
    if not device.active:
        raise SyncRequestError(
            401, "revoked_token", f"the token of device {device.device_id!r} was revoked; ask the clinic to re-enrol it"
        )
    return device


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise SyncRequestError(
            413, "body_too_large", f"request body of {request.content_length} bytes; at most {limit}"
        )
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise SyncRequestError(413, "body_too_large", f"request body over {limit} bytes")
    return bytes(body)


async def push_records(request: web.Request) -> web.Response:
    """``POST /api/v1/sync/records``: store a batch; answer new and duplicate counts and any pending profile."""
    engine, settings = request.app[ENGINE], request.app[SETTINGS]
    try:
        device = await _device(engine, request)
        batch = parse_batch(parse_json_body(await _body(request, settings.max_body_bytes)), settings.max_batch_records)
        if batch.device_id != device.device_id:
            raise SyncRequestError(
                403, "wrong_device", f"batch of device {batch.device_id!r} sent with the token of {device.device_id!r}"
            )
    except SyncRequestError as error:
        return error_response(error)
    async with engine.begin() as connection:
        outcome = await store_records(connection, device, batch.store_id, batch.records, time.time())
        await note_sync(connection, device)
        profile = await profile_of(connection, device.patient_id) if _profile_pending(device) else None
    answer: dict[str, Any] = {
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "profile": None if profile is None else profile.to_json(),
    }
    return web.json_response(answer)


def _profile_pending(device: Device) -> bool:
    return device.profile_version_applied < device.profile_version


async def sync_state(request: web.Request) -> web.Response:
    """``GET /api/v1/sync/state``: what the clinic holds of this device, and the patient's profile."""
    engine = request.app[ENGINE]
    try:
        device = await _device(engine, request)
    except SyncRequestError as error:
        return error_response(error)
    async with engine.begin() as connection:
        held = await held_stores(connection, device.pk)
        profile = await profile_of(connection, device.patient_id)
        await note_sync(connection, device)
    return web.json_response(
        {
            "device_id": device.device_id,
            "patient": device.patient_code,
            "stores": [{"store_id": h.store_id, "kind": h.kind, "max_seq": h.max_seq, "count": h.count} for h in held],
            "profile": profile.to_json(),
            "profile_version_applied": device.profile_version_applied,
        }
    )


async def profile_applied(request: web.Request) -> web.Response:
    """``POST /api/v1/sync/profile-applied``: the host wrote profile ``version`` to the device."""
    engine, settings = request.app[ENGINE], request.app[SETTINGS]
    try:
        device = await _device(engine, request)
        body = parse_json_body(await _body(request, settings.max_body_bytes))
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or set(body) != {"version"}:
            raise SyncRequestError(400, "bad_field", 'send {"version": <int>}', field="version")
        async with engine.begin() as connection:
            try:
                applied = await mark_profile_applied(connection, device, version)
            except ForcecastValueError as exc:
                raise SyncRequestError(400, "bad_field", str(exc), field="version") from None
            await note_sync(connection, device)
    except SyncRequestError as error:
        return error_response(error)
    return web.json_response({"profile_version_applied": applied})
