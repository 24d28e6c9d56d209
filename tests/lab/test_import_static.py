"""Static trials in lab imports: kept IMU-only for the ``segment_v1`` alignment, never training data.

Hard preset -> C3D (2 subjects, 3 short passes and a static trial each, plus a range-of-motion-like trial
for S01) -> ``data import`` -> ``data check`` -> training data with ``alignment = "segment_v1"``; and the
same with ``--skip-static``, which leaves ``segment_v1`` without standing.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forcecast.cli import main
from forcecast.edge.dsp.segment_alignment import DEFAULT_SETTINGS, settings_for
from forcecast.edge.schema import GRAVITY_MPS2, all_imu_columns, imu_column
from forcecast.lab.dataset import Dataset, DatasetError, check_dataset
from forcecast.lab.dataset.importers import import_lab_data, load_mapping
from forcecast.lab.dataset.importers.standing import MAX_MOVING_SHARE, check_quiet_standing
from forcecast.lab.dataset.trial import Stream
from forcecast.lab.synth.c3d_export import OvergroundConfig, write_overground_dataset
from forcecast.lab.synth.config import hard_preset
from forcecast.training.alignment import fit_session_alignments, model_places
from forcecast.training.config import DataConfig
from forcecast.training.data import load_sequences

ezc3d = pytest.importorskip("ezc3d")

RATE_HZ = 100.0
DATA = DataConfig(alignment="segment_v1", leg_places=("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis"))
ROM_FILE = "knee_swings01.c3d"  # not matched by the mapping's exclude ["*ROM*"]: the IMU must tell


def _swinging_copy(static: Path, out: Path) -> None:
    """A copy of a static C3D trial whose gyroscopes swing (±90 °/s at 0.5 Hz): feet still, joints moving.

    The added value is constant over each of a sensor's held samples, so the sample-and-hold stays intact.
    """
    c3d = ezc3d.c3d(str(static))
    labels = c3d["parameters"]["ANALOG"]["LABELS"]["value"]
    analogs = c3d["data"]["analogs"]
    time_s = np.arange(analogs.shape[2]) / float(c3d["parameters"]["ANALOG"]["RATE"]["value"][0])
    sensors = {m.group(1) for label in labels if (m := re.search(r"Sensor (\d+)IM", label))}
    for sensor in sensors:
        index = [i for i, label in enumerate(labels) if f"Sensor {sensor}IM" in label]
        block = analogs[0, index, :]
        new = np.concatenate([[True], np.any(block[:, 1:] != block[:, :-1], axis=0)])
        held_since = time_s[np.flatnonzero(new)][np.cumsum(new) - 1]
        for i in index:
            if "GYRO" in labels[i]:
                analogs[0, i, :] += 90.0 * np.sin(2.0 * np.pi * 0.5 * held_since + i)
    c3d["data"]["analogs"] = analogs
    c3d.write(str(out))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("static_lab")
    raw = root / "raw"
    write_overground_dataset(raw, hard_preset(subjects=2, seed=5), OvergroundConfig(passes=3, pass_s=6.0, seed=5))
    _swinging_copy(raw / "S01" / "static01.c3d", raw / "S01" / ROM_FILE)
    paths = {"raw": raw}
    for name, extra in (("kept", []), ("skipped", ["--skip-static"])):
        out = root / name
        args = ["data", "import", str(raw), "--mapping", str(raw / "mapping.toml"), "--out", str(out), *extra]
        assert main(args) == 0
        paths[name] = out
    return paths


def _outcomes(out: Path) -> dict[str, dict[str, object]]:
    report = json.loads((out / "import.json").read_text())
    return {str(t["source"]): t for t in report["trials"]}


def test_static_trials_are_kept_imu_only_and_the_dataset_passes_the_check(lab, capsys):
    outcomes = _outcomes(lab["kept"])
    for subject in ("S01", "S02"):
        static = outcomes[f"{subject}/static01.c3d"]
        assert static["status"] == "static_kept" and static["trial_id"] == "static01"
        assert "static: kept for sensor alignment" in str(static["reason"])
        folder = lab["kept"] / "trials" / subject
        assert (folder / "static01.imu.csv").is_file() and not (folder / "static01.force.csv").exists()
    dataset = Dataset.open(lab["kept"])
    kept = [ref for ref in dataset.trials if ref.trial_id == "static01"]
    assert len(kept) == 2 and all(dataset.load(ref).force is None for ref in kept)
    assert main(["data", "check", str(lab["kept"])]) == 0
    assert "OK" in capsys.readouterr().out


def test_a_static_trial_that_moves_stays_skipped_and_says_why(lab):
    rom = _outcomes(lab["kept"])[f"S01/{ROM_FILE}"]
    assert rom["status"] == "static" and not rom["trial_id"]
    assert "not kept for sensor alignment: not quiet standing" in str(rom["reason"])
    assert "moves (gyroscope RMS over 0.25 rad/s) for more than 20 %" in str(rom["reason"])
    assert not list((lab["kept"] / "trials" / "S01").glob("knee_swings01*"))


def test_skip_static_keeps_the_old_behaviour(lab):
    outcomes = _outcomes(lab["skipped"])
    static = [outcomes[f"{s}/static01.c3d"] for s in ("S01", "S02")]
    assert all(t["status"] == "static" and "--skip-static" in str(t["reason"]) for t in static)
    assert not list((lab["skipped"] / "trials").glob("*/static01*"))
    assert json.loads((lab["skipped"] / "import.json").read_text())["static_kept"] == 0


def test_segment_v1_aligns_every_subject_from_the_kept_standing(lab):
    dataset = Dataset.open(lab["kept"])
    results = fit_session_alignments(
        dataset, dataset.trials, RATE_HZ, model_places(DATA.leg_places), settings=settings_for("segment_v1")
    )
    assert sorted(results) == ["S01", "S02"]
    for places in results.values():
        assert len(places) == len(model_places(DATA.leg_places))
        for result in places.values():
            assert result.converged and result.gravity_from == "standing", result.reason
            assert result.standing_s >= 4.0  # the static trial's standing, at the model rate


def test_kept_static_trials_give_no_training_sequences(lab):
    loaded = load_sequences(lab["kept"], DATA)
    assert loaded.imu_only_trials == 2
    assert {s.subject_id for s in loaded.sequences} == {"S01", "S02"}
    # Windows and every normalisation constant come from these sequences only.
    assert all(s.trial_id.startswith("walk") for s in loaded.sequences)
    assert all(np.isfinite(s.targets).any() for s in loaded.sequences)


def test_without_static_trials_segment_v1_refuses_and_points_to_segment_v1_walking(lab):
    with pytest.raises(DatasetError) as refused:
        load_sequences(lab["skipped"], DATA)
    message = str(refused.value)
    assert "trials/S01" in message and "trials/S02" in message
    assert "quiet standing" in message and "segment_v1_walking" in message
    walking = load_sequences(lab["skipped"], replace(DATA, alignment="segment_v1_walking"))
    assert {s.subject_id for s in walking.sequences} == {"S01", "S02"}


# --- the quiet-standing judge on its own -------------------------------------------------------------

PLACES = ("r_shank", "pelvis")


def _stream(gyr_rads: np.ndarray, acc: np.ndarray | None = None, places: tuple[str, ...] = PLACES) -> Stream:
    n = gyr_rads.shape[0]
    if acc is None:
        acc = np.tile([0.3, 0.2, GRAVITY_MPS2 - 0.01], (n, 1))
    columns = all_imu_columns(places)
    values = np.zeros((n, len(columns)))
    for place in places:
        for j, axis in enumerate("xyz"):
            values[:, columns.index(imu_column(place, "acc", axis))] = acc[:, j]
            values[:, columns.index(imu_column(place, "gyr", axis))] = gyr_rads[:, j]
    return Stream(np.arange(n) / RATE_HZ, columns, values)


def test_quiet_standing_is_recognised_even_after_stepping_onto_the_plates():
    rng = np.random.default_rng(1)
    gyr = rng.normal(0.0, 0.01, (800, 3))
    gyr[:30, 1] += 1.5  # 0.3 s of stepping on
    check = check_quiet_standing(_stream(gyr))
    assert check.quiet, check.reason
    assert all(s >= 6.0 for s in check.standing_s.values())
    assert 0.0 < max(check.moving_share.values()) <= MAX_MOVING_SHARE


def test_range_of_motion_is_not_quiet_standing():
    t = np.arange(1000) / RATE_HZ
    gyr = np.column_stack([0.2 * np.sin(t), 2.0 * np.sin(2 * np.pi * 0.5 * t), np.zeros_like(t)])
    check = check_quiet_standing(_stream(gyr))
    assert not check.quiet and "moves (gyroscope RMS" in check.reason and "r_shank 99 %" in check.reason


def test_too_little_stillness_or_no_gyroscope_is_refused_with_the_reason():
    brief = check_quiet_standing(_stream(np.full((int(0.8 * RATE_HZ), 3), 0.01)))
    assert not brief.quiet and "stands still for less than" in brief.reason and "r_shank 0.0 s" in brief.reason
    lying = np.tile([GRAVITY_MPS2, 0.0, 0.0], (500, 1))  # 1 g along x: fine (the alignment judges the lean)
    assert check_quiet_standing(_stream(np.zeros((500, 3)), acc=lying)).quiet
    falling = np.tile([0.0, 0.0, 2.0], (500, 1))  # not 1 g: not standing
    assert "stands still for" in check_quiet_standing(_stream(np.zeros((500, 3)), acc=falling)).reason
    full = _stream(np.zeros((500, 3)))
    acc_only = tuple(c for c in full.columns if "_acc_" in c)
    assert "no sensor has both" in check_quiet_standing(full.select(acc_only)).reason


def test_a_single_huge_glitch_does_not_hide_the_movement_after_it():
    t = np.arange(1000) / RATE_HZ
    gyr = np.column_stack([np.zeros_like(t), 2.0 * np.sin(2 * np.pi * 0.5 * t), np.zeros_like(t)])
    gyr[5] = 1e150
    assert not check_quiet_standing(_stream(gyr)).quiet


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 400),
    value=st.floats(allow_nan=True, allow_infinity=True, width=64),
    where=st.integers(0, 399),
)
def test_any_values_give_a_verdict_never_an_exception(n, value, where):
    gyr = np.full((n, 3), 0.01)
    acc = np.tile([0.0, 0.0, GRAVITY_MPS2], (n, 1))
    if n:
        gyr[where % n, 0] = value
        acc[(where * 7) % n, 2] = value
    check = check_quiet_standing(_stream(gyr, acc))
    assert check.quiet == (check.reason == "")
    if check.quiet:
        assert all(s >= DEFAULT_SETTINGS.min_standing_s for s in check.standing_s.values())


def test_the_fingerprint_covers_the_standing_the_alignment_learnt_from(lab, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(lab["kept"], copy)
    folder = copy / "trials" / "S01"
    (folder / "static01.imu.csv").rename(folder / "static.imu.csv")  # a trial named "static" ...
    data = replace(DATA, include_static_trials=False)  # ... is not training data, but the alignment uses it
    before = load_sequences(copy, data).fingerprint
    lines = (folder / "static.imu.csv").read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",0.00001"
    (folder / "static.imu.csv").write_text("\n".join(lines) + "\n")
    assert load_sequences(copy, data).fingerprint != before


def test_a_static_trial_is_found_from_the_imu_when_the_walking_direction_is_set(lab, tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    shutil.copy(lab["raw"] / "subjects.csv", src / "subjects.csv")
    shutil.copytree(lab["raw"] / "S02", src / "S02")
    mapping = tmp_path / "mapping.toml"
    text = (lab["raw"] / "mapping.toml").read_text()
    mapping.write_text(text.replace('walking_direction = "auto"', 'walking_direction = "+x"'))
    report = import_lab_data(src, load_mapping(mapping), tmp_path / "out")
    static = next(t for t in report.trials if t.source.endswith("static01.c3d"))
    assert static.status == "static_kept" and static.trial_id == "static01"
    assert any("no force known and the IMU shows quiet standing" in note for note in static.notes)
    assert len(report.imported) == 3 and check_dataset(tmp_path / "out").ok
