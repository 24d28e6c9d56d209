"""IMU↔force lag estimation, sample-and-hold removal, force onsets, body mass from force, lag in `data check`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset import Dataset, Stream, Trial, check_dataset, write_subjects, write_trial
from forcecast.lab.dataset.importers import mass
from forcecast.lab.dataset.importers.gait import runs
from forcecast.lab.dataset.importers.recording import remove_sample_and_hold
from forcecast.lab.dataset.importers.sync import force_onsets, shift_imu, trial_lag
from forcecast.lab.synth import SynthConfig, static_trial, subjects_for, walking_trial

LAGS_MS = (0.0, 35.0, 110.0)


@pytest.fixture(scope="module")
def walks():
    """Treadmill trials of three subjects with different IMU rates (100, 104, 128 or 200 Hz)."""
    config = SynthConfig(subjects=3, seed=21)
    out = []
    for subject in subjects_for(config):
        out.append((subject, walking_trial(subject, "comfortable", replace(config, duration_s=10.0))))
    return out


def _lagged(trial: Trial, lag_ms: float) -> Trial:
    """The trial as an IMU whose clock runs ``lag_ms`` late would record it."""
    return Trial(trial.subject_id, trial.trial_id, shift_imu(trial.imu, -lag_ms / 1000.0), trial.force)


@pytest.mark.parametrize("lag_ms", LAGS_MS)
def test_lag_is_recovered_within_10_ms(walks, lag_ms):
    for subject, trial in walks:
        estimate = trial_lag(_lagged(trial, lag_ms))
        assert estimate.contacts >= 10
        assert abs(1000 * estimate.lag_s - lag_ms) <= 10.0, (subject.subject_id, subject.imu_rate_hz, estimate)
        assert estimate.spread_s < 0.015


def test_lag_is_recovered_from_the_shank_when_there_is_no_foot_sensor(walks):
    _, trial = walks[0]
    shank = tuple(c for c in trial.imu.columns if "foot" not in c)
    lagged = _lagged(Trial(trial.subject_id, trial.trial_id, trial.imu.select(shank), trial.force), 60.0)
    estimate = trial_lag(lagged)
    assert estimate.ok and abs(1000 * estimate.lag_s - 60.0) <= 12.0


def test_no_lag_without_force_or_leg_sensors(walks):
    _, trial = walks[0]
    assert not trial_lag(Trial("S", "t", trial.imu, None)).ok
    pelvis = trial.imu.select(tuple(c for c in trial.imu.columns if c.startswith("pelvis")))
    estimate = trial_lag(Trial("S", "t", pelvis, trial.force))
    assert not estimate.ok and estimate.as_dict() == {"lag_ms": None, "spread_ms": None, "contacts": 0}


def test_data_check_shows_the_lag_and_warns_beyond_20_ms(walks, tmp_path):
    subject, trial = walks[1]
    write_subjects(tmp_path / "subjects.csv", [subject.as_subject()])
    write_trial(tmp_path, _lagged(trial, 70.0), paired=True)
    report = check_dataset(tmp_path)
    assert report.ok
    lag = report.summary()["imu_lag_ms"][f"{trial.subject_id}/{trial.trial_id}"]
    assert abs(lag - 70.0) <= 10.0
    assert any("lags the force by" in p.message and p.severity == "warning" for p in report.problems)
    write_trial(tmp_path, trial, paired=True)  # corrected: no warning
    report = check_dataset(tmp_path)
    assert not any("lags the force" in p.message for p in report.problems)


# --- sample-and-hold -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([100.0, 104.0, 128.0, 148.148, 200.0]),
    analog=st.sampled_from([1000.0, 1200.0, 2000.0, 2400.0]),
    delay=st.floats(0.0, 0.2),
)
def test_sample_and_hold_gives_back_the_sensor_samples(rate, analog, delay):
    rng = np.random.default_rng(0)
    n = int(4 * rate)
    samples = rng.normal(size=(n, 6))
    sample_time = delay + np.arange(n) / rate
    analog_time = np.arange(int(4.5 * analog)) / analog
    index = np.searchsorted(sample_time, analog_time, side="right") - 1
    held = samples[np.clip(index, 0, n - 1)]
    time, values, found = remove_sample_and_hold(analog_time, held)
    assert found == pytest.approx(rate, rel=2e-3)
    first = int(np.argmin(np.abs(sample_time - time[0])))
    m = min(values.shape[0], n - first)
    assert m >= n - 2 - int(0.5 * rate)  # only samples past the end of the analog record are lost
    np.testing.assert_array_equal(values[:m], samples[first : first + m])
    assert np.max(np.abs(time[:m] - sample_time[first : first + m])) <= 2.0 / analog  # within 2 analog steps


def test_a_real_analog_signal_is_left_alone():
    t = np.arange(2000) / 1000.0
    values = np.column_stack([np.sin(7 * t), np.cos(3 * t)])
    time, out, found = remove_sample_and_hold(t, values)
    assert found is None and out is values and time is t


# --- force onsets -------------------------------------------------------------------------------


def test_force_onset_is_interpolated_and_bounces_are_not_onsets():
    t = np.arange(0.0, 2.0, 0.001)
    v = np.zeros_like(t)
    v[(t >= 0.5003) & (t < 1.0)] = np.interp(t[(t >= 0.5003) & (t < 1.0)], [0.5003, 0.6], [0.0, 800.0])
    v[(t >= 1.005) & (t < 1.01)] = 50.0  # a bounce 5 ms after unloading: not a new contact
    v[np.isnan(v)] = 0.0
    v[1500:1510] = np.nan  # unknown force, then load: no onset is claimed from an unknown
    v[1510:1600] = 300.0
    onsets = force_onsets(t, v, 20.0)
    assert onsets.size == 1
    assert onsets[0] == pytest.approx(0.5003 + 20.0 / 800.0 * 0.0997, abs=1e-4)


# --- body mass -------------------------------------------------------------------------------


def test_mass_from_quiet_standing_within_1_percent():
    config = SynthConfig(subjects=1, seed=2)
    subject = subjects_for(config)[0]
    trial = static_trial(subject, replace(config, static_s=5.0))
    total = trial.force.column("l_grf_v") + trial.force.column("r_grf_v")
    estimate = mass.from_standing(trial.force.time_s, total)
    assert estimate is not None and estimate.method == "estimated_standing"
    assert abs(estimate.mass_kg - subject.body_mass_kg) / subject.body_mass_kg < 0.01


def test_walking_is_not_taken_for_standing(walks):
    _, trial = walks[0]
    total = trial.force.column("l_grf_v") + trial.force.column("r_grf_v")
    assert mass.from_standing(trial.force.time_s, total) is None
    assert mass.from_standing(trial.force.time_s, np.full(trial.force.time_s.size, 50.0)) is None  # too light


def test_mass_from_stride_impulses_within_3_percent(walks):
    for subject, trial in walks:
        weights = []
        for side in ("l", "r"):
            v = trial.force.column(f"{side}_grf_v")
            stride = mass.stride_time_s(trial.force.time_s, v == 0)
            assert stride is not None
            starts, stops = runs(v > 0)
            for a, b in list(zip(starts, stops, strict=True))[1:-1]:
                weights.append(mass.contact_body_weight(trial.force.time_s[a:b], v[a:b], stride))
        estimate = mass.from_strides(weights)
        assert estimate is not None and estimate.method == "estimated_strides" and estimate.support >= 10
        assert abs(estimate.mass_kg - subject.body_mass_kg) / subject.body_mass_kg < 0.03


def test_no_contacts_no_mass():
    assert mass.from_strides([]) is None
    assert mass.stride_time_s(np.arange(10.0), np.zeros(10, dtype=bool)) is None


def test_imported_dataset_reads_the_mass_source_column(tmp_path, walks):
    subject, trial = walks[0]
    row = replace(
        subject.as_subject(),
        body_mass_kg=round(subject.body_mass_kg, 1),
        extra={"body_mass_source": "estimated_strides"},
    )
    write_subjects(tmp_path / "subjects.csv", [row])
    write_trial(tmp_path, trial, paired=True)
    dataset = Dataset.open(tmp_path)
    assert dataset.subjects[subject.subject_id].extra["body_mass_source"] == "estimated_strides"
    assert dataset.subjects[subject.subject_id].body_weight_n == pytest.approx(row.body_mass_kg * GRAVITY_MPS2)


def test_shift_moves_only_the_clock(walks):
    _, trial = walks[0]
    moved = shift_imu(trial.imu, 0.05)
    assert isinstance(moved, Stream)
    np.testing.assert_allclose(moved.time_s, trial.imu.time_s - 0.05)
    assert moved.values is trial.imu.values


# --- gait events without markers -------------------------------------------------------------------


def test_swing_from_the_gyroscope_is_never_stance(walks):
    from forcecast.lab.dataset.importers.gait import mask_at, swing_from_gyro

    for _, trial in walks:
        for side in ("l", "r"):
            swing = swing_from_gyro(trial.imu, side)
            assert swing is not None
            on_force = mask_at(trial.force.time_s, trial.imu.time_s, swing)
            v = trial.force.column(f"{side}_grf_v")
            assert np.all(v[on_force] == 0.0)  # only true swing is claimed
            assert on_force.sum() > 0.3 * np.sum(v == 0.0)  # and a good part of it


def test_walking_direction_from_the_centre_of_pressure_sequence():
    from forcecast.lab.dataset.importers.gait import walking_direction
    from forcecast.lab.dataset.importers.recording import Plate, Recording

    t = np.arange(0.0, 3.0, 0.001)
    plates = []
    for number, (start, x) in enumerate(((0.5, 0.3), (1.1, 0.9), (1.7, 1.5)), start=1):
        force = np.zeros((t.size, 3))
        cop = np.full((t.size, 3), np.nan)
        loaded = (t >= start) & (t < start + 0.6)
        force[loaded, 2] = 700.0
        cop[loaded] = [-x, 0.05, 0.0]  # walking towards -x
        corners = np.array([[-x + 0.3, 0.2, 0], [-x + 0.3, -0.2, 0], [-x - 0.3, -0.2, 0], [-x - 0.3, 0.2, 0]], float)
        plates.append(Plate(number, corners, force, cop))
    direction, how = walking_direction(Recording("x.c3d", None, t, tuple(plates)), "auto", "z")
    assert direction is not None and direction[0] < -0.99 and "centres of pressure" in how
    direction, how = walking_direction(Recording("x.c3d", None, t, tuple(plates[:1])), "auto", "z")
    assert direction is None and "walking_direction" in how
    empty = Recording("x.mot", None, t, ())
    direction, how = walking_direction(empty, "+z", "y")  # OpenSim: y up, +z to the right = lab -y once z is up
    assert direction is not None and np.allclose(direction, [0.0, -1.0]) and "mapping" in how
    with pytest.raises(ValueError, match="up axis"):
        walking_direction(empty, "-y", "y")


def test_sensors_held_out_of_step_share_one_time_base():
    from forcecast.lab.dataset.importers.recording import held_imu

    rate, analog = 148.148, 2000.0
    analog_time = np.arange(int(5 * analog)) / analog
    rng = np.random.default_rng(1)
    columns, blocks, truth = [], [], {}
    for place, phase in (("l_foot", 0.0), ("r_foot", 0.0031), ("pelvis", 0.0052)):  # each sensor its own phase
        sample_time = phase + np.arange(int(4.9 * rate)) / rate
        samples = rng.normal(size=(sample_time.size, 6))
        truth[place] = (sample_time, samples)
        index = np.clip(np.searchsorted(sample_time, analog_time, side="right") - 1, 0, sample_time.size - 1)
        blocks.append(samples[index])
        columns += [f"{place}_{k}_{a}" for k in ("acc", "gyr") for a in "xyz"]
    values = np.hstack(blocks)
    _, _, union_rate = remove_sample_and_hold(analog_time, values)  # all channels as one block: misread
    assert union_rate is None or abs(union_rate - rate) > 10.0
    stream, note = held_imu(analog_time, values, tuple(columns), "lab.c3d")
    assert note is not None and "148.1" in note
    assert stream.rate_hz == pytest.approx(rate, rel=2e-3)
    assert np.isfinite(stream.values).all()
    for place, (sample_time, samples) in truth.items():
        block = stream.select(tuple(c for c in columns if c.startswith(place))).values
        k = np.searchsorted(sample_time, stream.time_s - 0.5 / rate)  # each row holds that sensor's nearest sample
        np.testing.assert_array_equal(block, samples[np.clip(k, 0, sample_time.size - 1)])


def test_sensors_held_at_different_rates_are_refused():
    from forcecast.lab.dataset.importers.recording import held_imu

    analog_time = np.arange(4000) / 1000.0
    blocks = []
    for rate in (100.0, 128.0):
        index = np.floor(analog_time * rate).astype(int)
        blocks.append(np.random.default_rng(0).normal(size=(index.max() + 1, 6))[index])
    columns = tuple(f"{p}_{k}_{a}" for p in ("l_foot", "r_foot") for k in ("acc", "gyr") for a in "xyz")
    with pytest.raises(ValueError, match="different rates"):
        held_imu(analog_time, np.hstack(blocks), columns, "lab.c3d")
