"""Training on real lab data: unknown targets, stance-only metrics, static features, small cohorts, extreme data.

NumPy-only tests first; the few that train use a tiny model for a handful of steps (marked ``tf``).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_training import tiny_toml, train, write_config

from forcecast.edge.contract import ModelContract, Normalisation
from forcecast.edge.features import STATIC_FEATURES, static_features
from forcecast.edge.runtime.inference import STATIC_LIMIT_SD, bounded_static
from forcecast.training.config import AugmentConfig, DataConfig, SplitConfig, TrainConfig
from forcecast.training.data import LegSequence, TrainingDataWarning, fit_short_sequences
from forcecast.training.metrics import STANCE_THRESHOLD_BW, summarise
from forcecast.training.normalise import NEUTRAL_STD, fit_static
from forcecast.training.splits import make_split, partition
from forcecast.training.windows import WindowSource, predict_sequence, static_inputs, steps_per_epoch

TINY_TOML = tiny_toml(min_steps=6)


def leg(subject: str, side: str, affected: str, hka: float | None = 3.0, mass: float = 80.0, n: int = 200):
    """A leg sequence with the static features of a person (inputs and targets are simple ramps)."""
    inputs = np.tile(np.linspace(-1, 1, n, dtype=np.float32)[:, None], (1, 6))
    targets = np.zeros((n, 3), dtype=np.float32)
    return LegSequence(
        subject,
        "walk",
        side,
        inputs,
        targets,
        static_features(hka, affected, mass, 1.6 + mass / 1000.0, side),  # heights differ with mass
        mass * 9.81,
        np.arange(n) / 100.0,
    )


def vars_of(seq: LegSequence) -> tuple:
    """The fields of a sequence after its trial id."""
    return (seq.side, seq.inputs, seq.targets, seq.static, seq.body_weight_n, seq.time_s)


def contract_for(static: Normalisation | None, window: int = 16) -> ModelContract:
    return ModelContract(
        100.0,
        ("pelvis",),
        window,
        4,
        0,
        STATIC_FEATURES if static else (),
        Normalisation((0.0,) * 6, (1.0,) * 6),
        static,
        Normalisation((0.0,) * 3, (1.0,) * 3),
    )


# --- metrics over known samples ------------------------------------------------------------------


def test_metrics_whole_cycle_and_stance_only_by_hand():
    # measured v: swing 0, stance 1 and 2 BW, one unknown sample (NaN) that must not count.
    measured_v = np.array([0.0, 0.0, 1.0, 2.0, np.nan, 0.0])
    predicted_v = np.array([0.1, 0.0, 1.0, 1.0, 5.0, 0.0])
    measured = np.column_stack([measured_v, measured_v, measured_v])
    predicted = np.column_stack([predicted_v, predicted_v, predicted_v])
    summary = summarise([predicted], [measured], [700.0], 100.0)
    whole = summary["axes"]["v"]
    # Known: 5 samples, errors 0.1, 0, 0, -1, 0 -> RMSE sqrt(1.01 / 5); range 2.
    assert whole["n_samples"] == 5
    assert whole["rmse_bw"] == pytest.approx(np.sqrt(1.01 / 5), abs=1e-5)
    assert whole["nrmse_pct"] == pytest.approx(100 * np.sqrt(1.01 / 5) / 2, abs=1e-3)
    assert whole["r"] == pytest.approx(np.corrcoef([0.1, 0, 1, 1, 0], [0, 0, 1, 2, 0])[0, 1], abs=1e-5)
    stance = summary["stance_axes"]["v"]
    # Stance: measured v above 0.05 BW -> samples 2 and 3; errors 0, -1 -> RMSE sqrt(0.5); range 1.
    assert STANCE_THRESHOLD_BW == 0.05
    assert stance["n_samples"] == 2
    assert stance["rmse_bw"] == pytest.approx(np.sqrt(0.5), abs=1e-5)
    assert stance["nrmse_pct"] == pytest.approx(100 * np.sqrt(0.5), abs=1e-3)
    # The other axes are scored on the same stance samples (chosen by the vertical force).
    assert summary["stance_axes"]["ap"]["n_samples"] == 2


def test_windows_with_some_unknown_targets_are_used_and_keep_nan():
    seq = leg("S1", "r", "none", n=64)
    seq.targets[:, :] = np.nan
    seq.targets[40, 0] = 0.5  # one known sample, vertical only
    c = contract_for(None)
    src = WindowSource([seq], c, use_static=False)
    assert len(src) == 4  # the four windows whose output block holds sample 40
    _, y = src.gather(np.arange(len(src)))
    assert np.isfinite(y).sum() == 4 and np.isnan(y).sum() == 4 * 4 * 3 - 4
    nothing = leg("S1", "l", "none", n=64)
    nothing.targets[:, :] = np.nan
    assert WindowSource([nothing], c, use_static=False).unused == ["S1/walk/l"]


@pytest.mark.tf
def test_masked_loss_ignores_unknown_targets():
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from forcecast.training.models import masked_mse

    y_true = tf.constant([[[1.0, np.nan, 0.0], [2.0, np.nan, np.nan]]])
    y_pred = tf.Variable(tf.zeros((1, 2, 3)))
    with tf.GradientTape() as tape:
        loss = masked_mse()(y_true, y_pred)
    assert float(loss) == pytest.approx((1.0 + 0.0 + 4.0) / 3)  # mean over the three known values
    grad = tape.gradient(loss, y_pred).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(grad[np.isnan(y_true.numpy())] == 0.0)
    assert grad[0, 0, 0] == pytest.approx(2 * (0.0 - 1.0) / 3)


# --- static features ------------------------------------------------------------------------------


def test_binary_flags_are_not_z_scored_and_constant_features_are_neutralised_with_a_warning():
    train = [
        leg("A", "l", "left", hka=4.0, mass=70.0),
        leg("A", "r", "left", hka=4.0, mass=70.0),
        leg("B", "l", "left", hka=8.0, mass=90.0),
        leg("B", "r", "left", hka=8.0, mass=90.0),
    ]
    with pytest.warns(TrainingDataWarning, match="hka_known is 1 for every training subject") as caught:
        fitted = fit_static(train, STATIC_FEATURES)
    assert len(caught) == 1  # only hka_known is constant (the flags differ between legs)
    norm = dict(
        zip(STATIC_FEATURES, zip(fitted.normalisation.mean, fitted.normalisation.std, strict=True), strict=True)
    )
    assert norm["ipsi_affected"] == (0.0, 1.0) and norm["contra_affected"] == (0.0, 1.0)
    assert norm["hka_known"] == (1.0, NEUTRAL_STD)
    assert norm["body_mass_kg"] == pytest.approx((80.0, 10.0))
    assert fitted.neutralised == ("hka_known",)
    assert "hka_known" in fitted.notes()["static_neutralised"]
    contract = contract_for(fitted.normalisation)
    unknown_hka = static_features(None, "right", 80.0, 1.68, "r")
    z = static_inputs(contract, unknown_hka)
    assert abs(z[STATIC_FEATURES.index("hka_known")]) < 1e-5  # neutralised: 0 for everyone
    assert z[STATIC_FEATURES.index("ipsi_affected")] == 1.0  # the flag itself, not (1 - mean) / sd


def test_static_inputs_are_clipped_by_the_devices_own_function():
    static = Normalisation((0.0, 0.0, 0.0, 0.0, 80.0, 1.75), (5.0, 1.0, 1.0, 1.0, 10.0, 0.1))
    contract = contract_for(static)
    heavy = leg("H", "r", "none", hka=3.0, mass=400.0, n=64)  # 32 SD above the training mean
    expected = bounded_static(contract, heavy.static)
    assert expected[STATIC_FEATURES.index("body_mass_kg")] == STATIC_LIMIT_SD
    with pytest.warns(TrainingDataWarning, match="body_mass_kg of subject H lie beyond"):
        src = WindowSource([heavy], contract, use_static=True)
    np.testing.assert_array_equal(src.s[0], expected.astype(np.float32))
    seen = []

    def spy(x, s):
        seen.append(s)
        return np.zeros((x.shape[0], 4, 3), dtype=np.float32)

    with pytest.warns(TrainingDataWarning):
        predict_sequence(spy, heavy, contract, use_static=True)
    np.testing.assert_array_equal(seen[0][0], expected.astype(np.float32))


def test_no_thousand_sd_static_input_when_training_subjects_share_one_side():
    """Six people, the training ones all affected on the left; the test subject is a control with unknown HKA."""
    from forcecast.training.fit import fit_contract

    people = {f"S{i}": ("left", 2.0 + i, 70.0 + 4 * i) for i in range(1, 6)}
    sequences = [leg(s, side, a, hka=h, mass=m) for s, (a, h, m) in people.items() for side in "lr"]
    sequences += [leg("S6", side, "none", hka=None, mass=75.0) for side in "lr"]
    config = TrainConfig(data=DataConfig(window=16, out_len=4, delay=0, leg_places=("pelvis",)))
    for seed in range(10):
        split = make_split([s.subject_id for s in sequences], SplitConfig(test_subjects=("S6",)), seed)
        sets = partition(sequences, split, 0.5, gap=16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrainingDataWarning)
            contract = fit_contract(sets["train"], config)
        test_inputs = np.stack([static_inputs(contract, s.static) for s in sets["test"]])
        assert np.max(np.abs(test_inputs)) <= STATIC_LIMIT_SD, seed
        raw = np.abs(contract.static.apply(np.stack([s.static for s in sets["test"]])))
        assert np.max(raw) < 10.0, seed  # even before clipping, nothing is a thousand SDs out


def test_unusable_statistics_stop_training_naming_channel_and_sequence():
    from forcecast.lab.dataset import DatasetError
    from forcecast.training.normalise import fit_checked

    names = tuple(f"pelvis_{k}_{a}" for k in ("acc", "gyr") for a in "xyz")
    calm, spiky = leg("A", "l", "none"), leg("B", "r", "none")
    spiky.inputs[50, 4] = 1e30  # in float32 its square overflows: the SD would be inf, the channel zeroed
    with pytest.raises(DatasetError) as caught:
        fit_checked([calm, spiky], "inputs", names, "IMU channel")
    (problem,) = caught.value.problems
    assert problem.file == "trials/B/walk/r" and problem.column == "pelvis_gyr_y" and "1e+30" in problem.message
    fitted = fit_checked([calm], "inputs", names, "IMU channel")
    assert all(np.isfinite(fitted.std)) and all(s >= 1e-3 for s in fitted.std)
    unknown = leg("A", "l", "none")
    unknown.targets[:, 2] = np.nan
    with pytest.raises(DatasetError, match="force grf_ml: no known sample"):
        fit_checked([unknown], "targets", ("grf_v", "grf_ap", "grf_ml"), "force")


def test_a_set_without_usable_windows_is_named():
    from forcecast.training.fit import no_window_problem

    problem = no_window_problem(Path("ds"), "validation", [leg("A", "l", "none")], block=True)
    assert "no usable validation window" in problem.message and "A/walk/l" in problem.message
    assert "two subjects" in problem.message
    assert "no sequence at all" in no_window_problem(Path("ds"), "training", [], block=False).message


# --- splits and short trials ----------------------------------------------------------------------


def test_splits_are_stratified_by_affected_side():
    subjects = [f"S{i:02d}" for i in range(1, 11)]
    strata = {s: ("left" if i < 5 else "right") for i, s in enumerate(subjects)}
    for seed in range(20):
        split = make_split(
            subjects, SplitConfig(test_fraction=0.2, val_fraction=0.2, exposed_fraction=0.0), seed, strata
        )
        for group in (split.test, split.val, split.train):
            assert {strata[s] for s in group} == {"left", "right"}, (seed, split)
    # Without strata the draw is still a valid split.
    plain = make_split(subjects, SplitConfig(), 3)
    assert sorted(plain.train + plain.val + plain.test + plain.exposed) == subjects


def test_two_subjects_validate_on_a_held_out_block_and_one_subject_is_refused():
    split = make_split(["A", "B"], SplitConfig(test_subjects=("B",)), 0)
    assert split.train == ("A",) and split.val == () and split.test == ("B",)
    assert split.val_block_share == pytest.approx(0.2) and split.as_dict()["val_block_share"] == 0.2
    sets = partition([leg("A", "l", "none", n=400), leg("B", "l", "none", n=400)], split, 0.5, gap=16)
    (train,), (val,) = sets["train"], sets["val"]
    assert train.inputs.shape[0] == 320 and val.inputs.shape[0] == 400 - 320 - 16
    assert train.time_s[-1] + 16 / 100.0 < val.time_s[0] + 1e-9
    # Trials too short to cut (single steps): the last trials by id are held out whole, both legs.
    steps = [leg("A", side, "none", n=120) for _ in range(5) for side in "lr"]
    steps = [LegSequence(s.subject_id, f"step{i // 2}", *vars_of(s)) for i, s in enumerate(steps)]
    short_sets = partition([*steps, leg("B", "l", "none", n=120)], split, 0.5, gap=32)
    assert sorted({s.trial_id for s in short_sets["val"]}) == ["step4"] and len(short_sets["val"]) == 2
    assert len(short_sets["train"]) == 8 and not {s.trial_id for s in short_sets["train"]} & {"step4"}
    from forcecast.lab.dataset import DatasetError

    with pytest.raises(DatasetError, match=r"1 subject\(s\) with force data \(A\)"):
        make_split(["A"], SplitConfig(), 0)


def test_short_sequences_are_padded_or_skipped_never_lost_silently():
    short = leg("A", "r", "none", n=10)
    short.targets[:, 0] = 1.0
    config = DataConfig(window=32, out_len=4, delay=2)
    kept, padded, skipped = fit_short_sequences([short, leg("A", "l", "none", n=64)], config)
    assert padded == ["A/walk/r"] and skipped == []
    padded_seq = kept[0]
    assert padded_seq.inputs.shape[0] == 10 + 32 - 2 - 4
    assert np.all(np.isnan(padded_seq.targets[:26])) and np.all(padded_seq.targets[26:, 0] == 1.0)
    assert np.all(np.diff(padded_seq.time_s) > 0)
    c = contract_for(None, window=32)
    c = ModelContract(100.0, ("pelvis",), 32, 4, 2, (), c.inputs, None, c.targets)
    src = WindowSource([padded_seq], c, use_static=False)
    assert len(src) > 0 and not src.unused
    _, _, skipped = fit_short_sequences([short], DataConfig(window=32, out_len=4, delay=2, short_trials="skip"))
    assert skipped == ["A/walk/r"]


def test_training_length_has_a_floor_in_gradient_steps():
    assert steps_per_epoch(n_windows=300, batch_size=128, stride=16, epochs=30, min_steps=600) == 20
    assert steps_per_epoch(n_windows=10**6, batch_size=128, stride=16, epochs=30, min_steps=600) == 489
    assert steps_per_epoch(n_windows=5, batch_size=128, stride=16, epochs=4, min_steps=0) == 1


@pytest.mark.tf
def test_augmentation_rotates_each_sensor_rigidly_and_is_seeded():
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    n = 200
    inputs = rng.normal(0.0, 3.0, (n, 12)).astype(np.float32)
    seq = LegSequence("A", "walk", "r", inputs, np.zeros((n, 3), np.float32), np.zeros(6), 700.0, np.arange(n) / 100)
    mean, std = tuple(rng.normal(0, 1, 12).tolist()), tuple(rng.uniform(1, 2, 12).tolist())
    contract = ModelContract(
        100.0,
        ("pelvis", "ipsi_shank"),
        32,
        4,
        2,
        (),
        Normalisation(mean, std),
        None,
        Normalisation((0.0,) * 3, (1.0,) * 3),
    )
    from forcecast.training.windows import make_batches

    src = WindowSource([seq], contract, use_static=False)

    def first_batch(augment, seed=0):
        (x,), y = next(iter(make_batches(src, 16, 1, seed, True, steps=5, augment=augment)))
        return x.numpy() * np.asarray(std) + np.asarray(mean), y.numpy()

    plain, _ = first_batch(None)
    rotated, _ = first_batch(AugmentConfig(rotation_deg=20.0))
    assert not np.allclose(plain, rotated, atol=1e-3)
    for k in range(4):  # each triplet (acc, gyr of each sensor) keeps its length: a rotation
        block = slice(3 * k, 3 * k + 3)
        np.testing.assert_allclose(
            np.linalg.norm(rotated[..., block], axis=-1), np.linalg.norm(plain[..., block], axis=-1), rtol=1e-4
        )
    again, _ = first_batch(AugmentConfig(rotation_deg=20.0))
    np.testing.assert_array_equal(rotated, again)
    other_seed, _ = first_batch(AugmentConfig(rotation_deg=20.0), seed=1)
    assert not np.allclose(other_seed, rotated)
    warped, y = first_batch(AugmentConfig(time_warp=0.1, noise_sd=0.05, magnitude_sd=0.05))
    assert warped.shape == plain.shape and y.shape == (16, 4, 3) and np.all(np.isfinite(warped))


# --- training end to end on awkward data ----------------------------------------------------------


def _edit(path: Path, change) -> None:
    table = pd.read_csv(path)
    change(table)
    table.to_csv(path, index=False)


def _overground(root: Path) -> None:
    """Every other stance of each leg unknown (NaN, off the plates); swing stays 0 N (known)."""
    for path in root.glob("trials/*/walk_*.force.csv"):

        def change(t: pd.DataFrame) -> None:
            for side in "lr":
                v = t[f"{side}_grf_v"].to_numpy()
                loaded = (v > 20.0).astype(np.int8)
                starts = np.flatnonzero(np.diff(np.concatenate([[0], loaded])) == 1)
                stops = np.flatnonzero(np.diff(np.concatenate([loaded, [0]])) == -1) + 1
                for a, b in list(zip(starts, stops, strict=True))[::2]:
                    t.loc[a : b - 1, [f"{side}_grf_{x}" for x in ("v", "ap", "ml")]] = np.nan
                t.loc[loaded == 0, [f"{side}_grf_{x}" for x in ("v", "ap", "ml")]] = 0.0

        _edit(path, change)


def _train(root: Path, tmp_path: Path, *extra: str) -> tuple[int, Path]:
    config = write_config(tmp_path / "tiny.toml", TINY_TOML)
    run = tmp_path / "run"
    return train(root, run, config, "--json", *extra), run


@pytest.mark.tf
def test_overground_data_with_unknown_stance_trains_and_reports_stance_only(dataset_copy, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    _overground(dataset_copy)
    _edit(
        dataset_copy / "subjects.csv",
        lambda t: t.__setitem__("body_mass_source", ["measured", "measured", "estimated_force"]),
    )
    _edit(dataset_copy / "trials/S01/static.force.csv", lambda t: t.__setitem__("l_grf_v", np.nan))
    for axis in ("ap", "ml"):
        _edit(dataset_copy / "trials/S01/static.force.csv", lambda t, a=axis: t.__setitem__(f"l_grf_{a}", np.nan))
    with pytest.warns(TrainingDataWarning, match="S01/static/l: force unknown"):
        code, run = _train(dataset_copy, tmp_path, "--test-subjects", "S02")
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"sequence": "S01/static/l", "reason": "force unknown (NaN) throughout for this leg"} in metrics["dropped"]
    history = pd.read_csv(run / "history.csv")
    assert np.all(np.isfinite(history["loss"])) and np.all(np.isfinite(history["val_loss"]))
    naive = metrics["subject_naive"]["pooled"]
    assert 0 < naive["stance_axes"]["v"]["n_samples"] < naive["axes"]["v"]["n_samples"]
    assert metrics["gradient_steps"] >= 6 and metrics["steps_per_epoch"] >= 3
    card = (run / "model_card.md").read_text()
    assert (
        "stance-only" in card
        and "S01/static/l" in card
        and "Body mass: measured for 2 subject(s), estimated from force for 1 (S03: estimated_force)" in card
    )


@pytest.mark.tf
def test_two_subjects_train(dataset_copy, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    shutil.rmtree(dataset_copy / "trials" / "S03")
    subjects = pd.read_csv(dataset_copy / "subjects.csv")
    subjects[subjects.subject_id != "S03"].to_csv(dataset_copy / "subjects.csv", index=False)
    code, run = _train(dataset_copy, tmp_path, "--seed", "1")
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"]["val"] == [] and metrics["split"]["val_block_share"] == 0.2
    assert len(metrics["split"]["train"]) == 1 and len(metrics["split"]["test"]) == 1
    assert "validation" in metrics and metrics["validation"]["subjects"] == metrics["split"]["train"]
    assert "two subjects" in (run / "model_card.md").read_text()


def _truncate(root: Path, subject: str, trial: str, seconds: float) -> None:
    for path in (root / "trials" / subject).glob(f"{trial}.*.csv"):
        table = pd.read_csv(path)
        table[table.time_s < table.time_s.iloc[0] + seconds].to_csv(path, index=False)


@pytest.mark.tf
def test_trials_just_over_and_under_one_window_train_and_make_a_card(dataset_copy, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    _truncate(dataset_copy, "S02", "walk_comfortable", 0.36)  # just over the 32-sample window
    _truncate(dataset_copy, "S02", "static", 0.2)  # under it: padded
    with pytest.warns(TrainingDataWarning, match="front-padded"):
        code, run = _train(dataset_copy, tmp_path, "--test-subjects", "S02")
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(metrics["padded_short_sequences"]) == ["S02/static/l", "S02/static/r"]
    assert metrics["subject_naive"]["n_windows"] > 0
    assert list(run.glob("example_S02_*.png")) and "S02" in (run / "model_card.md").read_text()


@pytest.mark.tf
def test_extreme_force_and_all_nan_force_give_a_clear_error_naming_the_trial(dataset_copy, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    huge = tmp_path / "huge"
    shutil.copytree(dataset_copy, huge)
    _edit(
        huge / "trials/S03/walk_comfortable.force.csv", lambda t: t.__setitem__("r_grf_ap", t["r_grf_ap"] * 0 + 1e300)
    )
    code, _ = _train(huge, tmp_path / "a")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "trials/S03/walk_comfortable.force.csv" in err and "physically impossible" in err and "r_grf_ap" in err

    table = pd.read_csv(dataset_copy / "trials/S02/static.force.csv")
    table.iloc[:, 1:] = np.nan
    table.to_csv(dataset_copy / "trials/S02/static.force.csv", index=False)
    code, _ = _train(dataset_copy, tmp_path / "b")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "S02/static.force.csv" in err and "every force sample is NaN" in err
