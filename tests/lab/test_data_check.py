"""`forcecast data check` on good and broken datasets (the acceptance cases of format v1)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forcecast.cli import main
from forcecast.lab.dataset import check_dataset


def edit_csv(path: Path, change) -> None:
    table = pd.read_csv(path)
    changed = change(table)
    (table if changed is None else changed).to_csv(path, index=False)


def run_check(capsys, root: Path, *extra: str) -> tuple[int, str]:
    code = main(["data", "check", str(root), *extra])
    return code, capsys.readouterr().out


def test_synthetic_dataset_passes(capsys, tiny_dataset):
    code, out = run_check(capsys, tiny_dataset)
    assert code == 0, out
    assert "subjects  3 (3 with trials)" in out
    assert "OK: 0 error(s)" in out


def test_json_output_is_one_object(capsys, tiny_dataset):
    code, out = run_check(capsys, tiny_dataset, "--json")
    payload = json.loads(out)
    assert code == 0 and payload["ok"] is True
    assert payload["summary"]["trials"] == 6
    assert payload["summary"]["force_rates_hz"] == [1000.0]
    assert payload["summary"]["force_coverage"] == {"l": 1.0, "r": 1.0}


def break_time(root: Path) -> None:
    def change(t: pd.DataFrame) -> None:
        times = t["time_s"].to_numpy(copy=True)
        times[9] = times[3]  # time runs backwards at row 9
        t["time_s"] = times

    edit_csv(root / "trials/S01/walk_comfortable.imu.csv", change)


def break_units_acc(root: Path) -> None:
    def change(t: pd.DataFrame) -> None:
        for axis in "xyz":
            t[f"pelvis_acc_{axis}"] *= 1000.0

    edit_csv(root / "trials/S02/walk_comfortable.imu.csv", change)


def break_units_gyr(root: Path) -> None:
    def change(t: pd.DataFrame) -> None:
        for axis in "xyz":
            t[f"l_shank_gyr_{axis}"] = np.rad2deg(t[f"l_shank_gyr_{axis}"])

    edit_csv(root / "trials/S03/walk_comfortable.imu.csv", change)


def break_units_force(root: Path) -> None:
    def change(t: pd.DataFrame) -> None:
        for axis in ("v", "ap", "ml"):
            t[f"r_grf_{axis}"] /= 1000.0

    edit_csv(root / "trials/S03/walk_comfortable.force.csv", change)


def break_column(root: Path) -> None:
    edit_csv(root / "trials/S01/static.imu.csv", lambda t: t.rename(columns={"r_foot_gyr_z": "r_foot_gyro_z"}))


def break_nan(root: Path) -> None:
    def change(t: pd.DataFrame) -> None:
        t.loc[19:39, "r_shank_gyr_y"] = np.nan

    edit_csv(root / "trials/S02/static.imu.csv", change)


def set_value(path: Path, row: int, column: str, value: float) -> None:
    """Set data row ``row`` (1-based, as problems name it) of ``column``."""

    def change(t: pd.DataFrame) -> None:
        t.loc[row - 1, column] = value

    edit_csv(path, change)


def break_acc_spike(root: Path) -> None:
    set_value(root / "trials/S03/walk_comfortable.imu.csv", 51, "l_shank_acc_y", 1e30)


def break_gyr_spike(root: Path) -> None:
    set_value(root / "trials/S03/static.imu.csv", 71, "pelvis_gyr_y", 60.0)


def break_imu_inf(root: Path) -> None:
    set_value(root / "trials/S02/walk_comfortable.imu.csv", 31, "r_thigh_gyr_z", np.inf)


def break_force_spike(root: Path) -> None:
    set_value(root / "trials/S02/walk_comfortable.force.csv", 101, "l_grf_ml", 1e300)


def break_force_inf(root: Path) -> None:
    set_value(root / "trials/S03/static.force.csv", 12, "r_grf_v", -np.inf)


def break_subject(root: Path) -> None:
    shutil.copytree(root / "trials/S01", root / "trials/S99")


CASES = {
    # name: (breaker, file, row, column, words in the message)
    "non-monotonic time": (break_time, "trials/S01/walk_comfortable.imu.csv", 10, "time_s", "not strictly increasing"),
    "acc unit slip": (break_units_acc, "trials/S02/walk_comfortable.imu.csv", None, "pelvis_acc_x", "1000× too large"),
    "gyr unit slip": (break_units_gyr, "trials/S03/walk_comfortable.imu.csv", None, "l_shank_gyr_x", "deg/s"),
    "force unit slip": (break_units_force, "trials/S03/walk_comfortable.force.csv", None, "r_grf_v", "kN"),
    "unknown column": (break_column, "trials/S01/static.imu.csv", None, "r_foot_gyro_z", "did you mean 'r_foot_gyr_z'"),
    "NaN run": (break_nan, "trials/S02/static.imu.csv", 20, "r_shank_gyr_y", "rows 20-40"),
    "subject missing": (break_subject, "trials/S99", None, None, "missing from subjects.csv"),
    "acc spike 1e30": (
        break_acc_spike,
        "trials/S03/walk_comfortable.imu.csv",
        51,
        "l_shank_acc_x",
        "l_shank_acc magnitude is physically impossible",
    ),
    "gyr spike": (
        break_gyr_spike,
        "trials/S03/static.imu.csv",
        71,
        "pelvis_gyr_x",
        "pelvis_gyr magnitude is physically impossible",
    ),
    "IMU infinity": (break_imu_inf, "trials/S02/walk_comfortable.imu.csv", 31, "r_thigh_gyr_z", "infinite IMU value"),
    "force spike 1e300": (
        break_force_spike,
        "trials/S02/walk_comfortable.force.csv",
        101,
        "l_grf_ml",
        "force is physically impossible",
    ),
    "force infinity": (break_force_inf, "trials/S03/static.force.csv", 12, "r_grf_v", "infinite force value"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_case_fails_and_is_named(capsys, dataset_copy, case):
    breaker, file, row, column, words = CASES[case]
    breaker(dataset_copy)
    code, out = run_check(capsys, dataset_copy)
    assert code == 1, out
    report = check_dataset(dataset_copy)
    matches = [p for p in report.errors if p.file == file and p.column == column and words in p.message]
    assert len(matches) == 1, [str(p) for p in report.problems]
    if row is not None:
        assert matches[0].row == row
    assert str(matches[0]) in out
    assert "FAILED" in out


def test_all_problems_at_once_are_all_listed(capsys, dataset_copy):
    for breaker, *_ in CASES.values():
        breaker(dataset_copy)
    code, out = run_check(capsys, dataset_copy, "--json")
    payload = json.loads(out)
    assert code == 1 and not payload["ok"]
    messages = [p["message"] for p in payload["problems"] if p["severity"] == "error"]
    for _, _, _, _, words in CASES.values():
        assert any(words in m for m in messages), words


def test_missing_dataset_and_empty_folder(capsys, tmp_path):
    code, out = run_check(capsys, tmp_path / "absent")
    assert code == 1 and "not a folder" in out
    code, out = run_check(capsys, tmp_path)
    assert code == 1
    assert "subjects.csv" in out and "trials" in out


def test_force_written_as_zero_instead_of_nan_is_a_warning(dataset_copy):
    def change(t: pd.DataFrame) -> None:
        t.loc[:, ["l_grf_v", "l_grf_ap", "l_grf_ml"]] = 0.0

    edit_csv(dataset_copy / "trials/S01/walk_comfortable.force.csv", change)
    report = check_dataset(dataset_copy)
    assert report.ok
    assert any("write NaN" in p.message and p.column == "l_grf_v" for p in report.warnings)


def test_missing_force_as_nan_is_fine_and_counted(dataset_copy):
    def change(t: pd.DataFrame) -> None:
        t.loc[: len(t) // 2, ["r_grf_v", "r_grf_ap", "r_grf_ml"]] = np.nan

    edit_csv(dataset_copy / "trials/S01/walk_comfortable.force.csv", change)
    report = check_dataset(dataset_copy)
    assert report.ok, [str(p) for p in report.problems]
    assert report.summary()["force_coverage"]["r"] < 0.95


def test_vertical_force_pulling_down_is_a_warning_naming_the_rows(dataset_copy):
    def change(t: pd.DataFrame) -> None:
        t.loc[199:209, "l_grf_v"] = -400.0  # far below plate noise for any body weight here

    edit_csv(dataset_copy / "trials/S03/walk_comfortable.force.csv", change)
    report = check_dataset(dataset_copy)
    assert report.ok, [str(p) for p in report.errors]
    (warning,) = [p for p in report.warnings if "cannot pull on the ground" in p.message]
    assert warning.column == "l_grf_v" and warning.row == 200 and "11 sample(s)" in warning.message


def test_walking_magnitudes_are_not_flagged(tiny_dataset):
    """The synthetic lab's heel strikes and swings stay far inside the impossible-magnitude limits."""
    report = check_dataset(tiny_dataset)
    assert not [p for p in report.problems if "impossible" in p.message or "infinite" in p.message]
