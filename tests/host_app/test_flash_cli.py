"""``forcecast flash --path``, ``forcecast device info | rollback --path``, and model trials at start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from packages import INT8, TEST_PUBKEY, resign, signing_key
from test_flash import device_config, sha256

from forcecast.cli import main
from forcecast.edge.keys import load_public_key
from forcecast.edge.runtime.launch import build_runtime
from forcecast.edge.slots import ModelSlots


@pytest.fixture
def device(tmp_path):
    key, public = signing_key(tmp_path / "keys")
    return tmp_path / "models", device_config(tmp_path, [TEST_PUBKEY, public]), key


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    status = main([*argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_flash_into_a_folder_info_and_rollback(tmp_path, device, capsys):
    models, config, key = device
    newer = resign(INT8, tmp_path / "v2.fcpkg", key, "int8-v2")
    status, first = run_json(capsys, "flash", str(INT8), "--path", str(models), "--config", str(config))
    assert status == 0 and first["state"] == "switched"
    status, again = run_json(capsys, "flash", str(INT8), "--path", str(models), "--config", str(config))
    assert status == 0 and again["state"] == "already_active"
    status, second = run_json(capsys, "flash", str(newer), "--path", str(models), "--config", str(config))
    assert status == 0 and (second["model_before"], second["model_after"]) == (first["model_after"], "int8-v2")
    status, info = run_json(capsys, "device", "info", "--path", str(models))
    assert info["model_version"] == "int8-v2" and info["previous_model_version"] == first["model_after"]
    assert info["on_trial"] and info["upload"] is None and info["contract"]["rate_hz"] == 100.0
    assert main(["device", "info", "--path", str(models)]) == 0
    assert "int8-v2" in capsys.readouterr().out
    status, back = run_json(capsys, "device", "rollback", "--path", str(models), "--config", str(config))
    assert status == 0 and back["model_after"] == first["model_after"]
    assert sha256(models / "active.fcpkg") == sha256(INT8)
    status, none_left = run_json(capsys, "device", "rollback", "--path", str(models), "--config", str(config))
    assert status == 1 and none_left["reason"] == "no_previous"


def test_flash_into_a_folder_refuses_what_the_device_would_refuse(tmp_path, device, capsys):
    models, config, _ = device
    untrusted, _ = signing_key(tmp_path / "untrusted")
    foreign = resign(INT8, tmp_path / "foreign.fcpkg", untrusted, "int8-foreign")
    assert main(["flash", str(INT8), "--path", str(models), "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["flash", str(foreign), "--path", str(models), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "untrusted_key" in out and "it still runs cnn_lstm_static-int8" in out
    assert sha256(models / "active.fcpkg") == sha256(INT8)
    # without trusted keys nothing is accepted at all, and a missing package is named
    assert main(["flash", str(INT8), "--path", str(tmp_path / "other")]) == 2
    assert "no trusted public keys" in capsys.readouterr().err
    assert main(["flash", str(tmp_path / "nope.fcpkg"), "--path", str(models), "--config", str(config)]) == 2
    assert "nope.fcpkg" in capsys.readouterr().err


def test_flash_over_ble_without_an_adapter_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from bleak import BleakScanner
    from bleak.exc import BleakBluetoothNotAvailableError

    async def no_adapter(*_args, **_kwargs):
        raise BleakBluetoothNotAvailableError("no Bluetooth adapter found", None)

    monkeypatch.setattr(BleakScanner, "find_device_by_filter", no_adapter)
    assert main(["flash", str(INT8), "--device", "C0:11:22:33:44:55"]) == 2
    assert "no usable Bluetooth adapter" in capsys.readouterr().err
    assert main(["device", "info", "--device", "any"]) == 2


def test_a_model_that_fails_at_start_is_rolled_back_and_the_start_goes_on(tmp_path, device):
    models, config, key = device
    broken = resign(INT8, tmp_path / "broken.fcpkg", key, "int8-broken", golden=_shift_outputs)
    assert main(["flash", str(INT8), "--path", str(models), "--config", str(config)]) == 0
    # a model that passed its checks when it was flashed fails them at the next start (say, a changed
    # interpreter): it is on trial, so the start rolls back instead of leaving the device without a model
    newer = resign(INT8, tmp_path / "v2.fcpkg", key, "int8-v2")
    assert main(["flash", str(newer), "--path", str(models), "--config", str(config)]) == 0
    (models / "active.fcpkg").write_bytes(broken.read_bytes())
    slots = ModelSlots(models, [load_public_key(TEST_PUBKEY)])
    (models / "trial.json").write_text(json.dumps({"starts": 0, "sha256": sha256(broken)}))
    runtime = build_runtime(None, "synthetic:3", config, [], tmp_path / "d.sqlite")
    events = [r.payload for r in runtime.store.records("event", limit=100)]
    runtime.close()
    assert runtime.pipeline.model_version == "cnn_lstm_static-int8-d39ac761"
    assert any(e["event"] == "model_rolled_back" and "selftest_failed" in e["detail"] for e in events)
    assert not slots.on_trial and sha256(models / "active.fcpkg") == sha256(INT8)


def test_a_model_whose_first_start_never_confirmed_is_rolled_back_at_the_next(tmp_path, device):
    models, config, key = device
    newer = resign(INT8, tmp_path / "v2.fcpkg", key, "int8-v2")
    assert main(["flash", str(INT8), "--path", str(models), "--config", str(config)]) == 0
    assert main(["flash", str(newer), "--path", str(models), "--config", str(config)]) == 0
    crashed = build_runtime(None, "synthetic:3", config, [], tmp_path / "d.sqlite")  # starts, then "crashes"
    assert crashed.pipeline.model_version == "int8-v2"
    crashed.close()
    runtime = build_runtime(None, "synthetic:3", config, [], tmp_path / "d.sqlite", speed=0.0)
    assert runtime.pipeline.model_version == "cnn_lstm_static-int8-d39ac761"
    runtime.run(duration_s=10.0)  # the old model runs and confirms itself
    runtime.close()
    assert not ModelSlots(models, []).on_trial


def _shift_outputs(golden):
    for pair in golden:
        pair["output"] = (np.asarray(pair["output"]) + 0.5).tolist()
