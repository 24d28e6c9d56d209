"""``forcecast cv``: folds by subject, summary arithmetic from the fold files, resumability, refusals."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_training import tiny_toml, write_config

from forcecast.cli import main
from forcecast.lab.dataset import Subject
from forcecast.training.cv import CVError, make_folds, parse_folds
from forcecast.training.cv_report import load_predictions, mean_sd

TINY_TOML = tiny_toml(min_steps=10)  # keep the tiny runs tiny: training has a step floor


def _subjects(sides: dict[str, str]) -> dict[str, Subject]:
    return {s: Subject(s, 70.0, 1.7, 2.0, side) for s, side in sides.items()}


# --- fold assignment (no TensorFlow) ---


def test_loso_gives_one_fold_per_subject():
    folds = make_folds(["S2", "S1", "S3", "S1"], "loso", {}, seed=0)
    assert [(f.name, f.test) for f in folds] == [("S1", ("S1",)), ("S2", ("S2",)), ("S3", ("S3",))]


def test_k_folds_cover_every_subject_once_and_spread_each_affected_side():
    sides = {f"L{i}": "left" for i in range(3)} | {f"R{i}": "right" for i in range(3)} | {"N0": "none", "N1": "none"}
    subjects = _subjects(sides)
    for seed in range(5):
        folds = make_folds(list(sides), 3, subjects, seed)
        assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
        tested = [s for f in folds for s in f.test]
        assert sorted(tested) == sorted(sides)  # every subject in exactly one fold's test set
        for fold in folds:
            kinds = [sides[s] for s in fold.test]
            assert kinds.count("left") == 1 and kinds.count("right") == 1, (seed, fold)
    assert make_folds(list(sides), 3, subjects, 0) == make_folds(list(sides), 3, subjects, 0)
    assert make_folds(list(sides), 3, subjects, 0) != make_folds(list(sides), 3, subjects, 1)


def test_fold_spec_refusals():
    assert parse_folds("LOSO") == "loso" and parse_folds("5") == 5
    with pytest.raises(CVError, match="expected 'loso' or a number"):
        parse_folds("five")
    with pytest.raises(CVError, match="at least 2 folds"):
        parse_folds("1")
    with pytest.raises(CVError, match="more folds than subjects"):
        make_folds(["a", "b", "c"], 4, {}, 0)
    with pytest.raises(CVError, match="at least 2 subjects"):
        make_folds(["a"], "loso", {}, 0)
    assert len(make_folds(["a", "b"], "loso", {}, 0)) == 2


def test_mean_sd_is_the_sample_sd_over_finite_folds():
    stat = mean_sd([0.9, 0.8, float("nan"), 0.7])
    assert stat["n"] == 3 and stat["mean"] == pytest.approx(0.8) and stat["sd"] == pytest.approx(0.1)
    assert mean_sd([0.5]) == {"mean": 0.5, "sd": 0.0, "n": 1}
    assert mean_sd([float("nan")])["n"] == 0


# --- end to end (tiny TensorFlow runs) ---

tf_only = pytest.mark.tf


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("cvconf") / "tiny.toml", TINY_TOML)


def _cv(data: Path, out: Path, config: Path, *extra: str) -> int:
    return main(["cv", "--data", str(data), "--out", str(out), "--config", str(config), "--seed", "2", *extra])


@pytest.fixture(scope="module")
def cv_out(tiny_dataset: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("cv") / "out"
    assert _cv(tiny_dataset, out, tiny_config, "--json") == 0
    return out


def _pearson(p: np.ndarray, m: np.ndarray) -> float:
    ok = np.isfinite(p) & np.isfinite(m)
    return float(np.corrcoef(p[ok], m[ok])[0, 1])


@tf_only
def test_every_fold_once_and_the_summary_adds_up(cv_out, tiny_dataset):
    summary = json.loads((cv_out / "cv.json").read_text())
    assert summary["variants"] == ["static", "imu"]
    assert [f["test"] for f in summary["folds"]] == [["S01"], ["S02"], ["S03"]]
    results = {p.parent.name: json.loads(p.read_text()) for p in (cv_out / "folds").glob("*/result.json")}
    assert sorted(results) == sorted(f"S0{i}-{v}" for i in (1, 2, 3) for v in ("static", "imu"))
    for name, result in results.items():
        assert result["split"]["test"] == result["test_subjects"] == [name.split("-")[0]]
        assert result["test_subjects"][0] not in result["split"]["train"] + result["split"]["val"]
        run_metrics = json.loads((cv_out / "folds" / name / "run" / "metrics.json").read_text())
        assert result["subject_naive"]["pooled"] == run_metrics["subject_naive"]["pooled"]
        assert result["use_static"] == (name.endswith("static"))

    for variant in ("static", "imu"):
        mine = [results[f"S0{i}-{variant}"] for i in (1, 2, 3)]
        for axis in ("v", "ap", "ml"):
            for metric in ("r", "nrmse_pct", "rmse_bw"):
                values = [r["subject_naive"]["pooled"]["axes"][axis][metric] for r in mine]
                stat = summary["mean_sd"][variant]["axes"][axis][metric]
                assert stat["n"] == 3
                assert stat["mean"] == pytest.approx(np.mean(values), abs=1e-5)
                assert stat["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-5)
        # pooled: every fold's test predictions concatenated, recomputed here independently
        p = np.concatenate(
            [np.concatenate(load_predictions(cv_out / "folds" / f"S0{i}-{variant}")[0]) for i in (1, 2, 3)]
        )
        m = np.concatenate(
            [np.concatenate(load_predictions(cv_out / "folds" / f"S0{i}-{variant}")[1]) for i in (1, 2, 3)]
        )
        pooled = summary["pooled"][variant]["axes"]
        for j, axis in enumerate(("v", "ap", "ml")):
            assert pooled[axis]["r"] == pytest.approx(_pearson(p[:, j], m[:, j]), abs=1e-4)
            ok = np.isfinite(p[:, j]) & np.isfinite(m[:, j])
            assert pooled[axis]["rmse_bw"] == pytest.approx(np.sqrt(np.mean((p[ok, j] - m[ok, j]) ** 2)), abs=1e-4)
            assert pooled[axis]["n_samples"] == int(ok.sum())
        # a fold's saved predictions are the ones its run scored
        p1, m1, _ = load_predictions(cv_out / "folds" / f"S01-{variant}")
        fold_r = results[f"S01-{variant}"]["subject_naive"]["pooled"]["axes"]["v"]["r"]
        assert _pearson(np.concatenate(p1)[:, 0], np.concatenate(m1)[:, 0]) == pytest.approx(fold_r, abs=1e-4)
    if "stance_axes" in summary["mean_sd"]["static"]:
        values = [results[f"S0{i}-static"]["subject_naive"]["pooled"]["stance_axes"]["v"]["r"] for i in (1, 2, 3)]
        assert summary["mean_sd"]["static"]["stance_axes"]["v"]["r"]["mean"] == pytest.approx(np.mean(values), abs=1e-5)
    delta = [
        results[f"S0{i}-static"]["subject_naive"]["pooled"]["axes"]["v"]["r"]
        - results[f"S0{i}-imu"]["subject_naive"]["pooled"]["axes"]["v"]["r"]
        for i in (1, 2, 3)
    ]
    assert summary["static_effect"]["axes"]["v"]["delta_r"]["mean"] == pytest.approx(np.mean(delta), abs=1e-5)

    rows = list(csv.DictReader((cv_out / "cv.csv").open()))
    assert len(rows) == 6 and {(r["fold"], r["variant"]) for r in rows} == {
        (f"S0{i}", v) for i in (1, 2, 3) for v in ("static", "imu")
    }
    for row in rows:
        expected = results[f"{row['fold']}-{row['variant']}"]["subject_naive"]["pooled"]["axes"]["ml"]["nrmse_pct"]
        assert float(row["ml_nrmse_pct"]) == pytest.approx(expected)
    text = (cv_out / "cv.md").read_text()
    assert "leave-one-subject-out" in text and "± " in text and "| S02 | S02 | imu |" in text


@tf_only
def test_rerun_trains_only_the_missing_fold(cv_out, tiny_dataset, tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cv_out, out)
    shutil.rmtree(out / "folds" / "S02-imu")  # as if interrupted while this fold trained
    kept = {p: p.stat().st_mtime_ns for p in (out / "folds").glob("*/result.json")}
    capsys.readouterr()
    assert _cv(tiny_dataset, out, tiny_config, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["trained_now"] == 1
    assert (out / "folds" / "S02-imu" / "result.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished folds untouched
    before = json.loads((cv_out / "folds" / "S02-imu" / "result.json").read_text())["subject_naive"]
    after = json.loads((out / "folds" / "S02-imu" / "result.json").read_text())["subject_naive"]
    assert after["pooled"]["axes"]["v"]["r"] == pytest.approx(before["pooled"]["axes"]["v"]["r"], abs=1e-3)


@tf_only
def test_limit_stops_early_and_a_rerun_finishes(tiny_dataset, tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    assert _cv(tiny_dataset, out, tiny_config, "--static", "off", "--limit", "1", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert first == {"complete": False, "done": 1, "missing": ["S02-imu", "S03-imu"]}
    assert not (out / "cv.json").exists()
    assert _cv(tiny_dataset, out, tiny_config, "--static", "off", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["complete"] and second["trained_now"] == 2 and second["variants"] == ["imu"]
    assert second["static_effect"] is None


@tf_only
def test_resume_with_another_setup_is_refused(cv_out, tiny_dataset, tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cv_out, out)
    other = tmp_path / "other.toml"
    other.write_text(TINY_TOML.replace("epochs = 2", "epochs = 3"))
    capsys.readouterr()
    assert _cv(tiny_dataset, out, other) == 2
    err = capsys.readouterr().err
    assert "fold S01-static was run with another setup" in err and "[fit] epochs: 2 there, 3 now" in err

    changed = tmp_path / "ds"
    shutil.copytree(tiny_dataset, changed)
    table = (changed / "subjects.csv").read_text().splitlines()
    header, first = table[0].split(","), table[1].split(",")
    first[header.index("body_mass_kg")] = "99.0"
    (changed / "subjects.csv").write_text("\n".join([table[0], ",".join(first), *table[2:]]) + "\n")
    assert _cv(changed, out, tiny_config) == 2
    assert "dataset fingerprint" in capsys.readouterr().err
    assert not list(out.glob("folds/*/run/.tmp*"))


@tf_only
def test_parallel_workers_give_the_serial_results(cv_out, tiny_dataset, tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    assert _cv(tiny_dataset, out, tiny_config, "--static", "on", "--jobs", "2", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["trained_now"] == 3
    for i in (1, 2, 3):
        serial = json.loads((cv_out / "folds" / f"S0{i}-static" / "result.json").read_text())
        parallel = json.loads((out / "folds" / f"S0{i}-static" / "result.json").read_text())
        assert parallel["fingerprint"] == serial["fingerprint"]
        assert parallel["subject_naive"]["pooled"]["axes"]["v"]["r"] == pytest.approx(
            serial["subject_naive"]["pooled"]["axes"]["v"]["r"], abs=1e-3
        )
