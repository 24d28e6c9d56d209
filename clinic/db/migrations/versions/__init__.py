"""The migration scripts, one per schema change, written by hand against :mod:`forcecast.clinic.db.schema`."""
