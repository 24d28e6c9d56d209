"""The load test, bounded: 20 hosts × 300 step records to 'forcecast clinic serve' on PostgreSQL, with 1 and 2
processes and a kill -9 and restart mid-run; nothing lost, nothing stored twice (counted in the database)."""

from __future__ import annotations

import json

import pytest
from clinic_db import postgres_admin_url

from forcecast.cli import main


@pytest.mark.slow
def test_bounded_load_test_loses_and_doubles_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    admin = postgres_admin_url()
    argv = ["clinic", "loadtest", "--database", admin, "--hosts", "20", "--records", "300", "--batch", "50", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    runs = {run["scenario"]: run for run in result["runs"]}
    assert set(runs) == {"1 process", "2 processes", "restart"}
    for run in runs.values():
        assert (run["records_expected"], run["records_stored"], run["distinct_keys"]) == (6000, 6000, 6000)
        assert run["lost"] == 0 and run["duplicates"] == 0 and run["per_device"] == [300, 300]
        assert run["records_per_s"] > 0 and 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]
    restart = runs["restart"]
    assert restart["failed_requests"] > 0 and restart["restart"]["killed_at_acknowledged"] >= 1800
    assert runs["2 processes"]["processes"] == 2
