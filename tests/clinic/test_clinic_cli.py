"""``forcecast clinic ...`` end to end: migrate, create, enrol (token shown once), list, revoke, serve."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from clinic_db import ClinicTestDb
from clinic_seed import step_item

from forcecast.cli import main
from forcecast.clinic.db.devices import device_by_token
from forcecast.clinic.db.engine import create_engine


def clinic(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, Any]:
    """Run one ``forcecast clinic`` command with --json; returns its status and its JSON (or stderr)."""
    status = main(["clinic", argv[0], "--database", url, "--json", *argv[1:]])
    out, err = capsys.readouterr()
    return status, json.loads(out) if status == 0 else err


def test_the_administration_commands_on_both_databases(
    empty_clinic_db: ClinicTestDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = empty_clinic_db.url
    status, err = clinic(capsys, url, "devices")
    assert status == 2 and "forcecast clinic migrate" in err  # refused before the schema exists
    assert clinic(capsys, url, "migrate")[1]["before"] is None
    assert clinic(capsys, url, "migrate")[1]["before"] == clinic(capsys, url, "migrate")[1]["after"]
    assert clinic(capsys, url, "add-clinic", "Physio Nord")[0] == 0
    status, err = clinic(capsys, url, "add-clinic", "Physio Nord")
    assert status == 2 and "exists already" in err
    password = tmp_path / "pw"
    password.write_text("a long enough secret\n")
    args = ("--clinic", "Physio Nord", "--email", "Ann@Example.org", "--password-file", str(password))
    assert clinic(capsys, url, "add-user", *args)[1]["email"] == "ann@example.org"
    patient = ("--clinic", "Physio Nord", "--code", "P7", "--affected-side", "right")
    assert clinic(capsys, url, "add-patient", *patient, "--body-mass-kg", "81", "--height-m", "1.8")[0] == 0
    status, err = clinic(capsys, url, "add-patient", *patient, "--body-mass-kg", "1", "--height-m", "1.8")
    assert status == 2 and "body_mass_kg: 1 is out of range (allowed: 20..300 kg)" in err
    status, enrolled = clinic(capsys, url, "enroll", "--clinic", "Physio Nord", "--patient", "P7", "--device", "fc-9")
    token = enrolled["token"]
    status, err = clinic(capsys, url, "enroll", "--clinic", "Physio Nord", "--patient", "P8", "--device", "fc-8")
    assert status == 2 and "no patient 'P8'" in err

    async def lookup() -> Any:
        engine = create_engine(url)
        async with engine.connect() as connection:
            found = await device_by_token(connection, token)
        await engine.dispose()
        return found

    assert asyncio.run(lookup()).device_id == "fc-9"
    listed = clinic(capsys, url, "devices", "--clinic", "Physio Nord")[1]["devices"]
    assert [(d["device_id"], d["patient"], d["revoked_at"]) for d in listed] == [("fc-9", "P7", None)]
    assert "token" not in json.dumps(listed)
    assert clinic(capsys, url, "revoke", "fc-9")[1]["revoked_at"] is not None
    token_file = tmp_path / "fc-9.token"
    again = ("--clinic", "Physio Nord", "--patient", "P7", "--device", "fc-9", "--token-file", str(token_file))
    assert clinic(capsys, url, "enroll", *again)[1]["token_file"] == str(token_file)
    assert token_file.stat().st_mode & 0o777 == 0o600 and token_file.read_text().strip() != token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_an_unmigrated_database_then_serves_with_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    port = free_port()
    command = [sys.executable, "-m", "forcecast.cli", "clinic", "serve", "--database", url, "--port", str(port)]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 2 and "forcecast clinic migrate" in refused.stderr
    server = subprocess.Popen([*command, "--migrate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        health = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    health = json.load(answer)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert health == {"status": "ok"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/sync/records",
            data=json.dumps({"device_id": "x", "store_id": "", "records": [step_item(1)]}).encode(),
            headers={"Authorization": "Bearer nope", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused_token:
            urllib.request.urlopen(request, timeout=5)
        assert refused_token.value.code == 401
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert f"serving http://127.0.0.1:{port}" in out.decode()


def wait_healthy(port: int, timeout_s: float = 60.0) -> None:
    """Wait until a clinic server answers /healthz on the port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if json.load(answer) == {"status": "ok"}:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"no clinic server on port {port}")


def test_host_sync_pushes_a_host_store_to_a_served_clinic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import date

    from forcecast.host_app.store import HostStore
    from forcecast.host_app.synthetic_days import write_day

    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert clinic(capsys, url, "migrate")[0] == 0
    assert clinic(capsys, url, "add-clinic", "C")[0] == 0
    patient = ("--clinic", "C", "--code", "P1", "--affected-side", "left", "--body-mass-kg", "70", "--height-m", "1.7")
    assert clinic(capsys, url, "add-patient", *patient)[0] == 0
    token = tmp_path / "token"
    assert clinic(capsys, url, "enroll", "--clinic", "C", "--patient", "P1", "--device", "fc-demo", "--token-file",
                  str(token))[0] == 0  # fmt: skip
    with HostStore(tmp_path / "host.sqlite") as store:
        write_day(store, date(2026, 11, 28), 150, patient="P1", device="fc-demo")
        total = sum(store.count("fc-demo", kind) for kind in ("step", "summary", "event"))
    port = free_port()
    serve = [sys.executable, "-m", "forcecast.cli", "clinic", "serve", "--database", url, "--port", str(port)]
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sync = ["host", "sync", "--db", str(tmp_path / "host.sqlite"), "--clinic", f"http://127.0.0.1:{port}",
            "--clinic-token-file", str(token), "--give-up-s", "5"]  # fmt: skip
    try:
        wait_healthy(port)
        assert main([*sync, "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert (first["sent"], first["accepted"], first["profile_version_offered"]) == (total, total, 1)
        assert main(sync) == 0
        assert "pushed 0 records of fc-demo" in capsys.readouterr().out
        assert clinic(capsys, url, "revoke", "fc-demo")[0] == 0
        assert main(sync) == 1
        assert "revoked_token" in capsys.readouterr().err
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_deployment_files_match_the_commands() -> None:
    """The example settings load, and the systemd unit's command line is one forcecast accepts."""
    import shlex

    from forcecast.cli import build_parser
    from forcecast.clinic.config import load_settings
    from forcecast.clinic.dashboard import DashboardOptions, load_options

    root = Path(__file__).resolve().parents[2] / "clinic" / "deploy"
    settings = load_settings(root / "clinic.toml")
    assert settings.database_url.startswith("postgresql://") and settings.host == "127.0.0.1"
    options = load_options(root / "clinic.toml")
    assert options.timezone == "Europe/Berlin" and options.attention == DashboardOptions().attention
    unit = (root / "forcecast-clinic.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0].endswith("/forcecast")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.verb, args.config, args.processes) == (
        "clinic", "serve", Path("/etc/forcecast/clinic.toml"), 2,
    )  # fmt: skip
