"""``forcecast host`` and ``edge run --ble`` without Bluetooth: one clear error, exit 2, nothing half done."""

from __future__ import annotations

from pathlib import Path

import pytest

from forcecast.cli import main

DATA = Path(__file__).parents[1] / "data"


def test_host_scan_and_log_without_an_adapter_say_so(tmp_path, capsys):
    assert main(["host", "scan", "--timeout", "0.5"]) == 2
    assert "no usable Bluetooth adapter" in capsys.readouterr().err
    assert main(["host", "log", "--db", str(tmp_path / "h.sqlite"), "--duration-s", "2"]) == 2
    assert "no usable Bluetooth adapter" in capsys.readouterr().err


def test_host_log_refuses_a_file_that_is_not_a_host_store(tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"not a database at all, just text" * 10)
    assert main(["host", "log", "--db", str(other), "--duration-s", "1"]) == 2
    assert "not a forcecast host store" in capsys.readouterr().err


def test_edge_run_with_ble_names_the_transport_it_cannot_open(tmp_path, capsys):
    config = tmp_path / "device.toml"
    config.write_text(
        'device_id = "fc-t"\n[patient]\npatient_id = "P1"\nbody_mass_kg = 70\nheight_m = 1.7\n'
        '[[sensors]]\nplace = "r_shank"\n[ble]\ntransport = "hci-socket:7"\n[feedback]\noutput = "none"\n'
    )
    args = ["edge", "run", "--model", str(DATA / "grf_int8.fcpkg"), "--pubkey", str(DATA / "forcecast-test.pub")]
    args += ["--source", "synthetic:1", "--config", str(config), "--store", str(tmp_path / "s.sqlite"), "--ble"]
    assert main(args) == 2
    assert "[ble] transport 'hci-socket:7'" in capsys.readouterr().err


def test_ble_settings_are_checked_when_the_config_loads(tmp_path, capsys):
    config = tmp_path / "device.toml"
    config.write_text('[ble]\nname = "far-too-long-a-name"\n')
    args = ["edge", "run", "--model", str(DATA / "grf_int8.fcpkg"), "--pubkey", str(DATA / "forcecast-test.pub")]
    assert main([*args, "--source", "synthetic:1", "--config", str(config)]) == 2
    assert "name must be 1..8 bytes" in capsys.readouterr().err


def test_link_bench_prints_one_json_object_with_latency_and_throughput(capsys):
    import json

    argv = ["host", "bench", "--seconds", "1", "--records", "40", "--upload-kib", "32", "--report-steps", "600"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("live", "live_min_mtu"):
        live = result[key]
        assert live["samples_received"] == live["samples_sent"] > 0 and live["dropped_on_device"] == 0
        assert 0 < live["latency_ms"]["p50"] <= live["latency_ms"]["p99"]
    assert result["live"]["mtu"] == 517 and result["live_min_mtu"]["mtu"] == 23
    assert result["records"]["records"] == 40 and result["records"]["kib_per_s"] > 0
    assert result["throughput_over_need"] > 1
    upload = result["upload"]
    assert upload["bytes"] == 32 * 1024 and upload["kib_per_s_median"] > 0
    assert upload["commit"] == ["unreadable"]  # random bytes: uploaded in full, then refused as a package
    assert result["report"]["steps"] == 600 and result["report"]["seconds"] > 0


def test_the_default_host_store_is_in_the_platforms_user_data_folder(tmp_path, monkeypatch):
    from forcecast.host_app.cli import default_db

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db() == tmp_path / "xdg" / "forcecast" / "host.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db() == tmp_path / "home" / ".local" / "share" / "forcecast" / "host.sqlite"


def test_the_command_line_builds_without_the_host_libraries_the_device_does_not_install(capsys):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from forcecast.cli import build_parser\n"
        "build_parser().parse_args(['host', 'log', '--db', 'h.sqlite'])\n"
        "print(sorted({'platformdirs', 'aiohttp', 'jinja2', 'tomli_w'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
    with pytest.raises(SystemExit):
        main(["host", "log", "--help"])
    assert "%LOCALAPPDATA%\\forcecast on Windows" in " ".join(capsys.readouterr().out.split())
