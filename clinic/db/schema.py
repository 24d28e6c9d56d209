"""The clinic database's tables: SQLAlchemy Core ``Table`` objects on one :data:`metadata`.

The same schema serves PostgreSQL (production) and SQLite (the embedded default). Conventions, so that
every query reads the same on both:

- Times are seconds since the Unix epoch (UTC) in ``DOUBLE PRECISION`` columns: ``created_at``,
  ``expires_at``, ``t_host`` ... (no time-zone handling differs between the two databases that way).
- Primary keys are integers the database assigns; ``records.id`` is a 64-bit integer on PostgreSQL.
- Constraint and index names follow :data:`NAMING` so migrations can name what they change.
- Every row that belongs to a clinic reaches its clinic through ``clinic_id`` (patients, users, devices)
  or through its patient (records, notes): dashboard queries filter by the logged-in user's clinic.

The migrations in :mod:`forcecast.clinic.db.migrations` build exactly this schema (a test compares them);
change a table here only together with a new migration.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ROLES: Final = ("physio", "admin")
SIDES: Final = ("left", "right", "none")
RECORD_KINDS: Final = ("step", "summary", "event")

metadata = MetaData(naming_convention=NAMING)

# A 64-bit key that SQLite still numbers by itself (SQLite assigns rowids only to INTEGER PRIMARY KEY).
BigKey = BigInteger().with_variant(Integer(), "sqlite")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


clinics = Table(
    "clinics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clinic_id", Integer, ForeignKey("clinics.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("disabled_at", Double, nullable=True),
    CheckConstraint(f"role IN ({_quoted(ROLES)})", name="role"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
)

patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clinic_id", Integer, ForeignKey("clinics.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("affected_side", String(8), nullable=False),
    Column("hka_deg", Double, nullable=True),
    Column("body_mass_kg", Double, nullable=False),
    Column("height_m", Double, nullable=False),
    Column("feedback_limit_bw", Double, nullable=True),
    Column("profile_version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("clinic_id", "code", name="uq_patients_clinic_code"),
    CheckConstraint(f"affected_side IN ({_quoted(SIDES)})", name="affected_side"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clinic_id", Integer, ForeignKey("clinics.id"), nullable=False, index=True),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False, index=True),
    Column("device_id", String(128), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("enrolled_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Column("last_sync_at", Double, nullable=True),
    Column("profile_version_applied", Integer, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False),
    Column("store_id", String(128), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("t_host", Double, nullable=True),
    Column("payload", Text, nullable=False),
    Column("waveform", LargeBinary, nullable=True),
    Column("received_at", Double, nullable=False),
    UniqueConstraint("device_pk", "store_id", "kind", "seq", name="uq_records_key"),
    CheckConstraint(f"kind IN ({_quoted(RECORD_KINDS)})", name="kind"),
    Index("ix_records_patient_kind_time", "patient_id", "kind", "t_host"),
)

record_buckets = Table(
    "record_buckets",
    metadata,
    Column("patient_id", Integer, ForeignKey("patients.id"), primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("steps", Integer, nullable=False),
    Column("peak_sum", Double, nullable=False),
    Column("peak_n", Integer, nullable=False),
    Column("loading_rate_sum", Double, nullable=False),
    Column("loading_rate_n", Integer, nullable=False),
    Column("load_bws", Double, nullable=False),
    Column("wear_s", Double, nullable=False),
    Column("cues", Integer, nullable=False),
    Column("quality", Integer, nullable=False),
)
"""Per patient and quarter hour (``bucket`` = ⌊t_host / 900⌋), what its records add to the dashboard's daily
figures (:mod:`forcecast.clinic.tally`); written with each new record, in its transaction."""

notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("text", Text, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("clinic_id", Integer, ForeignKey("clinics.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=True),
    Column("object_id", String(128), nullable=True),
    Column("at", Double, nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_audit_log_clinic_at", "clinic_id", "at"),
)
