"""Alembic's environment: migrations run on the connection :mod:`forcecast.clinic.db.migrate` hands over."""

from __future__ import annotations

from alembic import context

from forcecast.clinic.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run clinic migrations with 'forcecast clinic migrate', not the alembic command")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
