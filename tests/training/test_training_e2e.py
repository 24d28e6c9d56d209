"""A tiny end-to-end train/evaluate through the CLI, and the refusals of bad input (needs TensorFlow)."""

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_training import tiny_toml, train, write_config

from forcecast.cli import main

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

TINY_TOML = tiny_toml(min_steps=6)

OUTPUTS = ("model.keras", "contract.json", "config.toml", "metrics.json", "history.csv", "model_card.md")


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    config = write_config(folder / "tiny.toml", TINY_TOML)
    run = folder / "run"
    assert train(tiny_dataset, run, config, "--test-subjects", "S02", "--seed", "3", "--json") == 0
    return run


def test_train_writes_every_output(tiny_run):
    for name in OUTPUTS:
        assert (tiny_run / name).is_file(), name
    assert list(tiny_run.glob("example_*.png"))
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["split"]["test"] == ["S02"]
    assert set(metrics["subject_naive"]["pooled"]["axes"]) == {"v", "ap", "ml"}
    assert metrics["data_fingerprint_sha256"] and len(metrics["data_fingerprint_sha256"]) == 64
    history = pd.read_csv(tiny_run / "history.csv")
    assert len(history) == metrics["epochs_run"] and "val_loss" in history
    card = (tiny_run / "model_card.md").read_text()
    assert "subject-naive" in card and "S02" in card and "![example_" in card
    resolved = tomllib.loads((tiny_run / "config.toml").read_text())
    assert resolved["data"]["window"] == 32 and resolved["split"]["test_subjects"] == ["S02"]
    assert resolved["fit"]["seed"] == 3


def test_evaluate_prints_exactly_one_json_object(tiny_run, tiny_dataset, capsys):
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_run / "model.keras"),
            "--data",
            str(tiny_dataset),
            "--subjects",
            "S02",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out)  # the whole of stdout is one object
    assert set(payload) == {"axes", "stance_axes", "n_windows", "subjects"}
    assert set(payload["axes"]) == set(payload["stance_axes"]) == {"v", "ap", "ml"}
    assert set(payload["axes"]["v"]) == set(payload["stance_axes"]["v"]) == {"r", "rmse_bw", "rmse_n", "nrmse_pct"}
    assert payload["stance_axes"]["v"]["rmse_bw"] != payload["axes"]["v"]["rmse_bw"]
    assert payload["subjects"] == ["S02"] and payload["n_windows"] > 0
    saved = json.loads((tiny_run / "metrics.json").read_text())["subject_naive"]["pooled"]["axes"]["v"]["r"]
    assert payload["axes"]["v"]["r"] == pytest.approx(saved, abs=1e-4)  # same model, same data, same numbers


def test_evaluate_refuses_unknown_subject_and_missing_contract(tiny_run, tiny_dataset, tmp_path, capsys):
    assert (
        main(["evaluate", "--model", str(tiny_run / "model.keras"), "--data", str(tiny_dataset), "--subjects", "S42"])
        == 2
    )
    assert "S42 not in the dataset" in capsys.readouterr().err
    lonely = tmp_path / "model.keras"
    shutil.copy(tiny_run / "model.keras", lonely)
    assert main(["evaluate", "--model", str(lonely), "--data", str(tiny_dataset)]) == 2
    assert "contract.json" in capsys.readouterr().err


def test_training_refuses_bad_input(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    base = ["train", "--out", str(tmp_path / "run"), "--config", str(config)]

    empty = tmp_path / "empty"
    (empty / "trials").mkdir(parents=True)
    (empty / "subjects.csv").write_text("subject_id,body_mass_kg,height_m,hka_deg,affected_side\n")
    assert main([*base, "--data", str(empty)]) == 2
    assert "no subjects listed" in capsys.readouterr().err

    assert main([*base, "--data", str(tiny_dataset), "--test-subjects", "S99"]) == 2
    assert "S99 not in the dataset" in capsys.readouterr().err

    feet = tmp_path / "feet.toml"
    feet.write_text(TINY_TOML.replace("[data]", '[data]\nleg_places = ["ipsi_foot", "pelvis"]'))
    shank_only = tmp_path / "shank_only"
    shutil.copytree(tiny_dataset, shank_only)
    for path in (shank_only / "trials").rglob("*.imu.csv"):
        table = pd.read_csv(path)
        table.drop(columns=[c for c in table.columns if "_foot_" in c]).to_csv(path, index=False)
    assert main(["train", "--out", str(tmp_path / "r2"), "--config", str(feet), "--data", str(shank_only)]) == 2
    err = capsys.readouterr().err
    assert "missing channel(s) l_foot_acc_x" in err and "trials/S01/" in err and "ipsi_foot" in err

    one = tmp_path / "one"
    shutil.copytree(tiny_dataset, one)
    for gone in ("S02", "S03"):
        shutil.rmtree(one / "trials" / gone)
    subjects = pd.read_csv(one / "subjects.csv")
    subjects[subjects.subject_id == "S01"].to_csv(one / "subjects.csv", index=False)
    assert main([*base, "--data", str(one)]) == 2
    assert "1 subject(s) with force data (S01)" in capsys.readouterr().err


def test_tf_pipeline_cuts_the_same_windows_as_numpy(tiny_dataset):
    import numpy as np

    from forcecast.edge.contract import ModelContract, Normalisation
    from forcecast.training.config import DataConfig
    from forcecast.training.data import load_sequences
    from forcecast.training.windows import WindowSource, make_batches

    data = DataConfig(window=32, out_len=4, delay=2)
    loaded = load_sequences(tiny_dataset, data)
    n = 6 * len(data.leg_places)
    identity = Normalisation((0.0,) * n, (1.0,) * n)
    contract = ModelContract(
        100.0, data.leg_places, 32, 4, 2, (), identity, None, Normalisation((0.0,) * 3, (1.0,) * 3)
    )
    source = WindowSource(loaded.sequences, contract, use_static=False)
    (x_tf,), y_tf = next(iter(make_batches(source, batch_size=50, stride=7, seed=0, shuffle=False)))
    (x_np,), y_np = source.gather(np.arange(len(source))[::7][:50])
    np.testing.assert_array_equal(x_tf.numpy(), x_np)
    np.testing.assert_array_equal(y_tf.numpy(), y_np)


def test_a_distribution_strategy_can_be_selected(tiny_dataset, tmp_path):
    config = tmp_path / "mirrored.toml"
    config.write_text(TINY_TOML.replace("epochs = 2", 'epochs = 1\nstrategy = "mirrored"'))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--config", str(config), "--json"]) == 0
    assert 'strategy = "mirrored"' in (run / "config.toml").read_text()
    assert (run / "model.keras").is_file()


def test_quantize_package_info_and_verify(tiny_run, tmp_path, capsys):
    keys = tmp_path / "keys"
    assert main(["keys", "new", "--out", str(keys)]) == 0
    package = tmp_path / "tiny.fcpkg"
    capsys.readouterr()
    code = main(
        [
            "quantize",
            "--run",
            str(tiny_run),
            "--out",
            str(package),
            "--key",
            str(keys / "forcecast_ed25519.key"),
            "--allow-degradation",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["accuracy"]) == {"keras_float", "float32", "float16", "dynamic", "int8"}
    assert "WHILE" not in result["ops"] and result["mode"] == "int8"
    assert main(["package", "info", str(package)]) == 0
    info = capsys.readouterr().out
    assert "ipsi_shank" in info and "int8" in info and "golden    4 pair(s)" in info
    assert main(["package", "verify", str(package), "--pubkey", str(keys / "forcecast_ed25519.pub"), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["ok"] and verdict["golden_passed"] == 4
    other = tmp_path / "other"
    main(["keys", "new", "--out", str(other)])
    capsys.readouterr()
    assert main(["package", "verify", str(package), "--pubkey", str(other / "forcecast_ed25519.pub")]) == 1
    assert "not trusted" in capsys.readouterr().out

    data = json.loads((tiny_run / "metrics.json").read_text())["data"]
    pubkey = str(keys / "forcecast_ed25519.pub")
    args = ["evaluate", "--model", str(package), "--data", data, "--subjects", "S02", "--json"]
    assert main([*args, "--pubkey", pubkey]) == 0
    scores = json.loads(capsys.readouterr().out)
    keras_args = ["evaluate", "--model", str(tiny_run / "model.keras"), "--data", data, "--subjects", "S02", "--json"]
    assert main(keras_args) == 0
    keras_scores = json.loads(capsys.readouterr().out)
    assert scores["n_windows"] == keras_scores["n_windows"] > 0
    for axis in ("v", "ap", "ml"):  # S02 is the run's naive test subject: the very figures quantize reported
        assert scores["axes"][axis]["r"] == pytest.approx(result["accuracy"]["int8"]["axes"][axis]["r"], abs=1e-4)
        assert keras_scores["axes"][axis]["r"] == pytest.approx(
            result["accuracy"]["keras_float"]["axes"][axis]["r"], abs=1e-4
        )
    assert main([*args, "--pubkey", str(other / "forcecast_ed25519.pub")]) == 2
    assert "not trusted" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_package(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An int8 package of the tiny run and the folder of the key pair that signed it."""
    folder = tmp_path_factory.mktemp("package")
    keys = folder / "keys"
    assert main(["keys", "new", "--out", str(keys)]) == 0
    package = folder / "tiny.fcpkg"
    key = str(keys / "forcecast_ed25519.key")
    assert main(["quantize", "--run", str(tiny_run), "--out", str(package), "--key", key, "--allow-degradation"]) == 0
    return package, keys


def test_a_package_whose_golden_pairs_fail_is_refused(tiny_package, tmp_path, capsys):
    from forcecast.edge.keys import load_private_key
    from forcecast.edge.package import read_package
    from forcecast.training.package import write_package

    package, keys = tiny_package
    good = read_package(package)
    manifest = json.loads(good.manifest_bytes)
    for pair in manifest["golden"]:
        pair["output"] = (np.asarray(pair["output"]) + 0.5).tolist()
    lying = write_package(
        tmp_path / "lying.fcpkg", good.model, manifest, load_private_key(keys / "forcecast_ed25519.key")
    )
    capsys.readouterr()
    assert main(["package", "verify", str(lying), "--pubkey", str(keys / "forcecast_ed25519.pub")]) == 1
    assert "REFUSED: golden pairs failed" in capsys.readouterr().out


def test_int8_degradation_limits():
    from forcecast.training.quantize import DegradationError, _check_degradation

    reference = {"axes": {"v": {"r": 0.99, "nrmse_pct": 3.0}}}
    _check_degradation(reference, {"axes": {"v": {"r": 0.985, "nrmse_pct": 3.8}}}, allow=False)
    with pytest.raises(DegradationError, match="--allow-degradation"):
        _check_degradation(reference, {"axes": {"v": {"r": 0.975, "nrmse_pct": 3.1}}}, allow=False)
    with pytest.raises(DegradationError, match=r"1\.0 pp"):
        _check_degradation(reference, {"axes": {"v": {"r": 0.99, "nrmse_pct": 4.5}}}, allow=False)
    _check_degradation(reference, {"axes": {"v": {"r": 0.9, "nrmse_pct": 9.0}}}, allow=True)


FALLBACK_PYTHON = Path(
    os.environ.get(
        "FORCECAST_TFLITE_RUNTIME_PYTHON", Path(__file__).resolve().parents[2] / ".venv-tflite-runtime/bin/python"
    )
)
FALLBACK_CHECK = """
import importlib.util, json, sys
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import open_package
from forcecast.edge.selftest import run_golden
package, contract = open_package(sys.argv[1], [load_public_key(sys.argv[2])])
model = TFLiteModel(package.model)
result = run_golden(model, package.manifest["golden"])
print(json.dumps({"runtime": model.runtime, "litert_installed": importlib.util.find_spec("ai_edge_litert") is not None,
                  "passed": result.passed, "failed": result.failed, "window": contract.window}))
"""


@pytest.mark.skipif(
    not FALLBACK_PYTHON.is_file(),
    reason=f"no tflite-runtime environment at {FALLBACK_PYTHON} (see requirements/edge-tflite-runtime.txt)",
)
def test_the_edge_reader_falls_back_to_tflite_runtime(tiny_package):
    """In an environment with only tflite-runtime 2.14 (NumPy 1.x) a package verifies and passes its self-test."""
    package, keys = tiny_package
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [str(FALLBACK_PYTHON.absolute()), "-c", FALLBACK_CHECK, str(package), str(keys / "forcecast_ed25519.pub")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    assert verdict == {"runtime": "tflite_runtime", "litert_installed": False, "passed": 4, "failed": 0, "window": 32}


FAKE_COMPILER = """#!{python}
# Stands in for Coral's edgetpu_compiler (x86-64 Debian only, not installable here): same arguments, same
# output file name, a log in its format. It copies the model, so only our plumbing is under test.
import pathlib, sys
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out_dir") + 1])
source = pathlib.Path(args[-1])
(out / (source.stem + "_edgetpu.tflite")).write_bytes(source.read_bytes())
print("Edge TPU Compiler version 16.0.384591198")
print("Model compiled successfully in 12 ms.")
"""


def test_quantize_adds_the_edgetpu_build_when_the_compiler_is_on_path(tiny_run, tmp_path, monkeypatch, capsys):
    import sys

    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import open_package

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    compiler = bin_dir / "edgetpu_compiler"
    compiler.write_text(FAKE_COMPILER.format(python=sys.executable))
    compiler.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    keys = tmp_path / "keys"
    main(["keys", "new", "--out", str(keys)])
    package = tmp_path / "tpu.fcpkg"
    key = str(keys / "forcecast_ed25519.key")
    capsys.readouterr()
    assert main(["quantize", "--run", str(tiny_run), "--out", str(package), "--key", key, "--allow-degradation"]) == 0
    printed = capsys.readouterr().out
    assert "Edge TPU build:" in printed and "op kinds supported" in printed
    opened, _ = open_package(package, [load_public_key(keys / "forcecast_ed25519.pub")])
    assert opened.edgetpu_model == opened.model
    assert opened.manifest["edgetpu"]["compiler_log"][-1] == "Model compiled successfully in 12 ms."
    assert main(["package", "info", str(package)]) == 0
    assert "compiled build" in capsys.readouterr().out
