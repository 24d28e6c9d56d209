"""The clinic's database: the schema (:mod:`.schema`), the engine (:mod:`.engine`), migrations and queries."""
