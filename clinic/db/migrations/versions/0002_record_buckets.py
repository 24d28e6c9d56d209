"""Add ``record_buckets`` (per patient and quarter hour, the records' shares of the daily figures) and fill it.

It is filled from the records already held. The patient list and trends read these sums instead of every
record's JSON (seconds per patient-month before).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from forcecast.clinic.tally import COLUMNS, NOTHING, Tally, bucket_of, tally_of

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 20_000


def upgrade() -> None:
    """Create ``record_buckets`` and add up every record held so far into it."""
    op.create_table(
        "record_buckets",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("peak_sum", sa.Double(), nullable=False),
        sa.Column("peak_n", sa.Integer(), nullable=False),
        sa.Column("loading_rate_sum", sa.Double(), nullable=False),
        sa.Column("loading_rate_n", sa.Integer(), nullable=False),
        sa.Column("load_bws", sa.Double(), nullable=False),
        sa.Column("wear_s", sa.Double(), nullable=False),
        sa.Column("cues", sa.Integer(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name="fk_record_buckets_patient_id_patients"),
        sa.PrimaryKeyConstraint("patient_id", "bucket", name="pk_record_buckets"),
    )
    _fill()


def _fill() -> None:
    """Tally the records held (in batches, so a large database is not read into memory at once)."""
    connection = op.get_bind()
    records = sa.table(
        "records",
        sa.column("id", sa.BigInteger()),
        sa.column("patient_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("t_host", sa.Double()),
        sa.column("payload", sa.Text()),
    )
    buckets = sa.table("record_buckets", *(sa.column(name) for name in ("patient_id", "bucket", *COLUMNS)))
    sums: dict[tuple[int, int], Tally] = {}
    last = 0
    while True:
        rows = connection.execute(
            sa.select(records.c.id, records.c.patient_id, records.c.kind, records.c.t_host, records.c.payload)
            .where(records.c.id > last, records.c.t_host.is_not(None))
            .order_by(records.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            tally = tally_of(row.kind, json.loads(row.payload))
            if tally != NOTHING:
                key = (int(row.patient_id), bucket_of(float(row.t_host)))
                sums[key] = sums.get(key, NOTHING) + tally
        last = int(rows[-1].id)
    values = [{"patient_id": p, "bucket": b, **tally.as_row()} for (p, b), tally in sorted(sums.items())]
    for start in range(0, len(values), BATCH):
        connection.execute(sa.insert(buckets), values[start : start + BATCH])


def downgrade() -> None:
    """Drop the sums (the records they were made from stay)."""
    op.drop_table("record_buckets")
