"""The first clinic schema: clinics, users, sessions, patients, devices, records, notes, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "clinics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clinics"),
        sa.UniqueConstraint("name", name="uq_clinics_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("disabled_at", sa.Double(), nullable=True),
        sa.CheckConstraint("role IN ('physio', 'admin')", name="ck_users_role"),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name="fk_users_clinic_id_clinics"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("ix_users_clinic_id", "users", ["clinic_id"])
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("affected_side", sa.String(8), nullable=False),
        sa.Column("hka_deg", sa.Double(), nullable=True),
        sa.Column("body_mass_kg", sa.Double(), nullable=False),
        sa.Column("height_m", sa.Double(), nullable=False),
        sa.Column("feedback_limit_bw", sa.Double(), nullable=True),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint("affected_side IN ('left', 'right', 'none')", name="ck_patients_affected_side"),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name="fk_patients_clinic_id_clinics"),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        sa.UniqueConstraint("clinic_id", "code", name="uq_patients_clinic_code"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("enrolled_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_sync_at", sa.Double(), nullable=True),
        sa.Column("profile_version_applied", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name="fk_devices_clinic_id_clinics"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name="fk_devices_patient_id_patients"),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("device_id", name="uq_devices_device_id"),
        sa.UniqueConstraint("token_hash", name="uq_devices_token_hash"),
    )
    op.create_index("ix_devices_clinic_id", "devices", ["clinic_id"])
    op.create_index("ix_devices_patient_id", "devices", ["patient_id"])
    op.create_table(
        "records",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("t_host", sa.Double(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("waveform", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.CheckConstraint("kind IN ('step', 'summary', 'event')", name="ck_records_kind"),
        sa.ForeignKeyConstraint(["device_pk"], ["devices.id"], name="fk_records_device_pk_devices"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name="fk_records_patient_id_patients"),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.UniqueConstraint("device_pk", "store_id", "kind", "seq", name="uq_records_key"),
    )
    op.create_index("ix_records_patient_kind_time", "records", ["patient_id", "kind", "t_host"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name="fk_notes_patient_id_patients"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_notes_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
    )
    op.create_index("ix_notes_patient_id", "notes", ["patient_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("device_pk", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=True),
        sa.Column("object_id", sa.String(128), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name="fk_audit_log_clinic_id_clinics"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_audit_log_user_id_users"),
        sa.ForeignKeyConstraint(["device_pk"], ["devices.id"], name="fk_audit_log_device_pk_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_clinic_at", "audit_log", ["clinic_id", "at"])


def downgrade() -> None:
    """Drop every table (the database's data with them)."""
    for index, table in (
        ("ix_audit_log_clinic_at", "audit_log"),
        ("ix_notes_patient_id", "notes"),
        ("ix_records_patient_kind_time", "records"),
        ("ix_devices_patient_id", "devices"),
        ("ix_devices_clinic_id", "devices"),
        ("ix_sessions_user_id", "sessions"),
        ("ix_users_clinic_id", "users"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("audit_log", "notes", "records", "devices", "patients", "sessions", "users", "clinics"):
        op.drop_table(table)
