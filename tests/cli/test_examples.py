"""The scripts in ``examples/`` run as written (a tiny train and evaluate, then a prediction on an IMU-only trial)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, work: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(work)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def test_examples_run_in_order(tmp_path: Path) -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["predict_imu_only.py", "train_and_evaluate.py"]
    out = run_example("train_and_evaluate.py", tmp_path)
    assert "dataset ok: True" in out and "3 subjects, 6 trials" in out
    assert (tmp_path / "run" / "model.keras").is_file()
    out = run_example("predict_imu_only.py", tmp_path)
    assert "r_v_bw" in out and "inferences" in out
