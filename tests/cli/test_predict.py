"""``forcecast predict`` on IMU-only trials reproduces what ``evaluate`` predicts, through the device's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_training import tiny_toml, train, write_config

from forcecast.cli import main

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

TOLERANCE_BW = 1e-5
"""Streaming (device) and whole-sequence (evaluate) inference run the same windows: float32 round-off only."""


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predict_run")
    config = write_config(folder / "tiny.toml", tiny_toml(min_steps=6))
    run = folder / "run"
    assert train(tiny_dataset, run, config, "--test-subjects", "S02", "--seed", "3", "--json") == 0
    return run


def test_predict_on_imu_only_file_matches_evaluate(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    from forcecast.training.config import DataConfig
    from forcecast.training.data import load_sequences
    from forcecast.training.evaluate import keras_predictor, load_keras_run, model_uses_static
    from forcecast.training.windows import predict_sequence

    # an IMU-only copy of S02's walk, outside any dataset: force columns gone, static features given by hand
    imu = pd.read_csv(tiny_dataset / "trials" / "S02" / "walk_comfortable.imu.csv")
    assert not [c for c in imu.columns if "force" in c or c.endswith("_grf_v")]
    lone = tmp_path / "walk.csv"
    imu.to_csv(lone, index=False)
    subject = pd.read_csv(tiny_dataset / "subjects.csv").set_index("subject_id").loc["S02"]
    static = ",".join(
        f"{k}={subject[k]}" for k in ("body_mass_kg", "height_m", "hka_deg", "affected_side") if pd.notna(subject[k])
    )
    out = tmp_path / "grf.csv"
    assert main(["predict", "--model", str(tiny_run), "--imu", str(lone), "--out", str(out), "--static", static]) == 0
    grf = pd.read_csv(out).set_index("time_s")
    steps = pd.read_csv(tmp_path / "grf.steps.csv") if (tmp_path / "grf.steps.csv").stat().st_size > 1 else None
    assert steps is None or set(steps["leg"]) <= {"l", "r"}
    expected_columns = {f"{leg}_{a}_{u}" for leg in "lr" for a in ("v", "ap", "ml") for u in ("bw", "n")}
    assert expected_columns | {"l_stance", "r_stance"} <= set(grf.columns)

    model, contract = load_keras_run(tiny_run / "model.keras")
    data = DataConfig(
        rate_hz=contract.rate_hz,
        leg_places=contract.leg_places,
        window=contract.window,
        out_len=contract.out_len,
        delay=contract.delay,
    )
    sequences = [
        s
        for s in load_sequences(tiny_dataset, data, None).sequences
        if s.subject_id == "S02" and s.trial_id.startswith("walk")
    ]
    assert {s.side for s in sequences} == {"l", "r"}
    for seq in sequences:
        offline = predict_sequence(keras_predictor(model), seq, contract, model_uses_static(model))
        known = np.isfinite(offline[:, 0])
        times = pd.Index(np.round(seq.time_s[known], 6))
        assert set(times) == set(np.round(grf.index.to_numpy(), 6)), seq.side  # the same samples are predicted
        streamed = grf.loc[times, [f"{seq.side}_{a}_bw" for a in ("v", "ap", "ml")]].to_numpy()
        np.testing.assert_allclose(streamed, offline[known], atol=TOLERANCE_BW)
        body_weight = subject["body_mass_kg"] * 9.80665
        np.testing.assert_allclose(grf.loc[times, f"{seq.side}_v_n"], streamed[:, 0] * body_weight, rtol=1e-9)


def test_predict_a_dataset_folder_to_parquet_with_trial_column(tiny_run: Path, tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "all.parquet"
    assert main(["predict", "--model", str(tiny_run), "--imu", str(tiny_dataset / "trials"), "--out", str(out)]) == 0
    grf = pd.read_parquet(out)
    trials = [f"S0{i}/{t}.imu.csv" for i in (1, 2, 3) for t in ("static", "walk_comfortable")]
    assert sorted(set(grf["trial"])) == trials
    assert (tmp_path / "all.steps.parquet").is_file()


def test_predict_refuses_bad_input(tiny_run: Path, tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    lone = tmp_path / "walk.csv"
    shutil.copy(tiny_dataset / "trials" / "S01" / "walk_comfortable.imu.csv", lone)
    out = tmp_path / "x.csv"
    run = ["predict", "--model", str(tiny_run), "--out", str(out)]
    assert main([*run, "--imu", str(lone)]) == 2  # static features needed, nowhere to take them from
    assert "--static" in capsys.readouterr().err
    assert main([*run, "--imu", str(lone), "--static", "mass=70"]) == 2
    assert "mass: unknown key" in capsys.readouterr().err
    assert main([*run, "--imu", str(lone), "--static", "body_mass_kg=heavy"]) == 2
    assert "not a number" in capsys.readouterr().err
    assert main([*run, "--imu", str(tmp_path / "missing.csv")]) == 2
    in_dataset = tiny_dataset / "trials" / "S01" / "walk_comfortable.imu.csv"
    assert main([*run, "--imu", str(in_dataset), "--subject", "S42"]) == 2
    assert "--subject S42: no usable row" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # one or the other, as argparse says
        main([*run, "--imu", str(in_dataset), "--subject", "S01", "--static", "body_mass_kg=70"])
    assert usage.value.code == 2
    assert main([*run, "--imu", str(lone), "--legs", "x"]) == 2
    assert main([*run[:-1], str(tmp_path / "x.txt"), "--imu", str(lone), "--static", "body_mass_kg=70"]) == 2
    out.write_text("keep")
    assert main([*run, "--imu", str(lone), "--static", "body_mass_kg=70"]) != 0
    assert out.read_text() == "keep"


def test_predict_json_summary(tiny_run: Path, tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    walk = tiny_dataset / "trials" / "S03" / "walk_comfortable.imu.csv"
    code = main(["predict", "--model", str(tiny_run), "--imu", str(walk), "--out", str(tmp_path / "g.csv"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"][0]["rows"] > 0 and summary["trials"][0]["inferences"] > 0
    assert summary["trials"][0]["calibration"] == {}  # no start-up calibration by default
    calibrated = ["--out", str(tmp_path / "c.csv"), "--calibration-s", "2", "--json"]
    assert main(["predict", "--model", str(tiny_run), "--imu", str(walk), *calibrated]) == 0
    trial = json.loads(capsys.readouterr().out)["trials"][0]
    assert "calibrated" in trial["calibration"]  # tried (this walk has no standing start: it may be refused)
    assert trial["rows"] < summary["trials"][0]["rows"]  # the calibration pose itself is not predicted on
    assert (
        main(["predict", "--model", str(tiny_run), "--imu", str(walk), *calibrated[:2], "--calibration-s", "-1"]) == 2
    )


def test_predict_with_a_package_gives_steps_and_stance_flags(tmp_path: Path) -> None:
    from pipelines import replay_trial

    from forcecast.lab.sources.synthetic import SyntheticSource

    data = Path(__file__).parents[1] / "data"
    source = SyntheticSource(subject=1, seed=5, speed=0, stand_s=3.0, program=(("comfortable", 20.0),), duration_s=23)
    trial = replay_trial(tmp_path / "ds", source, "S01", "walk")
    out = tmp_path / "grf.csv"
    args = ["--imu", str(trial), "--out", str(out), "--static", "body_mass_kg=70,height_m=1.75,affected_side=none"]
    package = ["--model", str(data / "grf_int8.fcpkg"), "--pubkey", str(data / "forcecast-test.pub")]
    assert main(["predict", *package, *args]) == 0
    grf = pd.read_csv(out)
    steps = pd.read_csv(tmp_path / "grf.steps.csv")
    for leg in ("l", "r"):
        mine = steps[steps["leg"] == leg]
        assert len(mine) >= 10, leg  # ~20 s of walking
        assert (mine["peak1_bw"] > 0.8).all() and (mine["peak1_n"] > 0.8 * 70 * 9.80665).all()
        stance = grf[f"{leg}_stance"].to_numpy()
        inside = np.zeros(len(grf), dtype=bool)
        for ic, tc in mine[["ic_s", "tc_s"]].itertuples(index=False):
            inside |= (grf["time_s"] >= ic - 1e-6) & (grf["time_s"] <= tc + 1e-6)
        assert (stance == inside).all()
        assert grf.loc[stance, f"{leg}_v_bw"].mean() > 5 * grf.loc[~stance, f"{leg}_v_bw"].abs().mean()
    from forcecast.edge.keys import new_key_pair

    _, stranger = new_key_pair(tmp_path / "keys")
    signer = ["--model", str(data / "grf_int8.fcpkg"), "--pubkey", str(stranger)]
    assert main(["predict", *signer, *args, "--force"]) != 0  # signed by another key: refused
