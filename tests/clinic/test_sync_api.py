"""The sync API on SQLite and PostgreSQL: idempotent pushes, whole-batch refusals naming the record, tokens, profile."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from clinic_db import ClinicTestDb
from clinic_seed import app_client, bearer, count_records, seed, step_item
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.db.devices import revoke_device
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import upgrade
from forcecast.clinic.db.patients import change_profile
from forcecast.clinic.db.schema import audit_log, devices, records
from forcecast.clinic.sync_wire import SyncRequestError, parse_batch

RECORDS = "/api/v1/sync/records"


def batch(device_id: str, seqs: range | list[int], store_id: str = "store-1", **item: Any) -> dict[str, Any]:
    return {"device_id": device_id, "store_id": store_id, "records": [step_item(s, **item) for s in seqs]}


def test_a_batch_is_stored_once_and_a_repush_counts_duplicates(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> None:
        seeded = await seed(clinic_db.url)
        device, auth = seeded.device_ids[0], bearer(seeded.tokens[0])
        async with app_client(clinic_db.settings) as client:
            first = await client.post(RECORDS, json=batch(device, range(1, 51)), headers=auth)
            assert first.status == 200, await first.text()
            assert (await first.json())["accepted"] == 50
            again = await client.post(RECORDS, json=batch(device, range(1, 51)), headers=auth)
            assert await again.json() | {"profile": None} == {"accepted": 0, "duplicates": 50, "profile": None}
            overlap = await client.post(RECORDS, json=batch(device, range(41, 61)), headers=auth)
            assert (await overlap.json())["accepted"] == 10 and (await overlap.json())["duplicates"] == 10
            other_store = await client.post(RECORDS, json=batch(device, [1, 2, 2, 3, 4, 5], "store-2"), headers=auth)
            assert (await other_store.json())["accepted"] == 5  # a key twice in one batch is stored once
            assert (await other_store.json())["duplicates"] == 1
            state = await (await client.get("/api/v1/sync/state", headers=auth)).json()
        assert state["stores"] == [
            {"store_id": "store-1", "kind": "step", "max_seq": 60, "count": 60},
            {"store_id": "store-2", "kind": "step", "max_seq": 5, "count": 5},
        ]
        assert await count_records(clinic_db.url) == (65, 65)

    asyncio.run(scenario())


def test_a_bad_record_refuses_the_whole_batch_and_the_resumed_push_completes(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> None:
        seeded = await seed(clinic_db.url)
        device, auth = seeded.device_ids[0], bearer(seeded.tokens[0])
        body = batch(device, range(1, 21))
        body["records"][12]["payload"]["stance_s"] = "long"
        async with app_client(clinic_db.settings) as client:
            refused = await client.post(RECORDS, json=body, headers=auth)
            error = (await refused.json())["error"]
            assert refused.status == 400
            assert error["record"] == {"index": 12, "kind": "step", "seq": 13} and error["field"] == "payload"
            assert "stance_s" in error["message"] and error["reason"] == "bad_field"
            assert await count_records(clinic_db.url) == (0, 0)
            # The host pushed 1..10 before (an answer lost), then resumes with the whole range.
            await client.post(RECORDS, json=batch(device, range(1, 11)), headers=auth)
            resumed = await (await client.post(RECORDS, json=batch(device, range(1, 21)), headers=auth)).json()
        assert (resumed["accepted"], resumed["duplicates"]) == (10, 10)
        assert await count_records(clinic_db.url) == (20, 20)

    asyncio.run(scenario())


def test_a_record_of_a_newer_schema_version_is_refused_by_name(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> dict[str, Any]:
        seeded = await seed(clinic_db.url)
        body = batch(seeded.device_ids[0], range(1, 4))
        body["records"][1]["payload"]["v"] = 99
        async with app_client(clinic_db.settings) as client:
            answer = await client.post(RECORDS, json=body, headers=bearer(seeded.tokens[0]))
            assert answer.status == 400
            return dict((await answer.json())["error"])

    error = asyncio.run(scenario())
    assert error["reason"] == "newer_version" and error["record"]["seq"] == 2
    assert "version 99 is newer" in error["message"]
    assert asyncio.run(count_records(clinic_db.url)) == (0, 0)


def test_tokens_missing_unknown_revoked_or_of_another_device_are_refused(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> list[tuple[int, str]]:
        seeded = await seed(clinic_db.url, devices=2)
        first = seeded.device_ids[0]
        outcomes = []
        async with app_client(clinic_db.settings) as client:
            ok = await client.post(RECORDS, json=batch(first, range(1, 3)), headers=bearer(seeded.tokens[0]))
            assert ok.status == 200
            engine = create_engine(clinic_db.url)
            async with engine.begin() as connection:
                await revoke_device(connection, first)
            await engine.dispose()
            for headers, body in (
                ({}, batch(first, range(3, 5))),
                (bearer("x" * 43), batch(first, range(3, 5))),
                (bearer(seeded.tokens[0]), batch(first, range(3, 5))),
                (bearer(seeded.tokens[1]), batch(first, range(3, 5))),
            ):
                answer = await client.post(RECORDS, json=body, headers=headers)
                outcomes.append((answer.status, (await answer.json())["error"]["reason"]))
            state = await client.get("/api/v1/sync/state", headers=bearer(seeded.tokens[0]))
            outcomes.append((state.status, (await state.json())["error"]["reason"]))
            assert state.headers["WWW-Authenticate"].startswith("Bearer")
        return outcomes

    assert asyncio.run(scenario()) == [
        (401, "no_token"),
        (401, "unknown_token"),
        (401, "revoked_token"),
        (403, "wrong_device"),
        (401, "revoked_token"),
    ]
    assert asyncio.run(count_records(clinic_db.url)) == (2, 2)


def test_batches_over_the_limits_answer_413(clinic_db: ClinicTestDb) -> None:
    small = dataclasses.replace(clinic_db.settings, max_batch_records=5, max_body_bytes=20_000)

    async def scenario() -> list[tuple[int, str]]:
        seeded = await seed(clinic_db.url)
        device, auth = seeded.device_ids[0], bearer(seeded.tokens[0])
        async with app_client(small) as client:
            many = await client.post(RECORDS, json=batch(device, range(1, 7)), headers=auth)
            big = await client.post(RECORDS, data=b" " * 30_000, headers=auth | {"Content-Type": "application/json"})
            return [(r.status, (await r.json())["error"]["reason"]) for r in (many, big)]

    assert asyncio.run(scenario()) == [(413, "too_many_records"), (413, "body_too_large")]
    assert asyncio.run(count_records(clinic_db.url)) == (0, 0)


def test_profile_is_offered_until_applied_and_again_after_a_change(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> None:
        seeded = await seed(clinic_db.url)
        device, auth = seeded.device_ids[0], bearer(seeded.tokens[0])
        async with app_client(clinic_db.settings) as client:
            first = await (await client.post(RECORDS, json=batch(device, [1]), headers=auth)).json()
            assert first["profile"] == {
                "version": 1, "feedback_limit_bw": 1.3, "hka_deg": 3.0, "affected_side": "left",
                "body_mass_kg": 70.0, "height_m": 1.75,
            }  # fmt: skip
            never = await client.post("/api/v1/sync/profile-applied", json={"version": 2}, headers=auth)
            assert never.status == 400 and (await never.json())["error"]["field"] == "version"
            applied = await client.post("/api/v1/sync/profile-applied", json={"version": 1}, headers=auth)
            assert await applied.json() == {"profile_version_applied": 1}
            quiet = await (await client.post(RECORDS, json=batch(device, [2]), headers=auth)).json()
            assert quiet["profile"] is None
            engine = create_engine(clinic_db.url)
            async with engine.begin() as connection:
                await change_profile(connection, seeded.clinic_id, seeded.patient_id, feedback_limit_bw=1.2)
                stored = await connection.scalar(
                    select(devices.c.profile_version_applied).where(devices.c.device_id == device)
                )
                sessions = (
                    await connection.execute(select(audit_log.c.action).where(audit_log.c.action == "sync.session"))
                ).all()
            await engine.dispose()
            assert stored == 1 and len(sessions) == 1  # one audit row for the whole sync session
            changed = await (await client.post(RECORDS, json=batch(device, [3]), headers=auth)).json()
            assert changed["profile"]["version"] == 2 and changed["profile"]["feedback_limit_bw"] == 1.2
            state = await (await client.get("/api/v1/sync/state", headers=auth)).json()
            assert state["profile"]["version"] == 2 and state["profile_version_applied"] == 1

    asyncio.run(scenario())


def test_a_waveform_inside_the_payload_is_stored_like_one_sent_as_base64(clinic_db: ClinicTestDb) -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        seeded = await seed(clinic_db.url)
        device, auth = seeded.device_ids[0], bearer(seeded.tokens[0])
        async with app_client(clinic_db.settings) as client:
            await client.post(RECORDS, json=batch(device, [1], "inline", b64=False), headers=auth)
            await client.post(RECORDS, json=batch(device, [1], "b64", b64=True), headers=auth)
        engine = create_engine(clinic_db.url)
        async with engine.connect() as connection:
            rows = (await connection.execute(select(records.c.payload, records.c.waveform))).all()
        await engine.dispose()
        return [(str(p), bytes(w)) for p, w in rows]

    (payload_a, wave_a), (payload_b, wave_b) = asyncio.run(scenario())
    assert payload_a == payload_b and "waveform_bw" not in json.loads(payload_a)
    assert wave_a == wave_b and np.frombuffer(wave_a, "<f4").shape == (303,)


GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
RECORD_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["step", "summary", "event", "nope"]) | GARBAGE,
        "seq": st.integers(-2, 2**64) | GARBAGE,
        "t_host": GARBAGE,
        "payload": GARBAGE,
        "waveform_b64": st.text(max_size=12) | GARBAGE,
    },
)
BATCHES = st.fixed_dictionaries(
    {}, optional={"device_id": GARBAGE, "store_id": GARBAGE, "records": st.lists(RECORD_FIELDS, max_size=3) | GARBAGE}
)


@settings(max_examples=300, deadline=None)
@given(body=BATCHES | GARBAGE)
def test_the_batch_reader_refuses_garbage_only_with_its_own_error(body: Any) -> None:
    """Any JSON value gives a checked batch or a SyncRequestError with a 4xx status, never another exception."""
    try:
        parsed = parse_batch(body, 10) if isinstance(body, dict) else None
    except SyncRequestError as error:
        assert error.status in (400, 413) and error.reason and str(error)
        return
    if parsed is not None:
        assert all(r.seq >= 1 for r in parsed.records)


def test_garbage_bodies_over_http_answer_4xx_and_store_nothing(tmp_path: Path) -> None:
    """Through the whole server (on SQLite: the reader is the same on both databases), on one event loop."""
    url = f"sqlite:///{tmp_path / 'garbage.db'}"
    clinic_db = ClinicTestDb("sqlite", url, ClinicSettings(database_url=url, port=0))

    async def start() -> tuple[Any, Any]:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        seeded = await seed(clinic_db.url)
        holder = app_client(clinic_db.settings)
        client = await holder.__aenter__()
        return (holder, client), seeded

    loop = asyncio.new_event_loop()
    (holder, client), seeded = loop.run_until_complete(start())
    auth = bearer(seeded.tokens[0])
    try:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=BATCHES | GARBAGE, raw=st.binary(max_size=40))
        def post(body: Any, raw: bytes) -> None:
            async def both() -> None:
                for data in (json.dumps(body).encode(), raw, base64.b64encode(raw)):
                    answer = await client.post(RECORDS, data=data, headers=auth)
                    assert answer.status in (200, 400, 403, 413), await answer.text()
                    if answer.status != 200:
                        assert (await answer.json())["error"]["reason"]

            loop.run_until_complete(both())

        post()
    finally:
        loop.run_until_complete(holder.__aexit__(None, None, None))
        loop.close()
    assert asyncio.run(count_records(clinic_db.url)) == (0, 0)
