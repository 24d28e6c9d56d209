"""The synthetic gait lab is deterministic and physically plausible."""

import filecmp
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.synth import SynthConfig, generate_dataset, make_subject, static_trial, walking_trial
from forcecast.lab.synth.population import VirtualSubject

CONFIG = SynthConfig(subjects=4, seed=3, duration_s=20.0)


def stances(force_v: np.ndarray) -> list[tuple[int, int]]:
    loaded = np.concatenate([[0], (force_v > 0).astype(np.int8), [0]])
    edges = np.diff(loaded)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # Drop stances cut by the start or end of the trial.
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if a > 0 and b < force_v.size]


def gait_figures(subject: VirtualSubject, condition: str) -> dict[str, float]:
    trial = walking_trial(subject, condition, CONFIG)
    f, fs = trial.force, CONFIG.force_rate_hz
    assert f is not None
    bw = subject.body_mass_kg * GRAVITY_MPS2
    out: dict[str, list[float]] = {"p1": [], "p2": [], "stance_frac": [], "medial_peak": [], "ap_balance": []}
    strikes = []
    for side in ("l", "r"):
        v = f.column(f"{side}_grf_v") / bw
        ap = f.column(f"{side}_grf_ap") / bw
        ml = f.column(f"{side}_grf_ml") / bw
        st = stances(v)
        strikes.append(np.array([a for a, _ in st]))
        for (a, b), (a_next, _) in itertools.pairwise(st):
            mid = (a + b) // 2
            out["p1"].append(v[a:mid].max())
            out["p2"].append(v[mid:b].max())
            out["stance_frac"].append((b - a) / (a_next - a))
            out["medial_peak"].append(ml[a:b].max())
            braking = -ap[a:b][ap[a:b] < 0].sum()
            out["ap_balance"].append(ap[a:b].sum() / braking)
    both = (f.column("l_grf_v") > 0) & (f.column("r_grf_v") > 0)
    swing_l = f.column("l_grf_v") == 0
    figures = {k: float(np.median(v)) for k, v in out.items()}
    n_steps = sum(s.size for s in strikes) - 2
    span = (max(s[-1] for s in strikes) - min(s[0] for s in strikes)) / fs
    figures["cadence_spm"] = 60.0 * n_steps / span
    figures["double_support"] = float(both.mean())
    figures["swing_is_zero"] = float(np.all(f.values[swing_l][:, :3] == 0.0))
    return figures


@pytest.fixture(scope="module")
def control() -> VirtualSubject:
    subject = make_subject(CONFIG, 1)
    return replace(
        subject,
        affected_side="none",
        severity=0.0,
        hka_deg=1.0,
        contralateral_hka_deg=1.0,
        comfortable_speed_mps=1.3,
        thrust=False,
        peak_offset_bw=0.0,
    )


@pytest.fixture(scope="module")
def speeds(control) -> dict[str, dict[str, float]]:
    return {c: gait_figures(control, c) for c in ("slow", "comfortable", "fast")}


def test_vertical_peaks_are_about_one_body_weight_and_rise_with_speed(speeds):
    p1 = [speeds[c]["p1"] for c in ("slow", "comfortable", "fast")]
    assert all(0.95 <= p <= 1.35 for p in p1), p1
    assert p1[0] < p1[1] < p1[2]
    assert p1[2] >= 1.15
    assert all(0.95 <= speeds[c]["p2"] <= 1.3 for c in speeds)


def test_stance_is_about_sixty_percent_and_longer_when_slow(speeds):
    assert 0.58 <= speeds["comfortable"]["stance_frac"] <= 0.66
    assert speeds["slow"]["stance_frac"] > speeds["comfortable"]["stance_frac"] > speeds["fast"]["stance_frac"]


def test_cadence_and_double_support(speeds):
    assert 100 <= speeds["comfortable"]["cadence_spm"] <= 125
    assert speeds["slow"]["cadence_spm"] < speeds["fast"]["cadence_spm"]
    # Double support happens twice a stride: about 2 × (stance fraction − 0.5) of the time.
    expected = 2 * (speeds["comfortable"]["stance_frac"] - 0.5)
    assert speeds["comfortable"]["double_support"] == pytest.approx(expected, abs=0.04)


def test_swing_is_exactly_zero_and_ap_impulse_balances(speeds):
    for figures in speeds.values():
        assert figures["swing_is_zero"] == 1.0
        assert abs(figures["ap_balance"]) < 0.15


def test_varus_knee_has_more_medial_loading_than_valgus_at_equal_speed(control):
    varus = replace(control, hka_deg=10.0, contralateral_hka_deg=6.0)
    valgus = replace(control, hka_deg=-6.0, contralateral_hka_deg=-3.6)
    medial_varus = gait_figures(varus, "comfortable")["medial_peak"]
    medial_valgus = gait_figures(valgus, "comfortable")["medial_peak"]
    assert medial_varus > 1.5 * medial_valgus
    assert 0.02 < medial_valgus < medial_varus < 0.15


def test_oa_side_carries_less_than_the_sound_side(control):
    oa = replace(control, affected_side="left", severity=1.0, hka_deg=8.0)
    trial = walking_trial(oa, "comfortable", CONFIG)
    bw = oa.body_mass_kg * GRAVITY_MPS2
    peaks = {}
    for side in ("l", "r"):
        v = trial.force.column(f"{side}_grf_v") / bw
        peaks[side] = np.median([v[a : (a + b) // 2].max() for a, b in stances(v)])
    assert peaks["l"] < peaks["r"] - 0.03


def test_static_trial_sensors_feel_one_g_and_no_rotation():
    subject = make_subject(CONFIG, 2)
    trial = static_trial(subject, CONFIG)
    for place in CONFIG.places:
        acc = np.column_stack([trial.imu.column(f"{place}_acc_{a}") for a in "xyz"])
        gyr = np.column_stack([trial.imu.column(f"{place}_gyr_{a}") for a in "xyz"])
        assert np.median(np.linalg.norm(acc, axis=1)) == pytest.approx(GRAVITY_MPS2, abs=0.4)
        assert np.abs(np.median(gyr, axis=0)).max() < 0.05
    total = trial.force.column("l_grf_v") + trial.force.column("r_grf_v")
    assert np.median(total) == pytest.approx(subject.body_mass_kg * GRAVITY_MPS2, rel=0.02)


def test_pelvis_accelerometer_agrees_with_the_force_plates(control):
    """Newton: the pelvis (≈ centre of mass) accelerates with the sum of both GRFs."""
    trial = walking_trial(control, "comfortable", CONFIG)
    f = trial.force
    bw = control.body_mass_kg * GRAVITY_MPS2
    vertical = (f.column("l_grf_v") + f.column("r_grf_v")) / bw * GRAVITY_MPS2
    from_force = np.interp(trial.imu.time_s, f.time_s, vertical)
    acc = np.column_stack([trial.imu.column(f"pelvis_acc_{a}") for a in "xyz"])
    measured = np.linalg.norm(acc, axis=1)
    r = np.corrcoef(measured, from_force)[0, 1]
    assert r > 0.85


def test_shank_gyro_swing_peak_and_heel_strike_shock(control):
    trial = walking_trial(control, "comfortable", CONFIG)
    sagittal = trial.imu.column("r_shank_gyr_y")
    assert 3.0 < np.percentile(np.abs(sagittal), 99.5) < 9.0  # rad/s, a few hundred °/s
    acc = np.column_stack([trial.imu.column(f"r_shank_acc_{a}") for a in "xyz"])
    norm = np.linalg.norm(acc, axis=1)
    v = trial.force.column("r_grf_v")
    onsets = trial.force.time_s[[a for a, _ in stances(v)]]
    rate = control.imu_rate_hz
    shocks, before = [], []
    for onset in onsets:
        window = (trial.imu.time_s > onset - 0.02) & (trial.imu.time_s < onset + 0.08)
        late_swing = (trial.imu.time_s > onset - 0.12) & (trial.imu.time_s < onset - 0.04)
        shocks.append(norm[window].max())
        before.append(norm[late_swing].max())
    assert np.median(shocks) > np.median(before) + 6.0  # a clear shock at each heel strike
    assert rate in CONFIG.imu_rates_hz


def test_same_seed_gives_byte_identical_files(tmp_path: Path):
    config = SynthConfig(subjects=2, seed=11, duration_s=3.0, speeds=("fast",), static_s=2.0)
    generate_dataset(tmp_path / "a", config)
    generate_dataset(tmp_path / "b", config)
    generate_dataset(tmp_path / "c", replace(config, seed=12))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 10  # subjects.csv, synth.json, 2 subjects × 2 trials × (.imu + .force)
    _match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    assert not filecmp.cmp(
        tmp_path / "a/trials/S01/walk_fast.imu.csv", tmp_path / "c/trials/S01/walk_fast.imu.csv", shallow=False
    )


def test_a_subject_does_not_depend_on_cohort_size():
    assert make_subject(SynthConfig(subjects=3, seed=5), 2) == make_subject(SynthConfig(subjects=30, seed=5), 2)


def test_cohort_spans_the_alignment_range_and_has_both_groups():
    subjects = [make_subject(SynthConfig(subjects=40, seed=0), i) for i in range(1, 41)]
    hka = np.array([s.hka_deg for s in subjects])
    assert hka.min() < -4 and hka.max() > 9
    assert {s.affected_side for s in subjects} == {"left", "right", "none"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"speeds": ("jogging",)}, "speeds"),
        ({"duration_s": 0.5}, "duration_s"),
        ({"places": ("l_hand",)}, "places"),
        ({"imu_rates_hz": (1000.0,)}, "imu_rates_hz"),
    ],
)
def test_config_refuses_bad_values(changes, words):
    with pytest.raises(ValueError, match=words):
        SynthConfig(**changes)
