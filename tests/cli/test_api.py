"""``import forcecast`` exposes the documented API, lazily; the README's Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_training import tiny_toml, write_config

import forcecast
from forcecast.edge.sources.base import SourceError
from forcecast.training.predict import FrameSource, parse_static, patient_from

ROOT = Path(__file__).resolve().parents[2]
API = (
    "GRFPredictor",
    "Model",
    "check_dataset",
    "cross_validate",
    "evaluate",
    "import_lab_data",
    "load_model",
    "open_dataset",
    "train",
)


def test_import_forcecast_is_light_and_lists_the_api() -> None:
    code = (
        "import sys, forcecast; heavy = [m for m in ('pandas', 'tensorflow', 'keras') if m in sys.modules]; "
        "print(heavy, sorted(n for n in dir(forcecast) if not n.startswith('_')))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    heavy, names = out.split("] ", 1)
    assert heavy == "["
    assert names.strip() == str(sorted([*API, "LAYERS"]))
    for name in API:
        assert callable(getattr(forcecast, name)), name
    with pytest.raises(AttributeError, match="no attribute 'predict_everything'"):
        forcecast.predict_everything  # noqa: B018


def test_frame_source_refuses_bad_tables() -> None:
    with pytest.raises(SourceError, match="needs a time_s column"):
        FrameSource.from_frame(pd.DataFrame({"t": [0.0, 0.01], "r_shank_acc_x": [0.0, 0.0]}))
    with pytest.raises(SourceError, match="not an IMU rate"):
        FrameSource(np.array([0.0, 1.0, 2.0]), ("r_shank_acc_x",), np.zeros((3, 1)))
    with pytest.raises(SourceError, match="shape"):
        FrameSource(np.arange(3) / 100, ("r_shank_acc_x",), np.zeros((3, 2)))
    with pytest.raises(SourceError, match="finite"):
        FrameSource(np.array([0.0, np.nan, 0.02]), ("r_shank_acc_x",), np.zeros((3, 1)))


def test_static_text_and_patient_refusals() -> None:
    from forcecast.edge.config import ConfigError

    assert parse_static("body_mass_kg=70, height_m=1.7") == {"body_mass_kg": "70", "height_m": "1.7"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_static("body_mass_kg")
    with pytest.raises(ConfigError, match="affected_side=up"):
        patient_from(None, {"affected_side": "up"}, "")
    with pytest.raises(ConfigError, match="not a finite number"):
        patient_from(None, {"height_m": "nan"}, "")
    with pytest.raises(ConfigError, match="--static"):
        patient_from(None, {"body_mass_kg": "5"}, "")  # below the device's bound
    patient = patient_from(None, {"body_mass_kg": "80", "affected_side": "left"}, "P9")
    assert (patient.patient_id, patient.body_mass_kg, patient.affected_side) == ("P9", 80.0, "left")


@pytest.mark.tf
def test_readme_python_example_and_arrays_match_frames(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    [example] = [
        b
        for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
        if "GRFPredictor" in b
    ]
    work = tmp_path / "nb"
    work.mkdir()
    (work / "data").symlink_to(tiny_dataset)
    config = write_config(work / "tiny.toml", tiny_toml(min_steps=6) + '[split]\ntest_subjects = ["S02"]\n')
    metrics = forcecast.train(tiny_dataset, work / "run", config)
    assert list(metrics["axis"]) == ["v", "ap", "ml"] and np.isfinite(metrics["r"]).all()
    cwd = Path.cwd()
    os.chdir(work)
    try:
        scope: dict[str, object] = {}
        exec(compile(example, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    grf = scope["grf"]
    assert isinstance(grf, pd.DataFrame) and len(grf) > 0 and {"r_v_bw", "l_v_n", "r_stance"} <= set(grf.columns)
    scores = scope["scores"]
    assert isinstance(scores, pd.DataFrame) and list(scores["axis"]) == ["v", "ap", "ml"]

    model = forcecast.load_model(work / "run" / "model.keras")
    imu = pd.read_csv(tiny_dataset / "trials" / "S02" / "walk_comfortable.imu.csv")
    columns = [c for c in imu.columns if c != "time_s"]
    subject = {"body_mass_kg": 72.0, "height_m": 1.75}
    from_frame = model.predict(imu, subject=subject)
    from_arrays = model.predict((imu["time_s"].to_numpy(), columns, imu[columns].to_numpy()), subject=subject)
    pd.testing.assert_frame_equal(from_frame, from_arrays)
    heavier = model.predict(imu, subject={**subject, "body_mass_kg": 90.0})
    np.testing.assert_allclose(heavier["r_v_n"], heavier["r_v_bw"] * 90.0 * 9.80665, rtol=1e-9)
    np.testing.assert_allclose(from_frame["l_ml_n"], from_frame["l_ml_bw"] * 72.0 * 9.80665, rtol=1e-9)
    with pytest.raises(ValueError, match="subject"):
        forcecast.GRFPredictor(model, subject={"weight": 70}).predict(imu)

    # evaluate scores the held-out subject by default, like the CLI; a training subject needs the flag and warns
    held_out = forcecast.evaluate(model, tiny_dataset)
    pd.testing.assert_frame_equal(held_out, forcecast.evaluate(model, tiny_dataset, subjects=["S02"]))
    from forcecast.edge.config import ConfigError

    with pytest.raises(ConfigError, match="seen in training"):
        forcecast.evaluate(model, tiny_dataset, subjects="all")
    with pytest.warns(UserWarning, match="saw in training"):
        everyone = forcecast.evaluate(model, tiny_dataset, subjects="all", allow_training_subjects=True)
    assert not everyone[["r", "rmse_bw"]].equals(held_out[["r", "rmse_bw"]])
