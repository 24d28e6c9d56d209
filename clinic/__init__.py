"""The clinic server: home hosts sync their records here; physiotherapists see their clinic's patients.

An aiohttp web application on PostgreSQL (production) or SQLite (the embedded default). It may import the device
layer (records, contracts) and the host layer (reports, analytics); never training.
"""
