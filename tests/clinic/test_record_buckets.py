"""The dashboard's daily figures come from quarter-hour sums written at ingest (``record_buckets``): they equal
the figures worked out from every stored record's JSON by the database (the query the dashboard ran before),
on SQLite and PostgreSQL, in any time zone, with duplicates and repeated keys counted once, and a database
migrated from revision 0001 gets its sums filled from the records it already held."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from clinic_db import ClinicTestDb
from dashboard_world import build_world, day_records
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.dashboard.attention import DayFigures
from forcecast.clinic.dashboard.queries import daily_figures
from forcecast.clinic.db.accounts import add_clinic
from forcecast.clinic.db.devices import enroll_device
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.db.migrate import alembic_config, upgrade
from forcecast.clinic.db.patients import add_patient
from forcecast.clinic.db.records import store_records
from forcecast.clinic.db.schema import patients, record_buckets, records
from forcecast.clinic.tally import BUCKET_S, NOTHING, Tally, bucket_of, by_bucket, tally_of
from forcecast.host_app.analytics import QUALITY_EVENTS, day_bounds, zone

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns")
"""Whole hours, half hours (+5:30, −3:30) and a quarter hour (+5:45) from UTC."""


# ---------------------------------------------------------------- the oracle: figures out of every record's JSON


def _number(conn: AsyncConnection, document: Any, key: str) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.cast(document[key].astext, sa.Double)
    return sa.func.json_extract(document, f"$.{key}")


def _text(conn: AsyncConnection, document: Any, key: str) -> Any:
    return document[key].astext if conn.dialect.name == "postgresql" else sa.func.json_extract(document, f"$.{key}")


async def figures_from_records(
    conn: AsyncConnection, clinic_id: int, bounds: Sequence[tuple[date, float, float]]
) -> dict[int, list[DayFigures]]:
    """The daily figures added up by the database from the stored records' JSON, day by day."""
    document = sa.cast(records.c.payload, JSONB) if conn.dialect.name == "postgresql" else records.c.payload
    out: dict[int, list[DayFigures]] = {}
    for day, start, end in bounds:
        peak1, peak2 = _number(conn, document, "peak1_bw"), _number(conn, document, "peak2_bw")
        peak = sa.case((sa.or_(peak2.is_(None), peak1 >= peak2), peak1), else_=peak2)
        is_step = records.c.kind == "step"
        event = _text(conn, document, "event")
        query = (
            sa.select(
                records.c.patient_id,
                sa.func.count().filter(is_step).label("steps"),
                sa.func.avg(peak).filter(is_step).label("peak"),
                sa.func.avg(_number(conn, document, "loading_rate_bw_s")).filter(is_step).label("rate"),
                sa.func.sum(_number(conn, document, "impulse_v_bws")).filter(is_step).label("load"),
                sa.func.sum(_number(conn, document, "end_s") - _number(conn, document, "start_s"))
                .filter(records.c.kind == "summary")
                .label("wear_s"),
                sa.func.count().filter(records.c.kind == "event", event == "cue").label("cues"),
                sa.func.count().filter(records.c.kind == "event", event.in_(QUALITY_EVENTS)).label("quality"),
            )
            .select_from(records.join(patients, patients.c.id == records.c.patient_id))
            .where(patients.c.clinic_id == clinic_id, records.c.t_host >= start, records.c.t_host < end)
            .group_by(records.c.patient_id)
        )
        for row in await conn.execute(query):
            out.setdefault(int(row.patient_id), []).append(
                DayFigures(
                    day=day,
                    steps=int(row.steps or 0),
                    wear_min=float(row.wear_s or 0.0) / 60.0,
                    peak_bw_mean=None if row.peak is None else round(float(row.peak), 4),
                    loading_rate_bw_s_mean=None if row.rate is None else round(float(row.rate), 3),
                    load_bws=float(row.load or 0.0),
                    cues=int(row.cues or 0),
                    quality_events=int(row.quality or 0),
                )
            )
    return out


def same_figures(got: dict[int, list[DayFigures]], expected: dict[int, list[DayFigures]]) -> None:
    assert sorted(got) == sorted(expected)
    for patient, days in expected.items():
        assert [d.day for d in got[patient]] == [d.day for d in days]
        for mine, theirs in zip(got[patient], days, strict=True):
            assert (mine.steps, mine.cues, mine.quality_events) == (theirs.steps, theirs.cues, theirs.quality_events)
            for name in ("wear_min", "load_bws", "peak_bw_mean", "loading_rate_bw_s_mean"):
                a, b = getattr(mine, name), getattr(theirs, name)
                assert (a is None) == (b is None) and (a is None or math.isclose(a, b, rel_tol=1e-9, abs_tol=2e-3))


def windows(last_day: date, n_days: int, zone_name: str) -> list[tuple[date, float, float]]:
    tz = zone(zone_name)
    days = [last_day - timedelta(days=k) for k in range(n_days - 1, -1, -1)]
    return [(day, *day_bounds(day, tz)) for day in days]


# ---------------------------------------------------------------- tests


def test_the_sums_give_the_figures_the_records_give_in_every_zone(clinic_db: ClinicTestDb) -> None:
    today = datetime.now(UTC).date()

    async def scenario() -> list[tuple[dict[int, list[DayFigures]], dict[int, list[DayFigures]]]]:
        engine = create_engine(clinic_db.url)
        try:
            world = await build_world(engine, today)
            async with engine.connect() as conn:
                pairs = []
                for clinic in (world.clinic_a, world.clinic_b):
                    for name in ZONES:
                        bounds = windows(today, 12, name)
                        got = await daily_figures(conn, clinic, bounds)
                        pairs.append((got, await figures_from_records(conn, clinic, bounds)))
                return pairs
        finally:
            await engine.dispose()

    for got, expected in asyncio.run(scenario()):
        assert expected  # the world has records in every window
        same_figures(got, expected)


def test_duplicates_and_a_key_twice_in_a_batch_add_nothing(clinic_db: ClinicTestDb) -> None:
    day = date(2026, 11, 20)

    async def scenario() -> tuple[Sequence[Any], dict[int, Tally], int]:
        engine = create_engine(clinic_db.url)
        try:
            async with engine.begin() as conn:
                clinic = await add_clinic(conn, "Clinic D")
                patient = await add_patient(
                    conn, clinic, "D1", "Dee", affected_side="right", body_mass_kg=60.0, height_m=1.6
                )
                device, _ = await enroll_device(conn, clinic, patient, "fc-d1")
            batch = day_records(day, 80, 4, 1.2, {}, "D1", cues=3)
            async with engine.begin() as conn:
                first = await store_records(conn, device, "s", batch)
            async with engine.begin() as conn:
                again = await store_records(conn, device, "s", batch[:40] + batch[:40])  # all held; one key twice
            async with engine.begin() as conn:
                twice = await store_records(conn, device, "s2", batch[:10] + batch[:10])  # new store; each key twice
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(sa.select(record_buckets).where(record_buckets.c.patient_id == patient))
                ).all()
                held = (await conn.execute(sa.select(records.c.kind, records.c.t_host, records.c.payload))).all()
            expected = by_bucket((t, tally_of(kind, json.loads(payload))) for kind, t, payload in held)
            assert (first.accepted, again.accepted, twice.accepted, twice.duplicates) == (len(batch), 0, 10, 10)
            return rows, expected, patient
        finally:
            await engine.dispose()

    rows, expected, patient = asyncio.run(scenario())
    got = {int(row.bucket): Tally(*(getattr(row, name) for name in Tally.__dataclass_fields__)) for row in rows}
    assert got.keys() == expected.keys()
    for key, tally in expected.items():
        mine = got[key]
        assert (mine.steps, mine.peak_n, mine.loading_rate_n, mine.cues, mine.quality) == (
            tally.steps, tally.peak_n, tally.loading_rate_n, tally.cues, tally.quality,
        )  # fmt: skip
        assert math.isclose(mine.peak_sum, tally.peak_sum) and math.isclose(mine.wear_s, tally.wear_s)
    assert sum(t.steps for t in got.values()) == 80 + 10 and patient > 0


def test_a_database_of_revision_0001_gets_its_sums_from_the_records_it_held(empty_clinic_db: ClinicTestDb) -> None:
    today = date(2026, 11, 30)

    def to_0001(connection: sa.Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    async def scenario() -> tuple[dict[int, list[DayFigures]], dict[int, list[DayFigures]], str | None]:
        engine = create_engine(empty_clinic_db.url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(to_0001)
            async with engine.begin() as conn:
                clinic = await add_clinic(conn, "Clinic M")
                patient = await add_patient(
                    conn, clinic, "M1", "Em", affected_side="left", body_mass_kg=75.0, height_m=1.8
                )
                device, _ = await enroll_device(conn, clinic, patient, "fc-m1")
                seq: dict[str, int] = {}
                for back in (3, 2, 1):
                    held = {"device_pk": device.pk, "patient_id": patient, "store_id": "s", "received_at": 0.0}
                    rows = [
                        held | {"kind": r.kind, "seq": r.seq, "t_host": r.t_host, "payload": r.payload}
                        for r in day_records(today - timedelta(days=back), 60, 5, 1.1, seq, "M1", cues=2)
                    ]
                    await conn.execute(sa.insert(records), rows)  # as revision 0001 stored them: no sums
            outcome = await upgrade(engine)
            bounds = windows(today, 5, "Europe/Berlin")
            async with engine.connect() as conn:
                return (
                    await daily_figures(conn, clinic, bounds),
                    await figures_from_records(conn, clinic, bounds),
                    outcome.before,
                )
        finally:
            await engine.dispose()

    got, expected, before = asyncio.run(scenario())
    assert before == "0001" and sum(d.steps for days in expected.values() for d in days) == 180
    same_figures(got, expected)


def test_one_records_share() -> None:
    assert tally_of("step", {"peak1_bw": 1.1, "peak2_bw": 1.2, "loading_rate_bw_s": 9.0, "impulse_v_bws": 0.5}) == (
        Tally(steps=1, peak_sum=1.2, peak_n=1, loading_rate_sum=9.0, loading_rate_n=1, load_bws=0.5)
    )
    assert tally_of("step", {"peak1_bw": None, "peak2_bw": 1.0}).peak_sum == 1.0
    assert tally_of("step", {"peak1_bw": 1.3, "peak2_bw": None}).peak_sum == 1.3
    bare = tally_of("step", {"peak1_bw": "high", "loading_rate_bw_s": True, "impulse_v_bws": float("nan")})
    assert bare == Tally(steps=1)  # not numbers: counted as a step, nothing else
    assert tally_of("summary", {"start_s": 10.0, "end_s": 3610.0}) == Tally(wear_s=3600.0)
    assert tally_of("summary", {"start_s": 10.0}) == NOTHING
    assert tally_of("event", {"event": "cue"}) == Tally(cues=1)
    assert tally_of("event", {"event": QUALITY_EVENTS[0]}) == Tally(quality=1)
    assert tally_of("event", {"event": "model_switched"}) == NOTHING
    assert bucket_of(BUCKET_S * 7.0) == 7 and bucket_of(BUCKET_S * 7.0 - 1e-6) == 6 and bucket_of(-1.0) == -1


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e6, 2e9)),
            st.integers(0, 3),
            st.floats(0.5, 2.0),
        ),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_sums_of_parts_are_the_sums_of_the_whole(items: list[tuple[float | None, int, float]], cut: int) -> None:
    tallies = [(t, Tally(steps=s, peak_sum=p * s, peak_n=s)) for t, s, p in items]
    whole = by_bucket(tallies)
    parts = [by_bucket(tallies[:cut]), by_bucket(tallies[cut:])]
    merged: dict[int, Tally] = {}
    for part in parts:
        for key, tally in part.items():
            merged[key] = merged.get(key, NOTHING) + tally
    assert merged.keys() == whole.keys()
    for key in whole:
        assert merged[key].steps == whole[key].steps and math.isclose(
            merged[key].peak_sum, whole[key].peak_sum, rel_tol=1e-12, abs_tol=1e-9
        )
    assert sum(t.steps for t in whole.values()) == sum(s for t, s, _ in items if t is not None and s > 0)


@pytest.mark.parametrize("name", ZONES)
def test_every_local_day_is_a_whole_number_of_buckets(name: str) -> None:
    for day, start, end in windows(date(2026, 12, 31), 366, name):  # DST changes included
        assert start % BUCKET_S == 0 and end % BUCKET_S == 0, (name, day)
