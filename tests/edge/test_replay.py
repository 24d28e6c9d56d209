"""The replay source reads format-v1 CSV trials and subjects.csv with the standard library (no pandas on a device)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.sources.base import SourceError, SubjectProfile
from forcecast.edge.sources.plugins import source_class
from forcecast.edge.sources.replay import ReplaySource

HEADER = "time_s,r_shank_acc_x,r_shank_acc_y,r_shank_acc_z,r_shank_gyr_x,r_shank_gyr_y,r_shank_gyr_z,r_grf_v"
SUBJECTS = "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS01,70.5,1.72,,left\nS02,80,1.80,3.5,right\n"


def trial(tmp_path, rows: list[str], header: str = HEADER, subjects: str | None = SUBJECTS, name: str = "walk.csv"):
    folder = tmp_path / "trials" / "S01"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    if subjects is not None:
        (tmp_path / "subjects.csv").write_text(subjects)
    return path


def rows_at(rate_hz: float, n: int) -> list[str]:
    return [f"{k / rate_hz:.4f},0.1,0.2,9.8,0.01,0.02,0.03,500" for k in range(n)]


def test_reads_the_imu_columns_and_the_subject(tmp_path):
    rows = rows_at(100.0, 50)
    rows[3] = "0.0300,,0.2,9.8,0.01,0.02,0.03,"  # a dropped sample: blank cells are NaN, not 0
    source = ReplaySource(trial(tmp_path, rows), speed=0)
    assert source.columns == tuple(HEADER.split(",")[1:7])
    assert source.values.shape == (50, 6) and math.isnan(source.values[3, 0]) and source.values[3, 1] == 0.2
    assert source.rate_hz == pytest.approx(100.0)
    assert source.subject == SubjectProfile("S01", 70.5, 1.72, None, "left")
    chunks = list(source.chunks())
    assert sum(c.time_s.size for c in chunks) == 50


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["0.00,0.1,0.2,9.8,0.01,0.02,0.03,1", "0.01,0.1,abc,9.8,0.01,0.02,0.03,1"], "row 3, column r_shank_acc_y"),
        (["0.00,0.1,0.2,9.8,0.01,0.02,0.03,1", "0.01,0.1,0.2"], "row 3: 3 cells, the header has 8"),
        (["0.00,0.1,0.2,9.8,0.01,0.02,0.03,1"], "has 1 data row(s)"),
        (["0.00,0.1,0.2,9.8,0.01,0.02,0.03,1", ",0.1,0.2,9.8,0.01,0.02,0.03,1"], "time_s has missing values"),
    ],
)
def test_bad_files_are_refused_with_the_place(tmp_path, rows, message):
    with pytest.raises(SourceError) as error:
        ReplaySource(trial(tmp_path, rows), speed=0)
    assert message in str(error.value) and "walk.csv" in str(error.value)


def test_a_file_without_imu_columns_or_in_parquet_is_refused(tmp_path):
    with pytest.raises(SourceError, match="needs a time_s column and IMU columns"):
        ReplaySource(trial(tmp_path, ["0,1", "0.01,2"], header="time_s,r_grf_v"), speed=0)
    parquet = trial(tmp_path, [], name="walk.parquet")
    with pytest.raises(SourceError, match="the device replays CSV trials"):
        ReplaySource(parquet, speed=0)


@pytest.mark.parametrize(
    "subjects",
    [
        None,  # no subjects.csv next to the trials
        "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS02,80,1.80,3.5,right\n",  # not listed
        "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS01,70,tall,,left\n",  # height not a number
        "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS01,70,1.7,,both\n",  # unknown side
        "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS01,,1.7,,left\n",  # mass unknown
        "subject_id,height_m\nS01,1.7\n",  # columns missing
    ],
)
def test_an_unusable_subject_row_gives_no_profile(tmp_path, subjects):
    assert ReplaySource(trial(tmp_path, rows_at(100.0, 5), subjects=subjects), speed=0).subject is None


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(
        st.lists(st.floats(-1e4, 1e4, allow_nan=False) | st.none(), min_size=6, max_size=6), min_size=2, max_size=30
    )
)
def test_every_number_and_blank_cell_is_read_back(tmp_path_factory, values):
    tmp_path = tmp_path_factory.mktemp("replay")
    cells = [",".join("" if v is None else repr(v) for v in row) for row in values]
    rows = [f"{k / 100:.2f},{text},0" for k, text in enumerate(cells)]
    source = ReplaySource(trial(tmp_path, rows), speed=0)
    expected = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=np.float64)
    np.testing.assert_array_equal(source.values, expected)


def test_the_synthetic_source_is_a_plug_in_of_the_lab_layer():
    synthetic = source_class("synthetic")
    assert synthetic.__module__ == "forcecast.lab.sources.synthetic"
    with pytest.raises(SourceError, match=r"no entry point 'teleport' in group 'forcecast\.sources'"):
        source_class("teleport")
