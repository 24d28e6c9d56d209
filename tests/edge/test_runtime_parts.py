"""The runtime's parts without a model: quality guard, calibration, step detection, metrics, feedback."""

from __future__ import annotations

import io
import json
import os
import socket

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from step_matching import check_detection, match_events

from forcecast.edge.runtime.calibration import CalibrationError, estimate, identity
from forcecast.edge.runtime.feedback import FeedbackGate, StdoutCue
from forcecast.edge.runtime.quality import StreamGuard
from forcecast.edge.runtime.step_metrics import WAVEFORM_POINTS, step_metrics
from forcecast.edge.runtime.steps import StepDetector
from forcecast.edge.runtime.systemd import Notifier
from forcecast.edge.schema import GRAVITY_MPS2, all_imu_columns
from forcecast.lab.sources.synthetic import SyntheticSource, truth_force

COLUMNS = all_imu_columns(("r_shank",))
RATE = 100.0


def guard() -> StreamGuard:
    return StreamGuard(COLUMNS, RATE, 16 * GRAVITY_MPS2, np.deg2rad(2000), max_gap_s=0.05, clock_jump_s=5.0)


def still(n: int, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    values = np.zeros((n, 6))
    values[:, 2] = GRAVITY_MPS2
    return t0 + np.arange(n) / RATE, values


def test_guard_passes_a_clean_stream_untouched():
    g = guard()
    t, x = still(50)
    t_out, x_out, events = g.clean(t, x)
    assert events == [] and np.array_equal(t_out, t) and np.array_equal(x_out, x)


def test_guard_finds_nan_runs_dropouts_clock_jumps_and_saturation():
    g = guard()
    t, x = still(400)
    x[100:120, 0] = np.nan  # a NaN run
    x[200, 3] = np.deg2rad(2000)  # gyro at full scale
    t[300:] += 2.0  # a 2 s dropout
    t_out, x_out, events = g.clean(t, x)
    kinds = [e.kind for e in events]
    assert kinds.count("nan") == 1 and kinds.count("saturation") == 1 and kinds.count("dropout") == 1
    nan = next(e for e in events if e.kind == "nan")
    assert nan.samples == 20 and nan.start_s == pytest.approx(1.0)
    assert x_out.shape[0] == 380 and np.all(np.isfinite(x_out))
    dropout = next(e for e in events if e.kind == "dropout")
    assert dropout.end_s - dropout.start_s == pytest.approx(2.01) and dropout.samples == 200
    # the clock steps back an hour, then forward a day: both re-based, time stays increasing
    t2, x2 = still(100, t0=float(t[-1]) - 3600.0)
    t2[50:] += 86400.0
    t2_out, _, events2 = g.clean(t2, x2)
    assert [e.kind for e in events2] == ["clock_jump", "clock_jump"]
    assert np.all(np.diff(np.concatenate([t_out, t2_out])) > 0)
    assert g.counters.events == {"nan": 1, "dropout": 1, "clock_jump": 2, "saturation": 1}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(min_value=-10, max_value=10), st.just(float("nan"))), min_size=1, max_size=60))
def test_guard_never_lets_bad_time_or_nan_through(steps):
    g = guard()
    t = np.cumsum(np.nan_to_num(np.array(steps), nan=0.01))
    x = np.where(np.isnan(np.array(steps))[:, None], np.nan, 1.0) * np.ones((len(steps), 6))
    t_out, x_out, _ = g.clean(t, x)
    t_out2, _, _ = g.clean(t + 1.0, x)
    assert np.all(np.isfinite(x_out))
    assert np.all(np.diff(np.concatenate([t_out, t_out2])) > 0)


def rotation_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_calibration_removes_tilt_and_gyro_bias():
    rng = np.random.default_rng(1)
    tilt = rotation_x(12.0)
    _, x = still(300)
    x[:, :3] = (tilt @ x[:, :3].T).T + rng.normal(0, 0.02, (300, 3))
    x[:, 3:] = np.array([0.02, -0.01, 0.005]) + rng.normal(0, 0.002, (300, 3))
    cal = estimate(COLUMNS, x)
    assert cal.places["r_shank"].tilt_deg == pytest.approx(12.0, abs=0.3)
    corrected = cal.apply(x)
    assert np.allclose(corrected[:, :3].mean(axis=0), [0, 0, GRAVITY_MPS2], atol=0.03)
    assert np.allclose(corrected[:, 3:].mean(axis=0), 0.0, atol=1e-3)
    assert np.array_equal(identity(COLUMNS).apply(x), x)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x.__setitem__((slice(None), 3), np.sin(np.arange(x.shape[0]) / 5.0)), "moved during calibration"),
        (lambda x: x.__setitem__((slice(None), slice(0, 3)), x[:, :3] / GRAVITY_MPS2), "check the accelerometer range"),
        (lambda x: x.__setitem__((slice(None), 2), -x[:, 2]), "tilted 180°"),
    ],
)
def test_calibration_refuses_an_unusable_pose(change, message):
    _, x = still(200)
    change(x)
    with pytest.raises(CalibrationError, match=message):
        estimate(COLUMNS, x)


def half_sine_stance(rate: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """0.6 s stance, vertical = 1.1 BW half sine, AP = -0.2 then +0.2 BW, ML = 0.05 BW, padded with swing."""
    t = np.arange(0, 1.6, 1 / rate)
    f = np.zeros((t.size, 3))
    on = (t >= 0.5) & (t <= 1.1)
    phase = (t[on] - 0.5) / 0.6
    f[on, 0] = 1.1 * np.sin(np.pi * phase)
    f[on, 1] = -0.2 * np.sin(2 * np.pi * phase)
    f[on, 2] = 0.05 * np.sin(np.pi * phase)
    return t, f


def test_one_stance_is_found_and_its_metrics_match_hand_computed_values():
    t, f = half_sine_stance(1000.0)
    detector = StepDetector()
    stances = detector.push(t, f)
    assert len(stances) == 1
    m = step_metrics(stances[0], body_weight_n=700.0)
    # contact threshold 0.05 BW is crossed at asin(0.05/1.1)/pi of the stance from each end
    edge = 0.6 * np.arcsin(0.05 / 1.1) / np.pi
    assert m["ic_s"] == pytest.approx(0.5 + edge, abs=1e-3)
    assert m["stance_s"] == pytest.approx(0.6 - 2 * edge, abs=2e-3)
    assert m["peak1_bw"] == pytest.approx(1.1, abs=1e-3) and m["peak2_bw"] == pytest.approx(1.1, abs=1e-3)
    assert m["peak1_n"] == pytest.approx(770.0, abs=1.0)
    assert m["impulse_v_bws"] == pytest.approx(1.1 * 0.6 * 2 / np.pi, rel=0.01)
    # braking = propulsive = 0.2 * 0.6 / pi for a full-period sine of amplitude 0.2
    assert m["impulse_brake_bws"] == pytest.approx(0.2 * 0.6 / np.pi, rel=0.03)
    assert m["impulse_prop_bws"] == pytest.approx(0.2 * 0.6 / np.pi, rel=0.03)
    assert m["peak_ml_bw"] == pytest.approx(0.05, abs=1e-3)
    # half sine: 20 % → 80 % of the peak between asin(0.2) and asin(0.8) of pi
    rise = 0.6 * (np.arcsin(0.8) - np.arcsin(0.2)) / np.pi
    assert m["loading_rate_bw_s"] == pytest.approx(0.6 * 1.1 / rise, rel=0.01)
    assert all(len(m["waveform_bw"][a]) == WAVEFORM_POINTS for a in ("v", "ap", "ml"))
    assert json.loads(json.dumps(m)) == m


def test_standing_shuffling_and_missing_data_are_not_steps():
    detector = StepDetector()
    t = np.arange(0, 5, 0.01)
    assert detector.push(t, np.column_stack([np.full(t.size, 0.5), np.zeros((t.size, 2))])) == []  # standing
    t, f = half_sine_stance()
    f[80, 0] = np.nan  # data missing mid-stance
    assert detector.push(t + 10, f) == [] and detector.interrupted == 1


def test_steps_of_the_synthetic_walker_are_found_from_its_force_plate():
    source = SyntheticSource(subject=2, seed=3, speed=0, stand_s=3.0, duration_s=33.0, keep_truth=True)
    for _ in source.chunks():
        pass
    t, force = truth_force(source.segments, "r")
    bw = source.walker.body_mass_kg * GRAVITY_MPS2
    stances = StepDetector().push(t[::10], force[::10] / bw)  # 100 Hz, as the model outputs
    reference = StepDetector().push(t, force / bw)  # 1 kHz
    assert len(reference) >= 25
    match = match_events([b.ic_s for b in reference], [a.ic_s for a in stances], tolerance_s=0.02)
    check_detection(match, min_precision=1.0, min_recall=1.0)  # one detection per stance, none extra
    errors = np.array([stances[d].ic_s - reference[t].ic_s for t, d in match.pairs])
    assert np.median(np.abs(errors)) < 0.002


def test_feedback_fires_once_per_stance_with_its_latency():
    out = io.StringIO()
    gate = FeedbackGate(1.0, StdoutCue(out))
    t, f = half_sine_stance()
    gate.check("r", t, f[:, 0], newest_input_s=float(t[-1]), compute_s=0.0005)
    gate.check("r", t + 2, f[:, 0], newest_input_s=float(t[-1] + 2), compute_s=0.0005)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2 and lines[0]["event"] == "cue" and lines[0]["leg"] == "r"
    assert lines[0]["force_bw"] > 1.0 and gate.events[0].latency_ms >= 0.5
    assert FeedbackGate(0.0, StdoutCue(out)).events == []


def test_systemd_notify_reaches_the_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = Notifier(min_interval_s=0.0)
        notifier.ready("running")
        notifier.ping()
        assert server.recv(256) == b"READY=1\nSTATUS=running"
        assert server.recv(256) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier().active and os.environ.get("NOTIFY_SOCKET") is None
