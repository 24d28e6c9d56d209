import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.dsp import CausalResampler, grid_times, nominal_rate_hz, resample
from forcecast.lab.dataset import Stream, Trial, resample_trial


def tone(freq_hz: float, rate_hz: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    return t, np.sin(2 * np.pi * freq_hz * t)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize("causal", [True, False])
def test_tone_above_target_nyquist_is_removed_not_aliased(causal):
    t, x = tone(80.0, 1000.0, 4.0)  # 80 Hz would alias to 20 Hz at 100 Hz
    _, y = resample(t, x, 100.0, causal=causal)
    steady = y[50:-50]
    assert rms(steady) < 0.01 * rms(x)  # better than -40 dB


def test_passband_tone_keeps_amplitude_and_zero_phase_keeps_timing():
    t, x = tone(5.0, 1000.0, 4.0)
    grid, y = resample(t, x, 100.0, causal=False)
    expected = np.sin(2 * np.pi * 5.0 * grid)
    np.testing.assert_allclose(y[20:-20], expected[20:-20], atol=0.01)


def test_causal_filter_lags_by_its_group_delay():
    t, x = tone(2.0, 1000.0, 6.0)
    grid, y = resample(t, x, 100.0, causal=True)
    delay = CausalResampler(1000.0, 100.0, 1).delay_s
    assert 0.001 < delay < 0.05
    expected = np.sin(2 * np.pi * 2.0 * (grid - delay))
    np.testing.assert_allclose(y[200:], expected[200:], atol=0.02)


def test_grid_is_multiples_of_the_period():
    grid = grid_times(0.0123, 1.0, 100.0)
    assert grid[0] == pytest.approx(0.02) and grid[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(grid), 0.01)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=1999), max_size=8, unique=True))
def test_streaming_in_any_chunks_equals_offline(cuts):
    rng = np.random.default_rng(1)
    t = np.arange(2000) / 208.0
    x = rng.normal(size=(2000, 3)).cumsum(axis=0)
    grid, offline = resample(t, x, 100.0, causal=True)
    streamer = CausalResampler(208.0, 100.0, 3)
    parts_t, parts_y = [], []
    for idx in np.split(np.arange(2000), sorted(cuts)):
        ot, oy = streamer.push(t[idx], x[idx])
        parts_t.append(ot)
        parts_y.append(oy)
    np.testing.assert_allclose(np.concatenate(parts_t), grid)
    np.testing.assert_allclose(np.concatenate(parts_y), offline, rtol=1e-10, atol=1e-10)


def test_gaps_and_nan_runs_come_out_as_nan_not_invented():
    t = np.arange(3000) / 1000.0
    x = np.sin(2 * np.pi * 1.0 * t)
    keep = (t < 1.0) | (t > 1.5)  # a 0.5 s dropout
    grid, y = resample(t[keep], x[keep], 100.0, causal=False)
    inside = (grid >= 1.0) & (grid <= 1.5)  # no sample at 1.000 or 1.500 either
    assert np.all(np.isnan(y[inside]))
    assert np.all(np.isfinite(y[~inside]))
    x_nan = x.copy()
    x_nan[2000:2200] = np.nan
    grid, y = resample(t, np.column_stack([x_nan, x]), 100.0, causal=True)
    assert np.isnan(y[(grid > 2.0) & (grid < 2.2), 0]).all()
    assert np.isfinite(y[:, 1]).all()


def test_streaming_restarts_after_a_clock_jump():
    streamer = CausalResampler(100.0, 100.0, 1)
    streamer.push(np.arange(10) / 100.0, np.ones((10, 1)))
    t_out, _ = streamer.push(5.0 + np.arange(10) / 100.0, np.ones((10, 1)))
    assert streamer.segments_started == 2
    assert t_out[0] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        streamer.push(np.array([1.0]), np.ones((1, 1)))
    with pytest.raises(ValueError, match="NaN"):
        streamer.push(np.array([6.0]), np.full((1, 1), np.nan))


def test_nominal_rate_is_exact_with_rounded_timestamps_and_robust_to_dropouts():
    t = np.round(np.arange(1000) / 104.0, 6)
    assert nominal_rate_hz(t) == pytest.approx(104.0, abs=1e-3)
    t_gap = np.concatenate([t[:400], t[600:]])
    assert nominal_rate_hz(t_gap) == pytest.approx(104.0, rel=1e-3)


def test_resample_trial_puts_imu_and_force_on_one_grid_and_keeps_force_timing():
    t_imu = np.arange(0, 5, 1 / 128.0)
    t_force = np.arange(0, 5, 1 / 1000.0)
    force = np.zeros((t_force.size, 3))
    force[:, 0] = np.exp(-0.5 * ((t_force - 2.5) / 0.05) ** 2) * 800.0
    trial = Trial(
        "S1",
        "walk",
        Stream(t_imu, ("pelvis_acc_x", "pelvis_acc_y", "pelvis_acc_z"), np.ones((t_imu.size, 3))),
        Stream(t_force, ("l_grf_v", "l_grf_ap", "l_grf_ml"), force),
    )
    out = resample_trial(trial, 100.0)
    assert out.imu.time_s is out.force.time_s or np.array_equal(out.imu.time_s, out.force.time_s)
    np.testing.assert_allclose(np.diff(out.imu.time_s), 0.01)
    peak_time = out.force.time_s[np.argmax(out.force.column("l_grf_v"))]
    assert peak_time == pytest.approx(2.5, abs=0.005)
    assert out.force.column("l_grf_v").max() == pytest.approx(800.0, rel=0.01)
