"""``forcecast compare``: the zoo under subject-wise cross-validation, int8 figures, Pareto front, resumability."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_training import tiny_toml, write_config

from forcecast.cli import main
from forcecast.training.architectures import REGISTRY
from forcecast.training.compare import CompareError, parse_delays
from forcecast.training.compare_report import OUTPUT_FILES, ROW_KEYS
from forcecast.training.config import DataConfig
from forcecast.training.pareto import dominates

TINY_TOML = tiny_toml(min_steps=4).replace("epochs = 2", "epochs = 3")
MODELS = ("cnn1d", "tcn")
DELAYS = (0, 2)


def _compare(data: Path, out: Path, config: Path, *extra: str) -> int:
    return main(
        ["compare", str(data), "--out", str(out), "--config", str(config), "--seed", "1", "--folds", "2", *extra]
    )


# --- arguments (no TensorFlow) ---


def test_delays_default_to_the_config_and_bad_ones_are_named() -> None:
    data = DataConfig(window=32, out_len=4, delay=2)
    assert parse_delays(None, data) == (2,)
    assert parse_delays("10, 0,2,0", DataConfig()) == (0, 2, 10)
    with pytest.raises(CompareError, match=r"-1 is negative"):
        parse_delays("0,-1", data)
    with pytest.raises(CompareError, match=r"13 is too large for the window.*at most 12 samples"):
        parse_delays("2,13", data)
    with pytest.raises(CompareError, match=r"'two' is not a whole number"):
        parse_delays("two", data)


def test_bad_arguments_are_refused_before_anything_runs(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "tiny.toml", TINY_TOML)
    out = tmp_path / "zoo"
    for extra, message in (
        (("--models", "cnn1d,wavenet"), "unknown architecture(s) wavenet; choose from cnn_lstm, lstm, gru"),
        (("--delays", "-2"), "-2 is negative"),
        (("--delays", "0,20"), "20 is too large for the window"),
        (("--folds", "1"), "need at least 2 folds"),
        (("--invocations", "0"), "--invocations must be >= 1"),
    ):
        assert _compare(tiny_dataset, out, config, *extra) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


# --- end to end (tiny TensorFlow runs) ---


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("compareconf") / "tiny.toml", TINY_TOML)


@pytest.fixture(scope="module")
def zoo(tiny_dataset: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two architectures × both static variants × two delays × two folds, and the JSON compare printed."""
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("compare") / "zoo"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = _compare(
            tiny_dataset,
            out,
            tiny_config,
            "--models",
            ",".join(MODELS),
            "--delays",
            ",".join(map(str, DELAYS)),
            "--epochs",
            "1",
            "--invocations",
            "30",
            "--json",
        )
    assert code == 0
    return out, json.loads(buffer.getvalue())  # the whole of stdout is one object


@pytest.mark.tf
def test_every_model_variant_and_delay_is_a_row_with_finite_figures(zoo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = zoo
    assert summary["complete"] and summary["trained_now"] == 2 * 2 * 2 * 2 and summary["measured_now"] == 8
    assert summary == json.loads((out / "comparison.json").read_text())
    rows = summary["rows"]
    assert [(r["model"], r["static"], r["delay"]) for r in rows] == [
        (m, s, d) for d in DELAYS for m in MODELS for s in (True, False)
    ]
    assert set(summary["architectures"]) == set(MODELS)
    assert all(summary["architectures"][m]["reference"] == REGISTRY[m].reference for m in MODELS)
    for r in rows:
        assert set(r) == set(ROW_KEYS)
        assert r["deployable"] and r["not_deployable_reason"] is None and r["folds"] == 2
        assert r["epochs_run_mean"] == 1  # --epochs overrides the config's 3
        numbers = [k for k in ROW_KEYS if k not in ("model", "static", "delay", "int8_from_run", "float_ops")]
        numbers = [k for k in numbers if k not in ("deployable", "not_deployable_reason", "on_pareto_front")]
        assert all(math.isfinite(r[k]) for k in numbers), r
        assert r["int8_bytes"] > 1000 and r["parameters"] > 100
        assert 0 < r["inference_p50_ms"] <= r["inference_p99_ms"] < 100
        assert r["algorithmic_delay_ms"] == pytest.approx(1000 * (r["delay"] + 4 - 1) / 100.0)  # (delay+out_len-1)/rate
        assert r["newest_output_delay_ms"] == pytest.approx(10.0 * r["delay"])
        assert 0 < r["inference_cpu_p50_ms"] <= r["inference_cpu_p99_ms"] < 100
        assert r["latency_ms"] == pytest.approx(r["algorithmic_delay_ms"] + r["inference_cpu_p99_ms"], abs=1e-3)
        assert -1 <= r["int8_v_r"] <= 1
        first = r["int8_from_run"]
        assert first == f"{r['model']}-d{r['delay']}-fold1-{'static' if r['static'] else 'imu'}"
        assert (out / "runs" / first / "run" / "model.int8.tflite").stat().st_size == r["int8_bytes"]
        # mean ± SD over folds of what each fold's run reported
        folds = [
            json.loads((out / "runs" / first.replace("fold1", f"fold{k}") / "result.json").read_text()) for k in (1, 2)
        ]
        values = [f["subject_naive"]["pooled"]["axes"]["v"]["r"] for f in folds]
        assert r["v_r_mean"] == pytest.approx(np.mean(values), abs=1e-5)
        assert r["v_r_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-5)
    assert len(list((out / "runs").glob("*/result.json"))) == 16


@pytest.mark.tf
def test_the_pareto_front_is_the_non_dominated_rows(zoo: tuple[Path, dict[str, Any]]) -> None:
    _, summary = zoo
    rows = summary["rows"]
    points = [(r["latency_ms"], r["v_nrmse_pct"]) for r in rows]
    expected = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    assert sorted(i for i, r in enumerate(rows) if r["on_pareto_front"]) == expected
    front = [(p["model"], p["static"], p["delay"]) for p in summary["pareto_front"]]
    assert sorted(front) == sorted((rows[i]["model"], rows[i]["static"], rows[i]["delay"]) for i in expected)
    assert [p["latency_ms"] for p in summary["pareto_front"]] == sorted(
        p["latency_ms"] for p in summary["pareto_front"]
    )


@pytest.mark.tf
def test_the_files_are_written_and_agree(zoo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = zoo
    assert summary["files"] == [str(out / name) for name in OUTPUT_FILES]
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in summary["files"])
    for png in ("comparison.png", "pareto.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = list(csv.DictReader((out / "comparison.csv").open()))
    assert len(table) == 8 and list(table[0]) == list(ROW_KEYS)
    for line, r in zip(table, summary["rows"], strict=True):
        assert float(line["v_nrmse_pct"]) == pytest.approx(r["v_nrmse_pct"])
        assert int(line["int8_bytes"]) == r["int8_bytes"] and line["on_pareto_front"] == str(r["on_pareto_front"])
    text = (out / "comparison.md").read_text()
    assert "| cnn1d | yes | 0 |" in text and "| tcn | no | 2 |" in text
    assert "![accuracy against latency](pareto.png)" in text and "Pareto front" in text


@pytest.mark.tf
def test_a_rerun_trains_and_measures_nothing_and_another_setup_is_refused(
    zoo: tuple[Path, dict[str, Any]],
    tiny_dataset: Path,
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before_out, before = zoo
    out = tmp_path / "zoo"
    shutil.copytree(before_out, out)
    models, delays = ",".join(MODELS), ",".join(map(str, DELAYS))
    args = ("--models", models, "--delays", delays, "--epochs", "1", "--invocations", "30")
    capsys.readouterr()
    assert _compare(tiny_dataset, out, tiny_config, *args, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trained_now"] == 0 and again["measured_now"] == 0
    assert again["rows"] == before["rows"]

    assert _compare(tiny_dataset, out, tiny_config, *args[:-4], "--epochs", "2", "--invocations", "30") == 2
    err = capsys.readouterr().err
    assert "was run with another setup" in err and "[fit] epochs: 1 there, 2 now" in err


@pytest.mark.tf
def test_a_model_that_cannot_be_deployed_is_reported_with_its_reason(
    zoo: tuple[Path, dict[str, Any]],
    tiny_dataset: Path,
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from forcecast.training import int8_bench
    from forcecast.training.convert import ConversionError

    out = tmp_path / "zoo"
    shutil.copytree(zoo[0], out)
    shutil.rmtree(out / "int8")
    reason = "test: pretend its ops have no int8 kernel"
    monkeypatch.setitem(REGISTRY, "cnn1d", replace(REGISTRY["cnn1d"], deployable=False, not_deployable_reason=reason))

    def refuse(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ConversionError("int8 conversion failed: the converter said no")

    monkeypatch.setattr(int8_bench, "bench_run", refuse)
    capsys.readouterr()
    extra = ("--models", "cnn1d,tcn", "--delays", "2", "--epochs", "1", "--invocations", "30", "--json")
    assert _compare(tiny_dataset, out, tiny_config, *extra) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trained_now"] == 0  # every run was there already
    for r in summary["rows"]:
        assert not r["deployable"] and r["int8_bytes"] is None and r["latency_ms"] is None
        assert not r["on_pareto_front"]
        if r["model"] == "cnn1d":
            assert r["not_deployable_reason"] == reason
        else:
            assert (
                r["not_deployable_reason"].startswith("int8 conversion failed")
                and "said no" in r["not_deployable_reason"]
            )
    assert summary["pareto_front"] == []
    assert summary["architectures"]["cnn1d"]["not_deployable_reason"] == reason
    assert f"- cnn1d (delay 2): {reason}" in (out / "comparison.md").read_text()
