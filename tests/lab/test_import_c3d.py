"""C3D import: synthetic overground lab -> C3D -> `forcecast data import` -> `data check`, against the source.

Tolerances (stated in README.md, "Bringing your lab's data"):
- force over known samples: 99.9 % within 2 N of the source (plate noise 0.3 N rms), all within 25 N
  (a sample at a contact's edge can fall either side of the 20 N threshold that lab software zeroes);
- clean contact onsets within 1 sample (1 ms) of the source's stance onsets;
- IMU samples equal to the source's (float32 storage in C3D), times within ±10 ms after lag correction;
- IMU lag recovered within ±10 ms for injected lags of 0, 35 and 110 ms;
- body mass from quiet standing within 2 %, from walking strides within 5 %.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forcecast.cli import main
from forcecast.lab.dataset import Dataset, check_dataset
from forcecast.lab.dataset.importers import load_mapping
from forcecast.lab.dataset.importers.c3d import read_c3d
from forcecast.lab.dataset.importers.contacts import assign_contacts
from forcecast.lab.dataset.importers.gait import runs, swing_from_markers, walking_direction
from forcecast.lab.dataset.importers.importer import import_lab_data
from forcecast.lab.dataset.subjects import read_subjects
from forcecast.lab.synth import SynthConfig
from forcecast.lab.synth.c3d_export import TRUTH_DIR, OvergroundConfig, write_overground_dataset

pytest.importorskip("ezc3d")

REAL_C3D = Path("/work/shared/data/c3d-overground/exampleOverground.c3d")
LAGS_MS = (0.0, 35.0, 110.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("overground")
    raw, out = root / "raw", root / "dataset"
    config = SynthConfig(subjects=3, seed=11, speeds=("comfortable", "fast"))
    truth = write_overground_dataset(
        raw, config, OvergroundConfig(passes=3, lags_ms=LAGS_MS, mass_known=False, seed=11)
    )
    code = main(["data", "import", str(raw), "--mapping", str(raw / "mapping.toml"), "--out", str(out), "--json"])
    assert code == 0
    report = json.loads((out / "import.json").read_text())
    return {"raw": raw, "out": out, "truth": truth, "report": report}


def _pairs(lab: dict[str, object], with_force: bool = True):
    """(imported, source) trials; ``with_force`` leaves out the static trials kept IMU-only."""
    imported = Dataset.open(lab["out"])  # type: ignore[arg-type]
    source = Dataset.open(Path(lab["raw"]) / TRUTH_DIR)  # type: ignore[arg-type]
    for ref in imported.trials:
        match = next(r for r in source.trials if (r.subject_id, r.trial_id) == (ref.subject_id, ref.trial_id))
        trial = imported.load(ref)
        if trial.force is not None or not with_force:
            yield trial, source.load(match)


def _common_force(a, b):
    ka, kb = np.rint(a.force.time_s * 1000).astype(int), np.rint(b.force.time_s * 1000).astype(int)
    _, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    return a.force.values[ia], b.force.values[ib]


def test_round_trip_passes_data_check(lab, capsys):
    report = check_dataset(lab["out"])
    assert report.ok, [str(p) for p in report.errors]
    assert report.summary()["trials"] == 12  # 3 subjects × (3 passes + the static trial kept IMU-only)
    assert main(["data", "check", str(lab["out"])]) == 0
    assert "IMU lag" in capsys.readouterr().out


def test_static_trials_are_kept_imu_only_for_the_alignment(lab):
    static = [t for t in lab["report"]["trials"] if t["source"].endswith("static01.c3d")]
    assert len(static) == 3 and lab["report"]["static_kept"] == 3 and lab["report"]["imported"] == 9
    assert all(t["status"] == "static_kept" and "kept for sensor alignment" in t["reason"] for t in static)
    for t in static:
        folder = Path(lab["out"]) / "trials" / t["subject_id"]
        assert (folder / "static01.imu.csv").is_file() and not (folder / "static01.force.csv").exists()


def test_known_forces_match_the_source(lab):
    errors = []
    for imported, source in _pairs(lab):
        mine, truth = _common_force(imported, source)
        known = np.isfinite(mine)
        errors.append(np.abs(mine - truth)[known])
    error = np.concatenate(errors)
    assert error.size > 10_000
    assert np.percentile(error, 99.9) < 2.0
    assert error.max() < 25.0


def test_clean_contacts_start_with_the_source_stance(lab):
    checked = 0
    for imported, source in _pairs(lab):
        for side in (0, 3):
            mine, truth = _common_force(imported, source)
            v, true_v = mine[:, side], truth[:, side]
            loaded = np.isfinite(v) & (v > 0)
            starts, _ = runs(loaded)
            true_starts, _ = runs(true_v > 0)
            for start in starts:
                if start == 0 or np.isnan(v[start - 1]):
                    continue  # not a contact onset seen from a known zero
                assert np.min(np.abs(true_starts - start)) <= 1
                checked += 1
    assert checked >= 10


def test_swing_is_zero_and_unclean_stance_unknown(lab):
    zero_in_stance = swing_found = swing_total = unknown_stance = 0
    for imported, source in _pairs(lab):
        mine, truth = _common_force(imported, source)
        for side in (0, 3):
            v, true_v = mine[:, side], truth[:, side]
            zero_in_stance += int(np.sum((v == 0) & (true_v > 50)))
            swing_total += int(np.sum(true_v == 0))
            swing_found += int(np.sum((v == 0) & (true_v == 0)))
            unknown_stance += int(np.sum(np.isnan(v) & (true_v > 50)))
    assert zero_in_stance == 0  # 0 N is never claimed where the foot carries load
    assert swing_found > 0.5 * swing_total  # most of swing is known to be 0 N
    assert unknown_stance > 0  # stance off the plates (or on a dirty plate) stays NaN


def test_dirty_contacts_are_refused(lab):
    reasons: dict[str, int] = {}
    clean = 0
    for trial in lab["report"]["trials"]:
        clean += sum(trial["clean_contacts"].values())
        for reason, n in trial["unclean_contacts"].items():
            key = "partly off" if "partly off" in reason else reason
            reasons[key] = reasons.get(key, 0) + n
    assert clean >= 10
    assert reasons.get("both feet on the plate", 0) > 0
    assert reasons.get("partly off", 0) > 0


def test_imu_samples_match_the_source(lab):
    for imported, source in _pairs(lab, with_force=False):
        a, b = imported.imu, source.imu
        assert a.columns == b.columns
        # The imported samples are the source's samples (float32 in the C3D file), in order, with none
        # lost but the tail that the lag pushed past the end of the recording.
        start = int(np.argmin(np.abs(b.time_s - a.time_s[0])))
        best = None
        for shift in range(-3, 4):
            first = start + shift
            if first < 0:
                continue
            n = min(a.time_s.size, b.time_s.size - first)
            same = np.all(
                np.abs(a.values[:n] - b.values[first : first + n]) <= 1e-4 * (1 + np.abs(b.values[first : first + n])),
                axis=1,
            )
            if best is None or same.mean() > best[0]:
                best = (same.mean(), first, n)
        assert best is not None
        fraction, first, n = best
        assert fraction == 1.0
        assert first == 0 and n == a.time_s.size
        assert a.time_s.size >= b.time_s.size - 0.12 * b.rate_hz - 2
        time_error = a.time_s[:n] - b.time_s[first : first + n]
        assert np.max(np.abs(time_error)) < 0.010


@pytest.mark.parametrize("index", range(len(LAGS_MS)))
def test_imu_lag_is_recovered_within_10_ms(lab, index):
    subject = f"S{index + 1:02d}"
    applied = [t["lag_applied_ms"] for t in lab["report"]["trials"] if t["subject_id"] == subject and t["trial_id"]]
    assert applied
    assert all(abs(lag - LAGS_MS[index]) <= 10.0 for lag in applied), applied


def one_subject(lab, folder: Path, subject: str) -> Path:
    """A raw lab folder ``folder/raw`` holding ``subject``'s files and the lab's ``subjects.csv``."""
    src = folder / "raw"
    src.mkdir()
    shutil.copy(Path(lab["raw"]) / "subjects.csv", src / "subjects.csv")
    shutil.copytree(Path(lab["raw"]) / subject, src / subject)
    return src


def test_unknown_mass_is_estimated_from_standing_and_flagged(lab):
    subjects, problems = read_subjects(Path(lab["out"]) / "subjects.csv")
    assert not problems
    for subject in subjects:
        true_mass = lab["truth"]["subjects"][subject.subject_id]["body_mass_kg"]
        assert subject.extra["body_mass_source"] == "estimated_standing"
        assert abs(subject.body_mass_kg - true_mass) / true_mass < 0.02


def test_mass_from_strides_when_no_standing_trial(lab, tmp_path):
    src = one_subject(lab, tmp_path, "S02")
    (src / "S02" / "static01.c3d").unlink()
    report = import_lab_data(src, load_mapping(Path(lab["raw"]) / "mapping.toml"), tmp_path / "out")
    (info,) = report.subjects
    true_mass = lab["truth"]["subjects"]["S02"]["body_mass_kg"]
    assert info["body_mass_source"] == "estimated_strides"
    assert abs(info["body_mass_kg"] - true_mass) / true_mass < 0.05


def test_mapping_pattern_that_matches_nothing_skips_the_trial_naming_it(lab, tmp_path, capsys):
    text = (Path(lab["raw"]) / "mapping.toml").read_text().replace("*Sensor 1IM ACC Pitch", "*Sensor 9IM ACC Pitch")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(text)
    code = main(["data", "import", str(lab["raw"]), "--mapping", str(mapping), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "*Sensor 9IM ACC Pitch" in err and "matches no label" in err and "[[channel]] #1" in err


def test_bad_imu_lag_value_is_refused(lab, tmp_path, capsys):
    args = ["data", "import", str(lab["raw"]), "--mapping", str(Path(lab["raw"]) / "mapping.toml")]
    assert main([*args, "--out", str(tmp_path / "o"), "--imu-lag", "soon"]) == 2
    assert "--imu-lag" in capsys.readouterr().err


def test_fixed_imu_lag_is_applied(lab, tmp_path):
    src = one_subject(lab, tmp_path, "S03")
    report = import_lab_data(src, load_mapping(Path(lab["raw"]) / "mapping.toml"), tmp_path / "out", imu_lag_ms=110.0)
    assert {t.lag_applied_ms for t in report.imported} == {110.0}


def test_ezc3d_is_imported_only_when_a_c3d_file_is_read():
    code = "import sys, forcecast.lab.dataset.importers, forcecast.lab.cli; assert 'ezc3d' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def real_mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text('[markers]\nl_heel = "LHEE"\nl_toe = "LTOE"\nr_heel = "RHEE"\nr_toe = "RTOE"\n')
    return path


def test_real_overground_file_imports_plates_markers_and_contacts(real_mapping):
    if not REAL_C3D.is_file():
        pytest.skip(f"{REAL_C3D} is not on this machine (a real Vicon C3D file kept outside the repository)")
    recording = read_c3d(REAL_C3D, load_mapping(real_mapping))
    assert len(recording.plates) == 2
    assert recording.force_time_s.size == 11016  # 2400 Hz analog
    assert np.isclose(1 / np.median(np.diff(recording.force_time_s)), 2400.0)
    assert recording.marker_time_s.size == 459  # 100 Hz points
    assert set(recording.markers) == {"l_heel", "l_toe", "r_heel", "r_toe"}
    assert np.isnan(recording.markers["l_heel"][:, 0]).sum() == 2  # two frames lost by the cameras
    assert np.nanmax(recording.plates[0].force_n[:, 2]) == pytest.approx(506.3, abs=0.5)  # N, upward on the subject
    direction, how = walking_direction(recording, "auto", "z")
    assert direction is not None and direction[0] > 0.99 and "markers" in how
    swing = {s: swing_from_markers(recording, s, direction) for s in ("l", "r")}
    contacts = assign_contacts(recording, swing, 20.0, 0.0)
    by_plate = {c.plate: c for c in contacts}
    assert set(by_plate) == {1, 2}
    # The right foot lands alone and wholly on plate 2 (Vicon's event: right foot strike at 1.19 s).
    assert by_plate[2].side == "r"
    assert recording.force_time_s[by_plate[2].start] == pytest.approx(1.195, abs=0.005)
    # On plate 1 the left foot is joined by the right heel before it leaves: not clean.
    assert by_plate[1].side is None and by_plate[1].reason == "both feet on the plate"


def test_real_file_without_imu_is_skipped_with_a_reason(real_mapping, tmp_path, capsys):
    if not REAL_C3D.is_file():
        pytest.skip(f"{REAL_C3D} is not on this machine")
    src = tmp_path / "src"
    (src / "P1").mkdir(parents=True)
    (src / "P1" / "walk.c3d").symlink_to(REAL_C3D)
    (src / "subjects.csv").write_text("subject_id,body_mass_kg,height_m,hka_deg,affected_side\nP1,,1.70,,none\n")
    code = main(["data", "import", str(src), "--mapping", str(real_mapping), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no IMU channels mapped" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_c3d_is_skipped_with_a_reason_and_the_rest_imported(lab, tmp_path, damage):
    src = one_subject(lab, tmp_path, "S01")
    good = (src / "S01" / "walk01.c3d").read_bytes()
    broken = b"\x00not a c3d file" * 100 if damage == "garbage" else good[: len(good) // 3]
    (src / "S01" / "broken.c3d").write_bytes(broken)
    report = import_lab_data(src, load_mapping(Path(lab["raw"]) / "mapping.toml"), tmp_path / "out")
    outcome = next(t for t in report.trials if t.source.endswith("broken.c3d"))
    assert outcome.status == "skipped" and "broken.c3d" in outcome.reason
    assert ("cannot be read" if damage == "garbage" else "truncated: the header announces") in outcome.reason
    assert len(report.imported) == 3


def test_synth_hard_preset_writes_raw_c3d_mapping_and_subjects(tmp_path, capsys):
    out = tmp_path / "raw"
    assert (
        main(["data", "synth", "--preset", "hard", "--subjects", "4", "--seed", "3", "--out", str(out), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["preset"] == "hard" and result["subjects"] == 4 and result["trials"] == 4 * 5
    assert len(list(out.glob("S0*/walk*.c3d"))) == 16 and len(list(out.glob("S0*/static01.c3d"))) == 4
    mapping = load_mapping(out / "mapping.toml")
    assert len(mapping.channels) == 7 * 6 and mapping.markers.patterns()["r_toe"] == "RTOE"
    rows = (out / "subjects.csv").read_text().splitlines()
    assert rows[0].startswith("subject_id,body_mass_kg,")
    truth = json.loads((out / TRUTH_DIR / "truth.json").read_text())
    assert all(s["lag_ms"] == 0.0 or 20.0 <= s["lag_ms"] <= 110.0 for s in truth["subjects"].values())
    recording = read_c3d(out / "S01" / "walk01.c3d", mapping)
    assert recording.imu is not None and len(recording.plates) == 5
    assert any("sample-and-hold" in note for note in recording.notes)


def test_out_folder_is_reimported_cleanly_or_refused_when_foreign(lab, tmp_path, capsys):
    src = one_subject(lab, tmp_path, "S01")
    mapping = load_mapping(Path(lab["raw"]) / "mapping.toml")
    out = tmp_path / "out"
    import_lab_data(src, mapping, out)
    stale = out / "trials" / "S01" / "old.imu.csv"
    stale.write_text("time_s\n")
    import_lab_data(src, mapping, out)  # a previous import is replaced, stale trials included
    assert not stale.exists() and check_dataset(out).ok
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code = main(
        ["data", "import", str(src), "--mapping", str(Path(lab["raw"]) / "mapping.toml"), "--out", str(foreign)]
    )
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
