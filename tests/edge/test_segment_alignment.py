"""Segment alignment (forcecast.edge.dsp.segment_alignment) against the synthetic lab's known sensor mountings.

Tolerances, measured on the hard preset (arbitrary placements, vendor frames, soft tissue) over 16
subjects with a 5 s static trial and two 30 s walks (``python scripts/alignment_accuracy.py``): worst
leg sensor 5.8°, worst pelvis 5.8°, median 2.0°. The tests allow legs 8°, pelvis 12°, median 4°. With
``segment_v1_walking`` gravity comes from the walking posture and ``z`` leans by the segment's mean lean
while walking (about 10°), but the medio-lateral axis stays within a few degrees (worst 7.8°).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.config import load_config
from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.dsp.segment_alignment import (
    AlignmentError,
    SegmentAligner,
    StreamAligner,
    align_offline,
    angle_deg,
    apply_alignment,
    settings_for,
)
from forcecast.edge.features import leg_inputs
from forcecast.edge.schema import GRAVITY_MPS2, PLACES
from forcecast.lab.dataset import resample_trial
from forcecast.lab.dataset.subjects import read_subjects
from forcecast.lab.dataset.trial import Trial
from forcecast.lab.synth import SynthConfig, generate_dataset, make_subject, static_trial, walking_trial
from forcecast.lab.synth.body import mount_matrix
from forcecast.lab.synth.population import VirtualSubject

RATE = 100.0
HARD = SynthConfig(subjects=4, seed=11, duration_s=25.0, static_s=5.0, preset="hard")
LEGS = tuple(p for p in PLACES if p != "pelvis")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotate(columns: tuple[str, ...], values: np.ndarray, rotations: dict[str, np.ndarray]) -> np.ndarray:
    """Turn each place's sensor by ``rotations[place]`` (``v_new = R v``), as if strapped on differently."""
    out = values.copy()
    for place, r in rotations.items():
        for kind in ("acc", "gyr"):
            cols = [columns.index(f"{place}_{kind}_{a}") for a in "xyz"]
            out[:, cols] = values[:, cols] @ r.T
    return out


def session(subject: VirtualSubject, config: SynthConfig, standing: bool = True) -> list[Trial]:
    trials = [static_trial(subject, config)] if standing else []
    trials += [walking_trial(subject, c, config) for c in ("comfortable", "fast")]
    return [resample_trial(t, RATE) for t in trials]


def stacked(trials: list[Trial]) -> tuple[tuple[str, ...], np.ndarray]:
    """One array for a session, trials separated by a NaN row (as training does)."""
    columns = trials[0].imu.columns
    gap = np.full((1, len(columns)), np.nan)
    return columns, np.vstack([part for t in trials for part in (t.imu.values, gap)])


@pytest.fixture(scope="module")
def hard_sessions() -> list[tuple[VirtualSubject, tuple[str, ...], np.ndarray]]:
    out = []
    for index in range(1, HARD.subjects + 1):
        subject = make_subject(HARD, index)
        columns, values = stacked(session(subject, HARD))
        out.append((subject, columns, values))
    return out


def test_random_mountings_are_found_within_a_few_degrees(hard_sessions):
    errors = {"legs": [], "pelvis": []}
    for subject, columns, values in hard_sessions:
        _, results = align_offline(columns, values, RATE)
        for place, result in results.items():
            truth = mount_matrix(subject.mounts[place])  # v_segment = truth @ v_sensor
            assert result.gravity_from == "standing"
            errors["pelvis" if place == "pelvis" else "legs"].append(angle_deg(result.matrix(), truth))
    # The mountings really were arbitrary: the nominal frame is far off for most sensors.
    nominal = [angle_deg(np.eye(3), mount_matrix(s.mounts[p])) for s, _, _ in hard_sessions for p in PLACES]
    assert np.median(nominal) > 60.0
    assert max(errors["legs"]) < 8.0, errors["legs"]
    assert max(errors["pelvis"]) < 12.0, errors["pelvis"]
    assert np.median(errors["legs"] + errors["pelvis"]) < 4.0


def test_without_standing_segment_v1_waits_and_segment_v1_walking_uses_the_walking_posture(hard_sessions):
    subject = hard_sessions[0][0]
    columns, values = stacked(session(subject, HARD, standing=False))
    with pytest.raises(AlignmentError, match=r"0\.0 s of quiet standing seen, need 1 s") as error:
        align_offline(columns, values, RATE)
    assert all(f"{p}: " in str(error.value) for p in PLACES)
    _, results = align_offline(columns, values, RATE, settings_for("segment_v1_walking"))
    for place, result in results.items():
        truth = mount_matrix(subject.mounts[place])
        estimate = result.matrix()
        assert result.gravity_from == "walking"
        lateral = np.rad2deg(np.arccos(np.clip(estimate[1] @ truth[1], -1.0, 1.0)))
        assert lateral < 10.0, (place, lateral)
        assert angle_deg(estimate, truth) < 20.0, place


def test_offline_and_streaming_give_the_same_rotation(hard_sessions):
    _, columns, values = hard_sessions[1]
    offline = StreamAligner(columns, RATE)
    offline.update(values)
    streaming = StreamAligner(columns, RATE)
    rng = np.random.default_rng(3)
    start = 0
    while start < values.shape[0]:
        size = int(rng.integers(1, 60))
        streaming.update(values[start : start + size])
        start += size
    for place, result in offline.results().items():
        other = streaming.results()[place]
        assert result.converged and other.converged
        assert angle_deg(result.matrix(), other.matrix()) < 1e-6, place


def test_the_aligned_signals_do_not_depend_on_how_the_sensors_were_strapped_on(hard_sessions):
    _, columns, values = hard_sessions[2]
    rng = np.random.default_rng(8)
    turned = rotate(columns, values, {p: random_rotation(rng) for p in PLACES})
    aligned, _ = align_offline(columns, values, RATE)
    aligned_turned, _ = align_offline(columns, turned, RATE)
    finite = np.all(np.isfinite(aligned), axis=1)
    assert np.max(np.abs(aligned[finite] - aligned_turned[finite])) < 1e-6


def stride_templates(inputs: np.ndarray, strikes: np.ndarray, points: int = 100) -> np.ndarray:
    """Mean stride (heel strike to heel strike) of every channel, on ``points`` phase samples."""
    strides = []
    for a, b in itertools.pairwise(strikes):
        phase = np.linspace(a, b, points, endpoint=False)
        strides.append(np.column_stack([np.interp(phase, np.arange(a, b + 1), inputs[a : b + 1, c]) for c in range(6)]))
    return np.mean(strides, axis=0)


def test_left_and_right_legs_agree_after_alignment_and_mirroring():
    # Arbitrary mountings and vendor frames, but rigid sensors: soft-tissue ringing differs from sensor to
    # sensor (random directions) and would swamp the shank's small frontal-plane rotation (0.2 rad/s).
    config = dataclasses.replace(HARD, subjects=8, soft_tissue=0.0)
    subject = next(s for s in (make_subject(config, i) for i in range(1, 9)) if s.affected_side == "none")
    subject = dataclasses.replace(subject, hka_deg=1.0, contralateral_hka_deg=1.0, thrust=False)
    trials = session(subject, config)
    columns, values = stacked(trials)
    _, results = align_offline(columns, values, RATE)
    walk = trials[1]
    aligned = apply_alignment(walk.imu.columns, walk.imu.values, results)
    templates = {}
    for side, mirror in (("r", True), ("l", True), ("l", False)):
        inputs = leg_inputs(walk.imu.columns, aligned, ("ipsi_shank",), side)
        if not mirror:  # undo the mirroring: the left leg as its sensor reads it
            inputs = inputs * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
        force = walk.force.column(f"{side}_grf_v")
        loaded = np.nan_to_num(force) > 20.0
        strikes = np.flatnonzero(loaded[1:] & ~loaded[:-1]) + 1
        templates[(side, mirror)] = stride_templates(inputs, strikes)
    names = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
    for c, name in enumerate(names):
        right, left = templates[("r", True)][:, c], templates[("l", True)][:, c]
        assert np.corrcoef(right, left)[0, 1] > 0.9, name
        if name in ("acc_y", "gyr_x", "gyr_z"):  # the mirrored channels: unmirrored they disagree
            assert np.corrcoef(right, templates[("l", False)][:, c])[0, 1] < 0.0, name


def degenerate(kind: str) -> SegmentAligner:
    subject = make_subject(HARD, 1)
    aligner = SegmentAligner("r_shank", RATE)
    trial = static_trial(subject, HARD) if kind == "standing" else walking_trial(subject, "comfortable", HARD)
    trial = resample_trial(trial, RATE)
    acc = trial.imu.select(tuple(f"r_shank_acc_{a}" for a in "xyz")).values
    gyr = trial.imu.select(tuple(f"r_shank_gyr_{a}" for a in "xyz")).values
    if kind == "short":
        acc, gyr = acc[: int(6 * RATE)], gyr[: int(6 * RATE)]
    elif kind == "nan":
        acc = acc.copy()
        acc[np.arange(acc.shape[0]) % 50 < 48] = np.nan  # only 2 % of the rows survive
    elif kind == "units":
        acc = acc / GRAVITY_MPS2  # in g, not m/s²
    aligner.update(acc, gyr)
    return aligner


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("standing", "s of walking seen, need 10"),
        ("short", "s of walking seen, need 10"),
        ("nan", "s of walking seen, need 10"),
        ("units", "check the accelerometer's units"),
    ],
)
def test_degenerate_input_is_not_converged_and_says_why(kind, message):
    result = degenerate(kind).result()
    assert not result.converged and result.rotation is None
    assert result.reason.startswith("r_shank: ") and message in result.reason
    with pytest.raises(AlignmentError, match="r_shank"):
        result.matrix()


def test_nan_runs_and_sitting_do_not_spoil_a_good_estimate(hard_sessions):
    subject, columns, values = hard_sessions[3]
    _, clean = align_offline(columns, values, RATE)
    damaged = values.copy()
    for start in range(500, damaged.shape[0], 1500):
        damaged[start : start + 80] = np.nan  # 0.8 s gaps
    # Ten seconds of sitting: every segment still, the thighs horizontal (gravity along the thigh's x).
    sitting = np.tile(damaged[:1], (int(10 * RATE), 1))
    for place in ("l_thigh", "r_thigh"):
        truth = mount_matrix(subject.mounts[place])
        for kind, vector in (("acc", np.array([GRAVITY_MPS2, 0.0, 0.0])), ("gyr", np.zeros(3))):
            cols = [columns.index(f"{place}_{kind}_{a}") for a in "xyz"]
            sitting[:, cols] = truth.T @ vector
    stand_up = np.full((1, len(columns)), np.nan)  # getting up is movement: it ends the quiet bout
    _, results = align_offline(columns, np.vstack([sitting, stand_up, damaged]), RATE)
    for place, result in results.items():
        truth = mount_matrix(subject.mounts[place])
        assert angle_deg(result.matrix(), truth) < (12.0 if place == "pelvis" else 8.0), place
        if place.endswith("thigh"):  # sitting was not taken for standing (it leans 90° from walking)
            assert angle_deg(result.matrix(), clean[place].matrix()) < 1.0, place


def test_align_offline_names_every_sensor_that_failed():
    subject = make_subject(HARD, 2)
    trial = resample_trial(static_trial(subject, HARD), RATE)
    with pytest.raises(AlignmentError) as error:
        align_offline(trial.imu.columns, trial.imu.values, RATE)
    for place in PLACES:
        assert f"{place}: " in str(error.value)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.just(float("nan")),
)
def test_any_chunking_of_any_values_never_raises(sizes, value):
    aligner = SegmentAligner("pelvis", RATE)
    for size in sizes:
        aligner.update(np.full((size, 3), value), np.full((size, 3), value))
    result = aligner.result()
    assert not result.converged and result.reason


# --- contract -----------------------------------------------------------------------------------------


def contract_dict() -> dict:
    package = Path(__file__).parents[1] / "data" / "grf_int8.fcpkg"
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import open_package

    _, contract = open_package(package, [load_public_key(Path(__file__).parents[1] / "data" / "forcecast-test.pub")])
    return contract.to_dict()


def test_the_contract_records_the_alignment_and_reads_old_contracts_as_none():
    data = contract_dict()
    old = {k: v for k, v in data.items() if k != "alignment"}
    assert ModelContract.from_dict(old).alignment == "none"
    aligned = ModelContract.from_dict({**data, "alignment": "segment_v1"})
    assert aligned.alignment == "segment_v1"
    again = ModelContract.from_dict(json.loads(json.dumps(aligned.to_dict())))
    assert again == aligned


def test_an_unknown_alignment_is_refused_by_name():
    with pytest.raises(ContractError, match=r"m\.json: alignment: 'segment_v9' is not implemented"):
        ModelContract.from_dict({**contract_dict(), "alignment": "segment_v9"}, "m.json")


# --- the hard synthetic preset --------------------------------------------------------------------------


def test_the_hard_preset_loads_from_toml_and_explicit_fields_win(tmp_path):
    path = tmp_path / "synth.toml"
    path.write_text('[synth]\npreset = "hard"\nsoft_tissue = 0.5\n')
    config = load_config(SynthConfig, path, "synth")
    assert (config.mounting, config.vendor_frames, config.soft_tissue) == ("arbitrary", True, 0.5)
    assert config.unknown_mass_fraction == 0.25
    easy = SynthConfig()
    assert (easy.mounting, easy.vendor_frames, easy.soft_tissue, easy.unknown_mass_fraction) == (
        "nominal",
        False,
        0.0,
        0.0,
    )
    path.write_text('[synth]\npreset = "brutal"\n')
    with pytest.raises(ValueError, match="preset"):
        load_config(SynthConfig, path, "synth")


def test_the_hard_preset_leaves_some_masses_blank(tmp_path):
    config = SynthConfig(subjects=8, seed=2, duration_s=2.0, static_s=0.0, speeds=("comfortable",), preset="hard")
    subjects = generate_dataset(tmp_path, config)
    unknown = [s.subject_id for s in subjects if not s.mass_known]
    assert 0 < len(unknown) < len(subjects)
    rows = (tmp_path / "subjects.csv").read_text().splitlines()
    for row in rows[1:]:
        fields = row.split(",")
        assert (fields[1] == "") == (fields[0] in unknown)
    _, problems = read_subjects(tmp_path / "subjects.csv")
    assert all(p.column == "body_mass_kg" for p in problems)


def test_soft_tissue_shakes_the_thigh_sensor():
    rigid = dataclasses.replace(HARD, soft_tissue=0.0)
    subject = make_subject(HARD, 1)
    shaken = walking_trial(subject, "comfortable", HARD).imu
    still = walking_trial(subject, "comfortable", rigid).imu
    columns = tuple(f"r_thigh_gyr_{a}" for a in "xyz")
    extra = shaken.select(columns).values - still.select(columns).values
    rms = float(np.sqrt(np.mean(np.sum(extra**2, axis=1))))
    assert 0.05 < rms < 2.0  # rad/s: visible, and far below the thigh's own swing (several rad/s)


# --- the device pipeline ------------------------------------------------------------------------------


def run_replay(contract: ModelContract, model: object, rotations: dict[str, np.ndarray] | None) -> dict:
    """A walker's 3 s calibration pose and 30 s walk through the device pipeline, sensors turned by ``rotations``."""
    from pipelines import source_pipeline, walker_patient

    from forcecast.lab.sources.synthetic import SyntheticSource

    places = ("l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis")
    source = SyntheticSource(
        subject=3, seed=5, speed=0, stand_s=3.0, program=(("comfortable", 30.0),), duration_s=33.0, places=places
    )
    out: dict = {"grf": {"l": [], "r": []}, "steps": [], "events": []}

    def listen(kind: str, payload: dict) -> None:
        if kind == "grf":
            out["grf"][payload["leg"]].append((payload["time_s"], payload["grf_bw"]))
        elif kind == "step":
            out["steps"].append(payload)
        elif kind == "event":
            out["events"].append(payload)

    pipeline = source_pipeline(model, contract, source, patient=walker_patient(source, limit=0.0), listeners=[listen])
    for chunk in source.chunks():
        values = rotate(source.columns, chunk.values, rotations) if rotations else chunk.values
        pipeline.push(chunk.time_s, values)
    out["report"] = pipeline.finish().as_dict()
    for leg in ("l", "r"):
        parts = out["grf"][leg]
        out["grf"][leg] = (np.concatenate([p[0] for p in parts]), np.vstack([p[1] for p in parts]))
    return out


@pytest.fixture(scope="module")
def packaged():
    from forcecast.edge.interpreter import TFLiteModel
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import open_package

    data = Path(__file__).parents[1] / "data"
    package, contract = open_package(data / "grf_int8.fcpkg", [load_public_key(data / "forcecast-test.pub")])
    return contract, TFLiteModel(package.model)


def test_the_device_pipeline_aligns_a_replay_whose_sensors_were_turned(packaged):
    contract, model = packaged
    aligned_contract = dataclasses.replace(contract, alignment="segment_v1")
    rng = np.random.default_rng(21)
    turned = {p: random_rotation(rng) for p in ("l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis")}
    as_worn = run_replay(aligned_contract, model, None)
    strapped = run_replay(aligned_contract, model, turned)
    window_s = contract.window / contract.rate_hz
    for run in (as_worn, strapped):
        alignment = run["report"]["calibration"]["alignment"]
        assert alignment["converged"] and run["report"]["calibration"]["calibrated"]
        assert {e["event"] for e in run["events"]} >= {"alignment_converged"}
        since = alignment["since_s"]
        assert 13.0 <= since <= 20.0  # 3 s standing, then at least 10 s of walking
        pending = [s for s in run["steps"] if "alignment_pending" in s["flags"]]
        ready = [s for s in run["steps"] if "alignment_pending" not in s["flags"]]
        assert pending and len(ready) >= 20
        assert all(s["ic_s"] - window_s < since for s in pending)
        assert all(s["ic_s"] - window_s >= since for s in ready)
    assert (
        abs(
            as_worn["report"]["calibration"]["alignment"]["since_s"]
            - strapped["report"]["calibration"]["alignment"]["since_s"]
        )
        < 0.5
    )
    # Once aligned (and a window later), the turned sensors give the model what the sensors as worn give it.
    start = max(r["report"]["calibration"]["alignment"]["since_s"] for r in (as_worn, strapped)) + window_s
    for leg in ("l", "r"):
        t_a, grf_a = as_worn["grf"][leg]
        t_b, grf_b = strapped["grf"][leg]
        common, ia, ib = np.intersect1d(np.round(t_a, 4), np.round(t_b, 4), return_indices=True)
        keep = common > start
        assert keep.sum() > 1000
        assert np.max(np.abs(grf_a[ia[keep], 0] - grf_b[ib[keep], 0])) < 0.05, leg


def test_without_alignment_turned_sensors_are_refused_by_the_calibration_and_spoil_the_force(packaged):
    contract, model = packaged
    rng = np.random.default_rng(21)
    turned = {p: random_rotation(rng) for p in ("l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis")}
    as_worn = run_replay(contract, model, None)
    strapped = run_replay(contract, model, turned)
    assert strapped["report"]["calibration"]["calibrated"] is False
    assert "alignment" not in strapped["report"]["calibration"]
    t_a, grf_a = as_worn["grf"]["r"]
    t_b, grf_b = strapped["grf"]["r"]
    _, ia, ib = np.intersect1d(np.round(t_a, 4), np.round(t_b, 4), return_indices=True)
    assert np.max(np.abs(grf_a[ia, 0] - grf_b[ib, 0])) > 0.3


# --- training -----------------------------------------------------------------------------------------


def test_training_aligns_each_session_and_records_it_in_the_contract(tmp_path):
    from forcecast.lab.dataset import Dataset, DatasetError
    from forcecast.lab.dataset.trial import Stream, write_trial
    from forcecast.training.config import DataConfig, TrainConfig
    from forcecast.training.data import load_sequences
    from forcecast.training.fit import fit_contract

    config = SynthConfig(
        subjects=2,
        seed=4,
        duration_s=14.0,
        static_s=4.0,
        speeds=("comfortable",),
        preset="hard",
        unknown_mass_fraction=0,
    )
    generate_dataset(tmp_path / "a", config)
    data = DataConfig(alignment="segment_v1", leg_places=("ipsi_shank", "ipsi_thigh", "pelvis"))
    recorded = load_sequences(tmp_path / "a", data)
    # The same people with S02's sensors turned: S02's aligned inputs do not change.
    generate_dataset(tmp_path / "b", config)
    dataset = Dataset.open(tmp_path / "b")
    rng = np.random.default_rng(5)
    rotations = {p: random_rotation(rng) for p in PLACES}
    for ref in [r for r in dataset.trials if r.subject_id == "S02"]:
        trial = dataset.load(ref)
        imu = Stream(trial.imu.time_s, trial.imu.columns, rotate(trial.imu.columns, trial.imu.values, rotations))
        write_trial(tmp_path / "b", dataclasses.replace(trial, imu=imu), file_format="csv", paired=True)
    turned = load_sequences(tmp_path / "b", data)
    for a, b in zip(recorded.sequences, turned.sequences, strict=True):
        assert a.key == b.key
        finite = np.all(np.isfinite(a.inputs), axis=1)
        assert np.max(np.abs(a.inputs[finite] - b.inputs[finite])) < 1e-3, a.key  # CSV rounding
    unaligned = load_sequences(tmp_path / "b", dataclasses.replace(data, alignment="none"))
    s02 = [i for i, s in enumerate(unaligned.sequences) if s.subject_id == "S02"]
    assert max(np.nanmax(np.abs(unaligned.sequences[i].inputs - turned.sequences[i].inputs)) for i in s02) > 1.0
    contract = fit_contract(recorded.sequences, TrainConfig(data=data))
    assert contract.alignment == "segment_v1"
    # A session with too little walking cannot be aligned: the error names the subject and the sensor.
    for ref in [r for r in dataset.trials if r.subject_id == "S01" and r.trial_id != "static"]:
        for path in ref.paths:
            path.unlink()
    with pytest.raises(DatasetError, match=r"trials/S01.*r_shank: 0\.0 s of walking seen"):
        load_sequences(tmp_path / "b", data)
