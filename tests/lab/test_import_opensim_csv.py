"""OpenSim .mot/.sto and generic CSV import with the mapping file; the mapping file's own checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forcecast.edge.config import ConfigError
from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset import Dataset, check_dataset
from forcecast.lab.dataset.importers import MappingError, load_mapping
from forcecast.lab.dataset.importers.csv_table import read_csv_table, table_recording
from forcecast.lab.dataset.importers.importer import import_lab_data
from forcecast.lab.dataset.importers.opensim import LabTable, TableFormatError, parse_storage
from forcecast.lab.synth import SynthConfig, subjects_for, walking_trial

PLACES = ("l_foot", "r_foot", "l_shank", "r_shank")
SUBJECTS = "subject_id,body_mass_kg,height_m,hka_deg,affected_side\nS01,{mass},{height},,none\n"


@pytest.fixture(scope="module")
def source():
    config = SynthConfig(subjects=1, seed=4, places=PLACES)
    subject = subjects_for(config)[0]
    trial = walking_trial(subject, "comfortable", replace(config, duration_s=8.0))
    return subject, trial


def _held(trial, time_s):
    """IMU samples held at the force rate (sample-and-hold, as lab systems record a slower sensor)."""
    index = np.clip(np.searchsorted(trial.imu.time_s, time_s, side="right") - 1, 0, trial.imu.time_s.size - 1)
    return trial.imu.values[index]


def _lab_forces(trial):
    """Per-foot force in an OpenSim lab frame (x forward, y up, z to the walker's right)."""
    out = {}
    for side, medial_left in (("r", 1.0), ("l", -1.0)):
        v, ap, ml = (trial.force.column(f"{side}_grf_{a}") for a in ("v", "ap", "ml"))
        left = medial_left * ml
        out[side] = np.column_stack([ap, v, -left])
    return out


def _write_mot(path: Path, trial) -> None:
    forces = _lab_forces(trial)
    time = trial.force.time_s
    labels = ["time"]
    columns = [time]
    for side, prefix in (("r", ""), ("l", "1_")):
        labels += [f"{prefix}ground_force_v{a}" for a in "xyz"]
        columns += list(forces[side].T)
    held = _held(trial, time)
    for j, name in enumerate(trial.imu.columns):
        place, kind, axis = name.rsplit("_", 2)
        labels.append(f"{place.upper()}_{kind}_{axis}")
        columns.append(held[:, j])
    table = np.column_stack(columns)
    header = f"walk.mot\nversion=1\nnRows={table.shape[0]}\nnColumns={table.shape[1]}\ninDegrees=no\nendheader\n"
    body = "\n".join("\t".join(f"{x:.6f}" for x in row) for row in table)
    path.write_text(header + "\t".join(labels) + "\n" + body + "\n")


def _mapping_text(unit_acc: str, unit_gyr: str, forces: str, lab: str) -> str:
    lines = [lab, ""]
    for name in all_imu(PLACES):
        place, kind, axis = name.rsplit("_", 2)
        lines += [
            "[[channel]]",
            f'pattern = "{place}_{kind}_{axis}"',
            f'channel = "{name}"',
            f'unit = "{unit_acc if kind == "acc" else unit_gyr}"',
            "",
        ]
    return "\n".join(lines) + forces


def all_imu(places):
    from forcecast.edge.schema import all_imu_columns

    return all_imu_columns(places)


MOT_FORCES = "\n".join(
    f'[[force]]\npattern = "{prefix}ground_force_v{a}"\ntarget = "{side}_force_{a}"\nunit = "N"\n'
    for side, prefix in (("r", ""), ("l", "1_"))
    for a in "xyz"
)
TREADMILL = '[lab]\nup_axis = "y"\nwalking_direction = "+x"\nforce_coverage = "everywhere"'


def _treadmill_mot(tmp_path: Path, trial, mass: str, height_m: float, lab: str) -> tuple[Path, Path]:
    """S01's ``trial`` as ``src/S01/walk.mot`` with ``subjects.csv``; a mapping of the .mot forces with ``lab``."""
    src = tmp_path / "src"
    (src / "S01").mkdir(parents=True)
    _write_mot(src / "S01" / "walk.mot", trial)
    (src / "subjects.csv").write_text(SUBJECTS.format(mass=mass, height=height_m))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(_mapping_text("m/s^2", "rad/s", MOT_FORCES, lab))
    return src, mapping


def test_mot_import_round_trips_forces_and_imu(source, tmp_path):
    subject, trial = source
    src, mapping = _treadmill_mot(tmp_path, trial, f"{subject.body_mass_kg:.1f}", subject.height_m, TREADMILL)
    report = import_lab_data(src, load_mapping(mapping), tmp_path / "out")
    (outcome,) = report.imported
    assert abs(outcome.lag_applied_ms) <= 10.0  # same clock: no lag to find beyond the estimator's bias
    assert check_dataset(tmp_path / "out").ok
    dataset = Dataset.open(tmp_path / "out")
    imported = dataset.load(dataset.trials[0])
    # Treadmill: every sample known, swing exactly 0 N, axes per leg (v up, ap forward, ml medial).
    assert np.isfinite(imported.force.values).all()
    np.testing.assert_allclose(imported.force.values, trial.force.values, atol=0.006)  # written to 0.01 N
    # The sample-and-hold IMU columns come back at the sensor's own rate with its samples.
    assert imported.imu.rate_hz == pytest.approx(subject.imu_rate_hz, rel=1e-3)
    n = min(imported.imu.time_s.size, trial.imu.time_s.size)
    np.testing.assert_allclose(imported.imu.values[:n], trial.imu.values[:n], atol=6e-5)  # written to 1e-4
    assert np.max(np.abs(imported.imu.time_s[:n] - trial.imu.time_s[:n])) < 0.011
    assert dataset.subjects["S01"].extra["body_mass_source"] == "measured"


def test_csv_import_with_units_and_unknown_mass(source, tmp_path):
    subject, trial = source
    src = tmp_path / "src"
    (src / "S01").mkdir(parents=True)
    forces = _lab_forces(trial)
    held = _held(trial, trial.force.time_s)
    columns = {"Time (ms)": trial.force.time_s * 1000.0}
    for side in ("r", "l"):
        for j, a in enumerate("xyz"):
            columns[f"{side.upper()} plate F{a} [kN]"] = forces[side][:, j] / 1000.0
    for j, name in enumerate(trial.imu.columns):
        kind = name.rsplit("_", 2)[1]
        columns[name.replace("_", " ")] = held[:, j] * (1000.0 / GRAVITY_MPS2 if kind == "acc" else 180.0 / np.pi)
    import pandas as pd

    pd.DataFrame(columns).to_csv(src / "S01" / "walk 1.csv", index=False, float_format="%.7g")
    (src / "subjects.csv").write_text(SUBJECTS.format(mass="", height=subject.height_m))
    lines = ['[lab]\nup_axis = "y"\nwalking_direction = "+x"\nforce_coverage = "everywhere"', 'time_column = "time*"']
    lines.append('time_unit = "ms"\n')
    for name in trial.imu.columns:
        kind = name.rsplit("_", 2)[1]
        unit = "mg" if kind == "acc" else "deg/s"
        lines.append(f'[[channel]]\npattern = "{name.replace("_", " ")}"\nchannel = "{name}"\nunit = "{unit}"\n')
    for side in ("r", "l"):
        for a in "xyz":
            lines.append(f'[[force]]\npattern = "{side} plate f{a} *"\ntarget = "{side}_force_{a}"\nunit = "kN"\n')
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("\n".join(lines))
    report = import_lab_data(src, load_mapping(mapping), tmp_path / "out")
    (outcome,) = report.imported
    assert outcome.trial_id == "walk_1"
    dataset = Dataset.open(tmp_path / "out")
    imported = dataset.load(dataset.trials[0])
    np.testing.assert_allclose(imported.force.values, trial.force.values, atol=0.01)
    # Mass unknown: estimated from impulse per stride (treadmill: every stance of both feet).
    estimated = dataset.subjects["S01"]
    assert estimated.extra["body_mass_source"] == "estimated_strides"
    assert abs(estimated.body_mass_kg - subject.body_mass_kg) / subject.body_mass_kg < 0.05


def test_treadmill_without_a_walking_direction_is_skipped_naming_the_key(source, tmp_path):
    subject, trial = source
    src, mapping = _treadmill_mot(tmp_path, trial, "70", subject.height_m, TREADMILL.replace('"+x"', '"auto"'))
    with pytest.raises(Exception, match="walking_direction"):
        import_lab_data(src, load_mapping(mapping), tmp_path / "out")


# --- the mapping file ---------------------------------------------------------------------------


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


def _channels(place: str, kind: str, unit: str, axes: str = "xyz") -> str:
    return "".join(
        f'[[channel]]\npattern = "S1 {kind} {a}"\nchannel = "{place}_{kind}_{a}"\nunit = "{unit}"\n' for a in axes
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (_channels("r_foot", "acc", "furlongs"), ["[[channel]] #1", "furlongs", "r_foot_acc_x", "m/s^2"]),
        (_channels("r_foot", "gyr", "g"), ["[[channel]] #1", "'g'", "gyr unit"]),
        (_channels("r_foot", "acc", "g", "xy"), ["r_foot_acc", "axis/axes z", "complete"]),
        (_channels("r_foot", "acc", "g") + _channels("r_foot", "acc", "g"), ["#4", "mapped twice", "#1"]),
        ('[[channel]]\npattern = "a"\nchannel = "r_hand_acc_x"\nunit = "g"\n', ["r_hand_acc_x", "<place>"]),
        ('[[channel]]\npattern = "re:(unclosed"\nchannel = "r_foot_acc_x"\nunit = "g"\n', ["regular expression"]),
        ('[lab]\nup_axis = "w"\n', ["up_axis", "'w'"]),
        ('[lab]\nwalking_direction = "north"\n', ["walking_direction", "north"]),
        ('[lab]\nupaxis = "z"\n', ["unknown key", "upaxis"]),
        ('[lab]\nup_axis = "y"\nwalking_direction = "-y"\n', ["walking_direction", "along up_axis"]),
        ('[markers]\nl_heal = "LHEE"\n', ["l_heal"]),
        ('[[force]]\npattern = "Fx"\ntarget = "r_force_x"\n', ["r_force needs x, y and z"]),
        ('[[force]]\npattern = "Fx"\ntarget = "r_grf_v"\n', ["r_grf_v", "<l|r>_<force|cop>"]),
        ("not = toml = at all", ["not valid TOML"]),
    ],
)
def test_bad_mapping_files_are_refused_naming_file_key_and_value(tmp_path, text, words):
    path = _mapping(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_mapping(path)
    message = str(error.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_patterns_match_one_label_case_insensitively_or_name_the_clash(tmp_path):
    labels = [
        "Time",
        "DelsysTrignoBase 1: Sensor 4IM ACC Pitch",
        "DelsysTrignoBase 1: Sensor 4IM ACC Roll",
        "DelsysTrignoBase 1: Sensor 4IM ACC Yaw",
        "Sensor 4EMG4",
    ]
    table = LabTable("lab.csv", labels, np.column_stack([np.arange(5.0) / 100, np.ones((5, 4))]), {})
    text = '[lab]\ntime_column = "TIME"\n' + "".join(
        f'[[channel]]\npattern = "re:.*sensor 4im acc {w}"\nchannel = "r_foot_acc_{a}"\nunit = "g"\n'
        for a, w in zip("xyz", ("pitch", "roll", "yaw"), strict=True)
    )
    recording = table_recording(table, load_mapping(_mapping(tmp_path, text)))
    assert recording.imu is not None and recording.imu.columns == ("r_foot_acc_x", "r_foot_acc_y", "r_foot_acc_z")
    np.testing.assert_allclose(recording.imu.values, GRAVITY_MPS2)
    clash = text.replace("re:.*sensor 4im acc pitch", "*Sensor 4*")
    with pytest.raises(MappingError, match=r"matches 4 labels of lab\.csv .*Sensor 4IM ACC Pitch"):
        table_recording(table, load_mapping(_mapping(tmp_path, clash)))


def test_csv_cell_that_is_not_a_number_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("time,a\n0.0,1\n0.01,x1\n0.02,3\n")
    with pytest.raises(TableFormatError, match=r"row 2, column 'a': not a number: 'x1'"):
        read_csv_table(path)


# --- the .mot/.sto parser ---------------------------------------------------------------------------

GOOD = "name\nversion=1\nnRows=3\nnColumns=3\ninDegrees=no\nendheader\ntime\tground_force_vx\tground_force_vy\n"
ROWS = ["0.00\t1.0\t2.0", "0.01\t1.5\t2.5", "0.02\t2.0\t3.0"]


def test_storage_file_parses_header_and_table():
    table = parse_storage(GOOD + "\n".join(ROWS) + "\n", "walk.mot")
    assert table.labels == ["time", "ground_force_vx", "ground_force_vy"]
    assert table.header["nRows"] == "3" and table.header["inDegrees"] == "no"
    np.testing.assert_allclose(table.values[:, 1], [1.0, 1.5, 2.0])


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (GOOD.replace("endheader\n", "") + "\n".join(ROWS), "no 'endheader'"),
        (GOOD + "\n".join(ROWS[:2]), "nRows=3, the table has 2"),
        (GOOD.replace("nColumns=3", "nColumns=4") + "\n".join(ROWS), "nColumns=4"),
        (GOOD + "0.00\t1.0\n" + "\n".join(ROWS[1:]), r"line 8: 2 value\(s\), expected 3"),
        (GOOD + "\n".join([ROWS[0], ROWS[2], ROWS[1]]), r"line 10: time 0.01 does not increase"),
        (GOOD + "\n".join([ROWS[0], "0.01\tabc\t2", ROWS[2]]), r"line 9, column 'ground_force_vx': not a number"),
        (GOOD.replace("time\t", "t\t") + "\n".join(ROWS), "expected 'time'"),
    ],
)
def test_broken_storage_files_name_the_line(text, pattern):
    with pytest.raises(TableFormatError, match=pattern):
        parse_storage(text, "walk.mot")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_storage_parser_never_crashes_on_garbage(text):
    try:
        table = parse_storage(text, "fuzz.mot")
    except TableFormatError as exc:
        assert "fuzz.mot" in str(exc)
    else:
        assert table.values.shape == (table.values.shape[0], len(table.labels))
        assert np.all(np.diff(table.values[:, 0]) > 0)


@settings(max_examples=100, deadline=None)
@given(
    row=st.integers(0, 2),
    column=st.integers(0, 2),
    junk=st.sampled_from(["nan?", "1,5", "--", "1e", "0x1G", "inf?", "", "1.2.3"]),
)
def test_one_bad_cell_is_named_by_line(row, column, junk):
    rows = [r.split("\t") for r in ROWS]
    rows[row][column] = junk
    text = GOOD + "\n".join("\t".join(r) for r in rows) + "\n"
    with pytest.raises(TableFormatError, match=r"line \d+"):
        parse_storage(text, "walk.sto")


def _key(pair: tuple[str, str]) -> str:
    return pair[0]


_VALUES = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-1e3, 1e3, allow_nan=False).map(repr),
    st.sampled_from(['"z"', '"y"', '"+x"', '"g"', '"deg/s"', '"r_foot_acc_x"', '"*"', '"re:("', "true", "[]", '["*"]']),
    st.text(alphabet="abcxyz_*:/ ", max_size=8).map(lambda t: '"' + t + '"'),
)
_KEYS = st.sampled_from(
    [
        "up_axis",
        "walking_direction",
        "force_coverage",
        "force_threshold_n",
        "pattern",
        "channel",
        "unit",
        "scale",
        "target",
        "l_heel",
        "r_toe",
        "include",
        "exclude",
        "time_unit",
        "bogus",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tables=st.lists(
        st.tuples(
            st.sampled_from(["[lab]", "[markers]", "[trials]", "[[channel]]", "[[force]]"]),
            st.lists(st.tuples(_KEYS, _VALUES), max_size=4, unique_by=_key),
        ),
        max_size=4,
    )
)
def test_any_mapping_file_loads_or_is_refused_with_a_config_error(tmp_path, tables):
    text = "\n".join(header + "\n" + "\n".join(f"{k} = {v}" for k, v in pairs) for header, pairs in tables)
    path = tmp_path / "fuzz.toml"
    path.write_text(text)
    try:
        mapping = load_mapping(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert mapping.source == str(path)
