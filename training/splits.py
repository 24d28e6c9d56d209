"""Subject-wise splits: nobody is in two of train, validation and subject-naive test.

A fourth group, the *subject-exposed* subjects, gives part of each of their trials to training and
is tested on the rest, so one run reports both accuracies the literature asks for: subject-naive
(people never seen) and subject-exposed (people seen, but not that stretch of walking).

Subjects are drawn stratified by affected side and group, so a set is not left with one kind of
person by chance. Two subjects are enough: one trains (its sequences' trailing block validates), one
is the naive test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from forcecast.edge.config import ConfigError
from forcecast.lab.dataset import DatasetError, Problem, Subject
from forcecast.training.config import SplitConfig, TrainConfig
from forcecast.training.data import LegSequence, LoadedData

MIN_SUBJECTS = 2


@dataclass(frozen=True)
class Split:
    """Which subjects go where.

    ``val_block_share`` is 0 when validation subjects exist; with only two subjects it is the
    trailing share of each training sequence held out (after a one-window gap) as validation.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    exposed: tuple[str, ...]
    val_block_share: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """For JSON and the model card."""
        return {
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "exposed": list(self.exposed),
            "val_block_share": self.val_block_share,
        }


def subject_strata(subjects: Mapping[str, Subject]) -> dict[str, str]:
    """Stratum of each subject: affected side, plus ``group`` from subjects.csv when present."""
    return {sid: f"{s.affected_side}/{s.extra.get('group', '')}".rstrip("/") for sid, s in subjects.items()}


def _interleaved(subjects: list[str], strata: Mapping[str, str], rng: np.random.Generator) -> list[str]:
    """A random order in which every stratum is spread evenly (systematic sampling per stratum).

    Member ``i`` of a stratum of ``k`` gets the key ``(i + u) / k`` with one random offset ``u`` per
    stratum; sorting by key interleaves the strata in proportion, so any leading slice of the order
    holds about its share of each stratum.
    """
    groups: dict[str, list[str]] = {}
    for sid in subjects:
        groups.setdefault(strata.get(sid, ""), []).append(sid)
    keyed = []
    for label in sorted(groups):
        members = [groups[label][i] for i in rng.permutation(len(groups[label]))]
        offset = rng.random()
        keyed += [((i + offset) / len(members), rng.random(), sid) for i, sid in enumerate(members)]
    return [sid for *_, sid in sorted(keyed)]


def make_split(
    subject_ids: list[str], config: SplitConfig, seed: int, strata: Mapping[str, str] | None = None
) -> Split:
    """Draw a subject-wise split (deterministic for a seed), stratified by ``strata`` when given.

    With two subjects one trains and one is the subject-naive test; validation is then a held-out
    block of the training subject's sequences (:attr:`Split.val_block_share`).

    Raises
    ------
    ConfigError
        If a requested test subject is not in the data.
    DatasetError
        If there are too few subjects (fewer than two, or no one left to train on).
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
                    f"{len(subjects)} subject(s) with force data ({', '.join(subjects) or 'none'}): a subject-wise "
                    f"split needs at least {MIN_SUBJECTS} (one to train on, one never seen to test on)",
                )
            ]
        )
    rng = np.random.default_rng(seed)
    strata = strata or {}
    n = len(subjects)
    if config.test_subjects:
        test = list(config.test_subjects)
    else:
        test = _interleaved(subjects, strata, rng)[: max(1, round(config.test_fraction * n))]
    rest = [s for s in subjects if s not in test]
    if not rest:
        raise DatasetError([Problem("dataset", f"all {n} subject(s) are test subjects; none is left to train on")])
    if len(rest) == 1:
        return Split(tuple(rest), (), tuple(sorted(test)), (), config.val_block_share)
    rest = _interleaved(rest, strata, rng)
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
    rest after ``gap`` samples (one window, so no window straddles both) is tested. With
    ``split.val_block_share`` > 0 (two subjects) each training subject gives a validation block
    (:func:`validation_block`).
    """
    sets: dict[str, list[LegSequence]] = {"train": [], "val": [], "test": [], "exposed": []}
    for seq in sequences:
        if seq.subject_id in split.train:
            if split.val_block_share == 0:
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
    if split.val_block_share > 0:
        for subject in split.train:
            train, val = validation_block([s for s in sequences if s.subject_id == subject], split.val_block_share, gap)
            sets["train"] += train
            sets["val"] += val
    return sets


def validation_block(
    sequences: list[LegSequence], share: float, gap: int
) -> tuple[list[LegSequence], list[LegSequence]]:
    """Split one training subject's sequences into training and a held-out validation block.

    When every sequence is long enough, each is cut in time: its trailing ``share`` (after ``gap``
    samples, so no window straddles both) validates. Otherwise (short trials, e.g. single steps)
    whole trials are held out: the last ``share`` of the subject's trials by trial id (at least one,
    both legs), as long as one trial is left to train on.
    """
    cuts = [round((1.0 - share) * s.inputs.shape[0]) for s in sequences]
    if all(c > gap and s.inputs.shape[0] - (c + gap) > gap for s, c in zip(sequences, cuts, strict=True)):
        return (
            [s.part(0, c) for s, c in zip(sequences, cuts, strict=True)],
            [s.part(c + gap, s.inputs.shape[0]) for s, c in zip(sequences, cuts, strict=True)],
        )
    trials = sorted({s.trial_id for s in sequences})
    if len(trials) < 2:
        return sequences, []
    held = set(trials[-min(len(trials) - 1, max(1, round(share * len(trials)))) :])
    return [s for s in sequences if s.trial_id not in held], [s for s in sequences if s.trial_id in held]


def split_sequences(loaded: LoadedData, config: TrainConfig) -> tuple[Split, dict[str, list[LegSequence]]]:
    """The run's split (stratified by affected side and group) and its sets; training and quantize share it."""
    split = make_split(
        [s.subject_id for s in loaded.sequences], config.split, config.fit.seed, subject_strata(loaded.subjects)
    )
    return split, partition(loaded.sequences, split, config.split.exposed_train_share, gap=config.data.window)
