"""Subject-wise splits: nobody is in two of train, validation and subject-naive test.

A fourth group, the *subject-exposed* subjects, gives part of each of their trials to training and
is tested on the rest, so one run reports both accuracies the literature asks for: subject-naive
(people never seen) and subject-exposed (people seen, but not that stretch of walking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import ConfigError
from edge.dataset import DatasetError, Problem
from training.config import SplitConfig
from training.data import LegSequence

MIN_SUBJECTS = 3


@dataclass(frozen=True)
class Split:
    """Which subjects go where."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    exposed: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        """For JSON and the model card."""
        return {
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "exposed": list(self.exposed),
        }


def make_split(subject_ids: list[str], config: SplitConfig, seed: int) -> Split:
    """Draw a subject-wise split (deterministic for a seed).

    Raises
    ------
    ConfigError
        If a requested test subject is not in the data.
    DatasetError
        If there are too few subjects for train, validation and test.
    """
    subjects = sorted(set(subject_ids))
    unknown = [s for s in config.test_subjects if s not in subjects]
    if unknown:
        raise ConfigError(
            f"test subject(s) {', '.join(unknown)} not in the dataset (subjects with force data: {', '.join(subjects)})"
        )
    if len(subjects) < MIN_SUBJECTS:
        raise DatasetError(
            [
                Problem(
                    "dataset",
                    f"{len(subjects)} subject(s) with force data: a subject-wise split "
                    f"needs at least {MIN_SUBJECTS} (train, validation, test)",
                )
            ]
        )
    rng = np.random.default_rng(seed)
    n = len(subjects)
    if config.test_subjects:
        test = list(config.test_subjects)
    else:
        order = [subjects[i] for i in rng.permutation(n)]
        test = order[: max(1, round(config.test_fraction * n))]
    rest = [s for s in subjects if s not in test]
    if len(rest) < 2:
        raise DatasetError(
            [
                Problem(
                    "dataset",
                    f"after {len(test)} test subject(s) only {len(rest)} remain(s); "
                    "need at least 2 for training and validation",
                )
            ]
        )
    rest = [rest[i] for i in rng.permutation(len(rest))]
    n_val = min(max(1, round(config.val_fraction * n)), len(rest) - 1)
    val, rest = rest[:n_val], rest[n_val:]
    n_exposed = min(round(config.exposed_fraction * n), len(rest) - 1)
    exposed, train = rest[:n_exposed], rest[n_exposed:]
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)), tuple(sorted(exposed)))


def partition(
    sequences: list[LegSequence], split: Split, exposed_train_share: float, gap: int
) -> dict[str, list[LegSequence]]:
    """Sequences of each set: ``train``, ``val``, ``test`` (naive) and ``exposed`` (exposed test).

    An exposed subject's sequence is cut in time: the leading ``exposed_train_share`` trains, the
    rest after ``gap`` samples (one window, so no window straddles both) is tested.
    """
    sets: dict[str, list[LegSequence]] = {"train": [], "val": [], "test": [], "exposed": []}
    for seq in sequences:
        if seq.subject_id in split.train:
            sets["train"].append(seq)
        elif seq.subject_id in split.val:
            sets["val"].append(seq)
        elif seq.subject_id in split.test:
            sets["test"].append(seq)
        elif seq.subject_id in split.exposed:
            n = seq.inputs.shape[0]
            cut = round(exposed_train_share * n)
            if cut > gap:
                sets["train"].append(seq.part(0, cut))
            if n - (cut + gap) > gap:
                sets["exposed"].append(seq.part(cut + gap, n))
    return sets
