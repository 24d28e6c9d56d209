"""Windowing, subject-wise splits and metrics: pure NumPy, no TensorFlow needed."""

import numpy as np
import pytest

from forcecast.edge.config import ConfigError
from forcecast.edge.contract import ModelContract, Normalisation
from forcecast.edge.features import leg_inputs, output_positions, sensor_place, static_features
from forcecast.edge.runtime.inference import Streaming, default_streaming
from forcecast.lab.dataset import DatasetError
from forcecast.training.config import SplitConfig
from forcecast.training.data import LegSequence
from forcecast.training.metrics import axis_metrics, peak_errors, stances, summarise
from forcecast.training.splits import make_split, partition
from forcecast.training.windows import WindowSource, predict_sequence, valid_ends


def contract(window=16, out_len=4, delay=0, places=("pelvis",)) -> ModelContract:
    n = 6 * len(places)
    return ModelContract(
        100.0,
        places,
        window,
        out_len,
        delay,
        (),
        Normalisation((0.0,) * n, (1.0,) * n),
        None,
        Normalisation((0.0,) * 3, (1.0,) * 3),
    )


def sequence(n=100, subject="S1", impulse_at=None) -> LegSequence:
    targets = np.zeros((n, 3), dtype=np.float32)
    if impulse_at is not None:
        targets[impulse_at, 0] = 1.0
    inputs = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 6))  # input value = sample index
    return LegSequence(subject, "walk", "r", inputs, targets, np.zeros(6), 700.0, np.arange(n) / 100.0)


@pytest.mark.parametrize("delay", [0, 3])
def test_known_impulse_lands_at_the_right_target_index(delay):
    c = contract(window=16, out_len=4, delay=delay)
    src = WindowSource([sequence(impulse_at=40)], c, use_static=False)
    hits = 0
    for k in range(len(src)):
        (x,), y = src.gather(np.array([k]))
        end = int(src.ends[k])
        assert x[0, -1, 0] == end - 1  # the newest input is the sample just before the window end
        block_start = end - delay - 4
        if block_start <= 40 < block_start + 4:
            assert y[0, 40 - block_start, 0] == 1.0
            hits += 1
        else:
            assert y[0, :, 0].sum() == 0.0
    assert hits == 4  # four windows have the impulse somewhere in their output block


def test_output_positions_and_valid_ends_skip_nan():
    assert output_positions(20, 4, 2) == slice(14, 18)
    ok = np.ones(30, dtype=bool)
    ok[10] = False  # a NaN input at 10
    ends = valid_ends(ok, np.ones(30, dtype=bool), window=8, out_len=2, delay=1)
    assert all(not (e - 8 <= 10 < e) for e in ends)
    assert ends.min() == 8 and ends.max() == 30
    # A window is usable while at least one sample of its target block is known (unknowns are masked).
    targets_ok = np.ones(30, dtype=bool)
    targets_ok[25] = False
    ends = valid_ends(np.ones(30, dtype=bool), targets_ok, window=8, out_len=2, delay=1)
    assert ends.tolist() == list(range(8, 31))
    targets_ok[24:27] = False  # blocks [24, 26) and [25, 27) are wholly unknown
    ends = valid_ends(np.ones(30, dtype=bool), targets_ok, window=8, out_len=2, delay=1)
    assert 27 not in ends and 28 not in ends and {26, 29} <= set(ends.tolist())


def test_predictions_tile_time_like_the_device():
    c = contract(window=16, out_len=4, delay=2)
    seq = sequence(n=64)
    calls = []

    def echo_newest(x, s):  # "predict" the newest input value for every output sample
        calls.append(x.shape[0])
        return np.repeat(x[:, -1:, :3], 4, axis=1)

    samples = (64 - 2 - 1) - (16 - 2 - 4) + 1
    # blocks: one window per 4 samples; the device's default: one per sample after the first window's block
    for streaming, windows in ((Streaming.blocks(c), samples // 4), (default_streaming(c), samples - 3)):
        calls.clear()
        pred = predict_sequence(echo_newest, seq, c, use_static=False, streaming=streaming)
        covered = np.flatnonzero(np.isfinite(pred[:, 0]))
        assert covered[0] == 16 - 2 - 4 and covered[-1] == 64 - 2 - 1
        assert np.all(np.diff(covered) == 1)  # no holes
        assert sum(calls) == windows


def test_no_subject_is_in_two_splits():
    subjects = [f"S{i:02d}" for i in range(1, 21)]
    for seed in range(5):
        split = make_split(subjects, SplitConfig(), seed)
        groups = [set(split.train), set(split.val), set(split.test), set(split.exposed)]
        assert sum(len(g) for g in groups) == 20
        assert len(set().union(*groups)) == 20
        assert len(split.test) == 4 and len(split.val) >= 1 and len(split.exposed) == 3
    assert make_split(subjects, SplitConfig(), 1) == make_split(subjects, SplitConfig(), 1)
    fixed = make_split(subjects, SplitConfig(test_subjects=("S03", "S07")), 0)
    assert fixed.test == ("S03", "S07") and "S03" not in fixed.train + fixed.val + fixed.exposed


def test_exposed_subjects_are_cut_in_time_with_a_gap():
    split = make_split(
        ["A", "B", "C", "D"], SplitConfig(exposed_fraction=0.25, val_fraction=0.25, test_fraction=0.25), 0
    )
    assert len(split.exposed) == 1
    seqs = [sequence(200, subject=s) for s in "ABCD"]
    sets = partition(seqs, split, exposed_train_share=0.5, gap=16)
    exposed_train = next(s for s in sets["train"] if s.subject_id in split.exposed)
    exposed_test = sets["exposed"][0]
    assert exposed_train.time_s[-1] + 16 / 100.0 < exposed_test.time_s[0] + 1e-9
    assert {s.subject_id for s in sets["test"]} == set(split.test)
    assert not {s.subject_id for s in sets["val"]} & {s.subject_id for s in sets["train"]}


def test_split_refuses_unknown_test_subjects_and_too_few_subjects():
    with pytest.raises(ConfigError, match="S09 not in the dataset"):
        make_split(["S01", "S02", "S03"], SplitConfig(test_subjects=("S09",)), 0)
    with pytest.raises(DatasetError, match="at least 2"):
        make_split(["S01"], SplitConfig(), 0)
    with pytest.raises(DatasetError, match="none is left to train on"):
        make_split(["S01", "S02"], SplitConfig(test_subjects=("S01", "S02")), 0)


def test_axis_metrics_against_hand_computed_values():
    measured = np.array([0.0, 1.0, 2.0, 1.0])
    predicted = np.array([0.0, 1.0, 1.0, 2.0])
    m = axis_metrics(predicted, measured, np.full(4, 500.0))
    # errors 0, 0, -1, +1 -> RMSE sqrt(2/4); range of measured is 2; r of (0,1,1,2) vs (0,1,2,1) is 0.5
    assert m.rmse_bw == pytest.approx(np.sqrt(0.5))
    assert m.rmse_n == pytest.approx(500 * np.sqrt(0.5))
    assert m.nrmse_pct == pytest.approx(100 * np.sqrt(0.5) / 2)
    assert m.r == pytest.approx(0.5)
    assert m.n_samples == 4
    partly = axis_metrics(np.array([np.nan, 1.0, 2.0]), np.array([5.0, 1.0, 3.0]), np.ones(3))
    assert partly.n_samples == 2 and partly.rmse_bw == pytest.approx(np.sqrt(0.5))


def test_peak_errors_per_step():
    rate = 100.0
    step = np.concatenate([np.zeros(20), np.sin(np.linspace(0, np.pi, 60)) * 1.1, np.zeros(20)])
    measured = np.tile(step, 3)
    predicted = measured.copy()
    predicted[20:50] *= 1.1  # overshoot only the first half of the first step
    assert len(stances(measured, rate)) == 3
    first, second = peak_errors(predicted, measured, rate)
    assert first == pytest.approx([0.11, 0.0, 0.0], abs=1e-3)
    assert second == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    summary = summarise([np.column_stack([predicted] * 3)], [np.column_stack([measured] * 3)], [700.0], rate)
    assert summary["peaks"]["n_steps"] == 3
    assert summary["peaks"]["first_peak_mae_bw"] == pytest.approx(0.11 / 3, abs=1e-3)


def test_left_leg_is_mirrored_and_static_features_encode_unknown_alignment():
    columns = ("l_shank_acc_x", "l_shank_acc_y", "l_shank_acc_z", "l_shank_gyr_x", "l_shank_gyr_y", "l_shank_gyr_z")
    values = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    assert leg_inputs(columns, values, ("ipsi_shank",), "l").tolist() == [[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]]
    assert sensor_place("contra_thigh", "l") == "r_thigh"
    with pytest.raises(KeyError, match="r_shank_acc_x"):
        leg_inputs(columns, values, ("ipsi_shank",), "r")
    known = static_features(6.0, "left", 80.0, 1.8, "l")
    unknown = static_features(None, "left", 80.0, 1.8, "r")
    assert known.tolist() == [6.0, 1.0, 1.0, 0.0, 80.0, 1.8]
    assert unknown.tolist() == [0.0, 0.0, 0.0, 1.0, 80.0, 1.8]
