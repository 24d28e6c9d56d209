"""The README's examples run as written (examples must not rot)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from forcecast.lab.dataset import check_dataset

README = Path(__file__).resolve().parents[2] / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    bash = code_blocks("bash")
    assert bash[0].startswith("python3.11 -m venv .venv") and bash[0].rstrip().endswith("forcecast demo")
    assert bash[1].startswith("python3.11 -m venv .venv") and "pytest" in bash[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3\\.11 -m venv \\.venv .*pytest" in ci


def test_conversion_example_runs_and_gives_a_valid_dataset(tmp_path):
    [example] = [b for b in code_blocks("python") if "write_trial" in b]
    raw = tmp_path / "raw"
    raw.mkdir()
    t_imu = np.arange(0, 10, 1 / 148.0)
    t_plate = np.arange(0, 10, 1 / 1000.0)
    phase = 2 * np.pi * t_imu / 1.1
    pd.DataFrame(
        {
            "t": t_imu,
            "ax": 0.1 * np.sin(phase),
            "ay": 0.05 * np.cos(phase),
            "az": 1.0 + 0.1 * np.sin(phase),
            "gx": 10 * np.sin(phase),
            "gy": 200 * np.sin(phase),
            "gz": 15 * np.cos(phase),
        }
    ).to_csv(raw / "P01_walk1_imu.csv", index=False)
    stance = np.clip(np.sin(2 * np.pi * t_plate / 1.1), 0, None)
    pd.DataFrame({"t": t_plate, "Fz": 850 * stance, "Fy": 120 * stance, "Fx": -40 * stance}).to_csv(
        raw / "P01_walk1_plates.csv", index=False
    )
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = check_dataset(tmp_path / "my-dataset")
    assert report.ok, [str(p) for p in report.problems]
    assert report.summary()["imu_rates_hz"] == [148.0]
