"""``forcecast train --init-from RUN [--freeze ...]``: weights loaded, frozen layers fixed, mismatches refused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from tiny_training import tiny_toml, train, write_config

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

TINY_TOML = tiny_toml(min_steps=10)  # keep the tiny runs tiny: training has a step floor


def _train(data: Path, out: Path, config: Path, *extra: str) -> int:
    return train(data, out, config, "--test-subjects", "S02", "--seed", "1", "--json", *extra)


@pytest.fixture(scope="module")
def source_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("finetune")
    config = write_config(folder / "tiny.toml", TINY_TOML)
    assert _train(tiny_dataset, folder / "source", config) == 0
    return folder / "source", config


def _weights(path: Path) -> dict[str, list[np.ndarray]]:
    import keras

    model = keras.saving.load_model(path, compile=False)
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def test_init_from_loads_weights_and_freezes_by_pattern(source_run, tiny_dataset, tmp_path):
    source, config = source_run
    out = tmp_path / "tuned"
    assert _train(tiny_dataset, out, config, "--init-from", str(source), "--freeze", "conv*") == 0
    before, after = _weights(source / "model.keras"), _weights(out / "model.keras")
    for name in ("conv_axes", "conv_channels"):  # frozen: bit-identical to the source
        for a, b in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(a, b)
    for name in ("lstm", "grf", "static_branch"):  # trained: moved away from the source
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True)), name

    metrics = json.loads((out / "metrics.json").read_text())
    init = metrics["init_from"]
    assert init["run"] == str(source.resolve())
    assert init["freeze"] == ["conv*"] and init["frozen_layers"] == ["conv_axes", "conv_channels"]
    source_metrics = json.loads((source / "metrics.json").read_text())
    assert init["data_fingerprint_sha256"] == source_metrics["data_fingerprint_sha256"]
    assert len(init["model_sha256"]) == 64
    contract = json.loads((out / "contract.json").read_text())
    source_contract = json.loads((source / "contract.json").read_text())
    assert str(source.resolve()) in contract["notes"]["init_from"]
    assert contract["notes"]["frozen_layers"] == "conv_axes, conv_channels"
    for key in ("inputs", "static", "targets"):  # the normalisation the weights were learned on
        assert contract[key] == source_contract[key]
    resolved = tomllib.loads((out / "config.toml").read_text())
    assert resolved["fit"]["init_from"] == str(source) and resolved["fit"]["freeze"] == ["conv*"]


def test_init_from_without_freeze_starts_from_the_source_weights(source_run, tiny_dataset, tmp_path):
    """Fine-tuning with a tiny learning rate stays next to the source weights; a fresh start does not."""
    source, _ = source_run
    slow = tmp_path / "slow.toml"
    slow.write_text(TINY_TOML.replace("epochs = 2", "epochs = 1\nlearning_rate = 1e-7"))
    assert _train(tiny_dataset, tmp_path / "tuned", slow, "--init-from", str(source)) == 0
    assert _train(tiny_dataset, tmp_path / "fresh", slow, "--seed", "5") == 0
    before = _weights(source / "model.keras")["lstm"][0]
    tuned = _weights(tmp_path / "tuned" / "model.keras")["lstm"][0]
    fresh = _weights(tmp_path / "fresh" / "model.keras")["lstm"][0]
    assert np.max(np.abs(tuned - before)) < 1e-3
    assert np.max(np.abs(fresh - before)) > 1e-2


def test_init_from_refuses_what_does_not_match(source_run, tiny_dataset, tmp_path, capsys):
    source, config = source_run
    capsys.readouterr()

    wider = tmp_path / "wider.toml"
    wider.write_text(TINY_TOML.replace("lstm_units = 8", "lstm_units = 12"))
    assert _train(tiny_dataset, tmp_path / "a", wider, "--init-from", str(source)) == 2
    err = capsys.readouterr().err
    assert "lstm" in err and "weight shapes" in err and "[model] lstm_units: 8 in the source run, 12 here" in err

    assert _train(tiny_dataset, tmp_path / "b", config, "--init-from", str(source), "--no-static") == 2
    err = capsys.readouterr().err
    assert "static_features" in err and "in the source run" in err

    longer = tmp_path / "longer.toml"
    longer.write_text(TINY_TOML.replace("window = 32", "window = 48"))
    assert _train(tiny_dataset, tmp_path / "c", longer, "--init-from", str(source)) == 2
    assert "window: 32 in the source run, 48 here" in capsys.readouterr().err

    assert _train(tiny_dataset, tmp_path / "d", config, "--init-from", str(source), "--freeze", "convolution*") == 2
    err = capsys.readouterr().err
    assert "pattern 'convolution*' matches no layer" in err and "conv_axes" in err

    assert _train(tiny_dataset, tmp_path / "e", config, "--init-from", str(tmp_path / "nowhere")) == 2
    assert "model.keras not found" in capsys.readouterr().err

    assert _train(tiny_dataset, tmp_path / "f", config, "--freeze", "conv*") == 2
    assert "freeze needs init_from" in capsys.readouterr().err
    assert not (tmp_path / "a" / "model.keras").exists()


def test_contract_differences_name_every_input_defining_field(source_run):
    from dataclasses import replace

    from forcecast.edge.contract import ModelContract, Normalisation
    from forcecast.training.finetune import contract_differences

    source, _ = source_run
    contract = ModelContract.load(source / "contract.json")
    assert contract_differences(contract, contract) == []
    # normalisation and notes may differ (the source's normalisation is adopted)
    shifted = Normalisation(tuple(m + 1.0 for m in contract.targets.mean), contract.targets.std)
    assert contract_differences(contract, replace(contract, notes={"x": "y"}, targets=shifted)) == []
    changed = replace(contract, rate_hz=50.0, delay=1)
    assert contract_differences(contract, changed) == [
        "delay: 2 in the source run, 1 here",
        "rate_hz: 100.0 in the source run, 50.0 here",
    ]
    if hasattr(contract, "alignment"):  # segment alignment is part of what the model expects
        other = "segment_v1" if contract.alignment == "none" else "none"
        assert contract_differences(contract, replace(contract, alignment=other)) == [
            f"alignment: {contract.alignment!r} in the source run, {other!r} here"
        ]
