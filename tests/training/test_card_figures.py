"""The model card's figures: each written, referenced in model_card.md, and coping with unknown (NaN) force."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tiny_training import tiny_toml, train, write_config

from forcecast.training.card_figures import (
    BLAND_ALTMAN_FILE,
    LOSS_FILE,
    PER_SUBJECT_FILE,
    SCATTER_FILE,
    STANCE_FILE,
    first_peaks,
    known_pairs,
    read_history,
    stance_curves,
)
from forcecast.training.data import LegSequence

FIGURES = (LOSS_FILE, SCATTER_FILE, BLAND_ALTMAN_FILE, PER_SUBJECT_FILE, STANCE_FILE)
RATE = 100.0


def _walk(seconds: float = 6.0, side: str = "r") -> LegSequence:
    """A leg sequence with half-sine stances of 0.6 s every second (vertical 1 BW, small ap/ml)."""
    t = np.arange(0.0, seconds, 1.0 / RATE)
    phase = t % 1.0
    v = np.where(phase < 0.6, np.sin(np.pi * phase / 0.6), 0.0)
    targets = np.stack([v, 0.1 * v * np.cos(np.pi * phase / 0.6), 0.02 * v], axis=1).astype(np.float32)
    return LegSequence(
        subject_id="S01",
        trial_id="walk",
        side=side,
        time_s=t,
        inputs=np.zeros((len(t), 6), np.float32),
        targets=targets,
        static=np.zeros(3, np.float64),
        body_weight_n=700.0,
    )


def test_known_pairs_and_stances_skip_unknown_force() -> None:
    seq = _walk()
    pred = seq.targets.astype(np.float64) + 0.05
    pred[:50] = np.nan  # before the first full window
    seq.targets[250:270] = np.nan  # an unknown stretch inside the third stance
    measured, predicted = known_pairs([(seq, pred)])
    assert len(measured) == len(seq.targets) - 50 - 20
    assert np.isfinite(measured).all() and np.isfinite(predicted).all()
    curves_m, curves_p = stance_curves([(seq, pred)], RATE, "r")
    # six stances; the first starts at t = 0 (not complete), the first predicted one lacks its start, one is cut
    assert 0 < len(curves_m) < 6 and curves_m.shape[1:] == (101, 3)
    assert np.allclose(curves_p - curves_m, 0.05, atol=0.02)
    assert stance_curves([(seq, pred)], RATE, "l")[0].shape == (0, 101, 3)  # no left leg given


def test_first_peaks_are_per_step_maxima_of_the_first_half() -> None:
    seq = _walk()
    v = seq.targets[:, 0].astype(np.float64)
    measured, predicted = first_peaks(v * 1.1, v, RATE)
    assert len(measured) == len(predicted) >= 4
    assert np.allclose(predicted, 1.1 * measured)
    assert first_peaks(np.full_like(v, np.nan), v, RATE)[0].size == 0  # no prediction: no step


def test_read_history_names_a_bad_cell(tmp_path: Path) -> None:
    good = tmp_path / "history.csv"
    good.write_text("epoch,loss,val_loss\n0,1.5,1.2\n1,0.9,0.8\n")
    assert read_history(good)["val_loss"] == [1.2, 0.8]
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss,val_loss\n0,1.5,oops\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 2, column 'val_loss': 'oops'"):
        read_history(bad)
    no_loss = tmp_path / "none.csv"
    no_loss.write_text("epoch,acc\n0,1\n")
    with pytest.raises(ValueError, match="no 'loss' column"):
        read_history(no_loss)


@pytest.mark.tf
def test_every_card_figure_is_written_and_referenced(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    config = write_config(tmp_path / "tiny.toml", tiny_toml(min_steps=6))
    run = tmp_path / "run"
    assert train(tiny_dataset, run, config, "--test-subjects", "S02", "--seed", "3", "--json") == 0
    card = (run / "model_card.md").read_text()
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card))
    for name in FIGURES:
        assert (run / name).stat().st_size > 10_000, name  # a drawn figure, not an empty canvas
        assert name in referenced, name
    assert all((run / name).is_file() for name in referenced)  # nothing referenced that is not there
    assert "Bland–Altman" in card and "stance" in card
