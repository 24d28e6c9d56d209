from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forcecast.edge.schema import all_force_columns, all_imu_columns
from forcecast.lab.dataset import (
    DatasetError,
    Stream,
    Trial,
    TrialRef,
    discover_trials,
    load_trial,
    read_trial,
    write_trial,
)

IMU_COLUMNS = all_imu_columns(("l_shank", "r_shank"))


def make_trial(n: int = 50, rate: float = 100.0, with_force: bool = True) -> Trial:
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    values = rng.normal(0, 1, (n, len(IMU_COLUMNS)))
    values[:, 2] += 9.81
    imu = Stream(t, IMU_COLUMNS, values)
    force = Stream(t, all_force_columns(), np.abs(rng.normal(400, 50, (n, 6)))) if with_force else None
    return Trial("S1", "walk", imu, force)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
@pytest.mark.parametrize("paired", [False, True])
def test_round_trip(tmp_path, file_format, paired):
    trial = make_trial()
    paths = write_trial(tmp_path, trial, file_format=file_format, paired=paired)
    assert len(paths) == (2 if paired else 1)
    refs, problems = discover_trials(tmp_path)
    assert problems == [] and len(refs) == 1
    back = load_trial(refs[0], tmp_path)
    assert back.imu.columns == trial.imu.columns
    np.testing.assert_allclose(back.imu.values, trial.imu.values, atol=5e-5)
    np.testing.assert_allclose(back.force.values, trial.force.values, atol=5e-3)
    np.testing.assert_allclose(back.imu.time_s, trial.imu.time_s, atol=1e-6)


def test_writing_is_deterministic(tmp_path):
    trial = make_trial()
    a = write_trial(tmp_path / "a", trial)[0].read_bytes()
    b = write_trial(tmp_path / "b", trial)[0].read_bytes()
    assert a == b
    assert a.startswith(b"time_s,l_shank_acc_x")


def csv_trial(tmp_path: Path, text: str, name: str = "walk.csv") -> tuple[Trial | None, list]:
    folder = tmp_path / "trials" / "S1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    parts: dict[str, Literal["imu", "force"]] = {"imu": "imu", "force": "force"}
    part: Literal["single", "imu", "force"] = parts[name.split(".")[1]] if name.count(".") == 2 else "single"
    ref = TrialRef("S1", name.split(".")[0], ((part, folder / name),))
    return read_trial(ref, tmp_path)


HEADER = "time_s," + ",".join(all_imu_columns(("pelvis",)))


def rows(n: int, start: float = 0.0) -> str:
    return "\n".join(f"{start + i / 100:.2f},0,0,9.81,0,0,0" for i in range(n))


def test_unknown_column_is_named_with_a_suggestion(tmp_path):
    trial, problems = csv_trial(
        tmp_path, HEADER + ",pelvis_acc_X\n" + "\n".join(f"{i / 100:.2f},0,0,9.81,0,0,0,1" for i in range(5))
    )
    assert trial is None
    [problem] = problems
    assert problem.column == "pelvis_acc_X"
    assert "did you mean 'pelvis_acc_x'" in problem.message
    assert problem.file == "trials/S1/walk.csv"


def test_non_monotonic_time_names_the_row(tmp_path):
    lines = rows(10).split("\n")
    lines[6] = "0.03,0,0,9.81,0,0,0"  # data row 7 goes back in time
    trial, problems = csv_trial(tmp_path, HEADER + "\n" + "\n".join(lines))
    assert trial is None
    [problem] = problems
    assert (problem.row, problem.column) == (7, "time_s")
    assert "not strictly increasing" in problem.message


def test_text_in_a_number_cell_names_row_and_column(tmp_path):
    lines = rows(6).split("\n")
    lines[3] = "0.03,0,oops,9.81,0,0,0"
    trial, problems = csv_trial(tmp_path, HEADER + "\n" + "\n".join(lines))
    assert trial is None
    assert [(p.row, p.column) for p in problems] == [(4, "pelvis_acc_y")]
    assert "'oops'" in problems[0].message


def test_duplicate_and_incomplete_columns(tmp_path):
    header = "time_s,pelvis_acc_x,pelvis_acc_x,pelvis_acc_y,pelvis_acc_z"
    _, problems = csv_trial(tmp_path, header + "\n0,1,1,1,1\n0.01,1,1,1,1\n")
    assert any(p.column == "pelvis_acc_x" and "duplicate" in p.message for p in problems)
    _, problems = csv_trial(tmp_path, "time_s,pelvis_acc_x,pelvis_acc_y\n0,1,1\n0.01,1,1\n")
    assert any("lacks axis/axes z" in p.message for p in problems)


def test_time_in_milliseconds_is_caught(tmp_path):
    text = HEADER + "\n" + "\n".join(f"{i * 10},0,0,9.81,0,0,0" for i in range(5))
    _, problems = csv_trial(tmp_path, text)
    assert any("milliseconds" in p.message for p in problems)


def test_pair_without_overlap_and_orphan_force(tmp_path):
    trial = make_trial()
    later = Trial("S1", "walk", trial.imu, Stream(trial.imu.time_s + 100.0, trial.force.columns, trial.force.values))
    write_trial(tmp_path, later, paired=True)
    refs, _ = discover_trials(tmp_path)
    with pytest.raises(DatasetError, match="does not overlap"):
        load_trial(refs[0], tmp_path)
    (tmp_path / "trials" / "S1" / "walk.imu.csv").unlink()
    refs, problems = discover_trials(tmp_path)
    assert refs == [] and "force file without its .imu file" in problems[0].message


def test_force_columns_in_the_imu_file_are_refused(tmp_path):
    text = "time_s,l_grf_v,l_grf_ap,l_grf_ml\n0,1,1,1\n0.01,1,1,1\n"
    trial, problems = csv_trial(tmp_path, text, name="walk.imu.csv")
    assert trial is None
    assert any("force column in an .imu file" in p.message for p in problems)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_reader(tmp_path, body):
    folder = tmp_path / "trials" / "S1"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fuzz.csv"
    path.write_bytes(HEADER.encode() + b"\n" + body)
    trial, problems = read_trial(TrialRef("S1", "fuzz", (("single", path),)), tmp_path)
    if trial is None:
        assert problems, "a refused trial must say why"
    else:
        assert np.all(np.diff(trial.imu.time_s) > 0)
