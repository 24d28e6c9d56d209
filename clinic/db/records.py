"""Records the homes sent: idempotent bulk ingestion and what the clinic holds per device store.

A record is identified by ``(device, store id, kind, seq)`` (the unique key of the ``records`` table). A batch is
inserted with ``ON CONFLICT DO NOTHING``, so a record sent twice (a host that did not see the answer, a resumed
push, two hosts racing) is stored once and counted as a duplicate, on PostgreSQL and SQLite alike; the rows the
database reports as inserted are the new ones. On PostgreSQL the batch goes in as one ``INSERT ... SELECT FROM
unnest(arrays)`` statement (measured several times faster than SQLAlchemy's many-values insert of the same
rows); on SQLite as SQLAlchemy's dialect insert with ``RETURNING``. The new records' shares of the daily
figures go into ``record_buckets`` in the same transaction (:mod:`forcecast.clinic.db.buckets`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.buckets import add_to_buckets
from forcecast.clinic.db.devices import Device
from forcecast.clinic.db.schema import records
from forcecast.clinic.sync_wire import IncomingRecord

_KEY = ("device_pk", "store_id", "kind", "seq")


@dataclass(frozen=True)
class Ingested:
    """What a batch did: records new to the clinic and records it held already."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class HeldStore:
    """What the clinic holds of one device store and kind: the highest seq and how many records."""

    store_id: str
    kind: str
    max_seq: int
    count: int


async def store_records(
    connection: AsyncConnection,
    device: Device,
    store_id: str,
    batch: Sequence[IncomingRecord],
    received_at: float | None = None,
) -> Ingested:
    """Store a checked batch for a device's patient, each record once; counts new and duplicate records.

    Run it in the request's transaction: a failure leaves nothing of the batch behind.
    """
    if not batch:
        return Ingested(0, 0)
    now = time.time() if received_at is None else received_at
    if connection.dialect.name == "postgresql":
        inserted = await _insert_unnest(connection, device, store_id, batch, now)
    else:
        rows = [
            {
                "device_pk": device.pk,
                "patient_id": device.patient_id,
                "store_id": store_id,
                "kind": record.kind,
                "seq": record.seq,
                "t_host": record.t_host,
                "payload": record.payload,
                "waveform": record.waveform,
                "received_at": now,
            }
            for record in batch
        ]
        statement = (
            sqlite.insert(records)
            .on_conflict_do_nothing(index_elements=list(_KEY))
            .returning(records.c.kind, records.c.seq)
        )
        inserted = {(str(kind), int(seq)) for kind, seq in (await connection.execute(statement, rows)).all()}
    first: dict[tuple[str, int], IncomingRecord] = {}
    for record in batch:  # a key twice in the batch was stored once: its first copy
        first.setdefault((record.kind, record.seq), record)
    new = (record for key, record in first.items() if key in inserted)
    await add_to_buckets(connection, device.patient_id, ((record.t_host, record.tally) for record in new))
    return Ingested(len(inserted), len(batch) - len(inserted))


_UNNEST = text(
    """
    INSERT INTO records (device_pk, patient_id, store_id, kind, seq, t_host, payload, waveform, received_at)
    SELECT :device_pk, :patient_id, :store_id, u.kind, u.seq, u.t_host, u.payload, u.waveform, :received_at
    FROM unnest(CAST(:kinds AS text[]), CAST(:seqs AS bigint[]), CAST(:t_hosts AS float8[]),
                CAST(:payloads AS text[]), CAST(:waveforms AS bytea[])) AS u(kind, seq, t_host, payload, waveform)
    ON CONFLICT (device_pk, store_id, kind, seq) DO NOTHING
    RETURNING kind, seq
    """
)


async def _insert_unnest(
    connection: AsyncConnection, device: Device, store_id: str, batch: Sequence[IncomingRecord], now: float
) -> set[tuple[str, int]]:
    """PostgreSQL: the whole batch as one statement over arrays (several times faster than a row per value list).

    Returns the keys (kind, seq) of the rows it inserted, the new ones; a key held already, or twice in the batch,
    is skipped by ``ON CONFLICT DO NOTHING``.
    """
    result = await connection.execute(
        _UNNEST,
        {
            "device_pk": device.pk,
            "patient_id": device.patient_id,
            "store_id": store_id,
            "received_at": now,
            "kinds": [r.kind for r in batch],
            "seqs": [r.seq for r in batch],
            "t_hosts": [r.t_host for r in batch],
            "payloads": [r.payload for r in batch],
            "waveforms": [r.waveform for r in batch],
        },
    )
    return {(str(kind), int(seq)) for kind, seq in result.all()}


async def held_stores(connection: AsyncConnection, device_pk: int) -> list[HeldStore]:
    """Per store id and kind, the highest seq the clinic holds of a device and how many records."""
    query = (
        select(records.c.store_id, records.c.kind, func.max(records.c.seq), func.count())
        .where(records.c.device_pk == device_pk)
        .group_by(records.c.store_id, records.c.kind)
        .order_by(records.c.store_id, records.c.kind)
    )
    return [
        HeldStore(str(store), str(kind), int(top), int(count))
        for store, kind, top, count in (await connection.execute(query)).all()
    ]
