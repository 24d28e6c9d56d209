"""Alembic migrations of the clinic database (run through :mod:`forcecast.clinic.db.migrate`)."""
