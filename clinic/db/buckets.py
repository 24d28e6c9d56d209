"""The ``record_buckets`` table: records' shares of the daily figures, added up per patient and quarter hour.

:func:`add_to_buckets` runs in the transaction that stores new records, so a bucket always holds exactly the
records the clinic holds (a duplicate adds nothing: only rows the insert reported as new are counted). Rows are
upserted with the increments (``ON CONFLICT ... DO UPDATE SET n = n + excluded.n``) in bucket order, so two
processes storing records of one patient at once neither lose an increment nor deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.db.schema import record_buckets
from forcecast.clinic.tally import COLUMNS, Tally, by_bucket


async def add_to_buckets(
    connection: AsyncConnection, patient_id: int, items: Iterable[tuple[float | None, Tally]]
) -> int:
    """Add new records' tallies (with their host times) to their patient's buckets; returns the buckets touched."""
    buckets = by_bucket(items)
    if not buckets:
        return 0
    rows = [{"patient_id": patient_id, "bucket": key, **buckets[key].as_row()} for key in sorted(buckets)]
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(record_buckets)
    statement = statement.on_conflict_do_update(
        index_elements=[record_buckets.c.patient_id, record_buckets.c.bucket],
        set_={name: record_buckets.c[name] + statement.excluded[name] for name in COLUMNS},
    )
    await connection.execute(statement, rows)
    return len(rows)
