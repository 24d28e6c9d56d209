"""``forcecast demo`` as the README runs it (fewer simulated days to keep the suite quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forcecast.cli import main
from forcecast.host_app.store import HostStore


@pytest.mark.slow
@pytest.mark.tf
def test_the_demo_runs_end_to_end_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--days", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = Path(result["report"])
    assert report.exists() and report.stat().st_size > 50_000
    assert result["lost"] == 0 and result["host_steps"] == result["device_steps"] > 400
    page = report.read_text()
    assert "DEMO-01" in page and page.count('<img alt="') == 6
    assert 12.5 < result["recorded_h"] < 13.5  # worn 07:30 to about 20:30, not only the minutes of walking
    with HostStore(out / "host.sqlite") as store:
        assert store.patients() == ["DEMO-01"]
    assert (out / "model-int8.fcpkg").exists() and (out / "run" / "model_card.md").exists()
    clinic = result["clinic"]  # step 7: the demo patient's records reached the clinic's database
    assert clinic["records"] > result["host_steps"] and Path(clinic["login_file"]).exists()
