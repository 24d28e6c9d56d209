"""From a format-v1 dataset to per-leg sequences at the model rate, with edge's own DSP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge.dataset import Dataset, DatasetError, Problem, Subject, check_dataset, resample_trial
from edge.features import leg_inputs, static_features
from edge.schema import GRAVITY_MPS2
from training.config import DataConfig

Progress = Callable[[Iterable[object], int], Iterator[object]]


@dataclass(frozen=True)
class LegSequence:
    """One leg of one trial at the model rate.

    Attributes
    ----------
    subject_id, trial_id, side
        Where it comes from (``side`` is ``l`` or ``r``).
    inputs
        Model channels (mirrored for the left leg), shape ``(n, channels)``, physical units.
    targets
        GRF of this leg in body weights (v, ap, ml), shape ``(n, 3)``; NaN where not measured.
    static
        Static feature vector (``edge.features.STATIC_FEATURES`` order), physical units.
    body_weight_n
        For converting errors to newtons.
    time_s
        Sample times.
    """

    subject_id: str
    trial_id: str
    side: str
    inputs: NDArray[np.float32]
    targets: NDArray[np.float32]
    static: NDArray[np.float64]
    body_weight_n: float
    time_s: NDArray[np.float64]

    @property
    def key(self) -> str:
        """``subject/trial/side``."""
        return f"{self.subject_id}/{self.trial_id}/{self.side}"

    def part(self, start: int, stop: int) -> LegSequence:
        """Samples ``[start, stop)`` as a new sequence."""
        return LegSequence(
            self.subject_id,
            self.trial_id,
            self.side,
            self.inputs[start:stop],
            self.targets[start:stop],
            self.static,
            self.body_weight_n,
            self.time_s[start:stop],
        )


@dataclass(frozen=True)
class LoadedData:
    """Sequences plus what the model card needs about their origin."""

    sequences: list[LegSequence]
    subjects: dict[str, Subject]
    fingerprint: str
    root: Path


def load_sequences(root: Path, config: DataConfig, progress: Progress | None = None) -> LoadedData:
    """Validate a dataset and turn every trial with force into two leg sequences.

    Raises
    ------
    DatasetError
        If the dataset has errors, has no trial with force data, or lacks a channel the model needs
        (naming the trial and the channel).
    """
    report = check_dataset(root)
    if not report.ok:
        raise DatasetError(report.errors)
    dataset = Dataset.open(root)
    refs = [r for r in dataset.trials if config.include_static_trials or r.trial_id != "static"]
    if not refs:
        raise DatasetError([Problem(str(root), "the dataset has no trials to train on")])
    sequences: list[LegSequence] = []
    problems: list[Problem] = []
    iterator: Iterable[object] = progress(refs, len(refs)) if progress else refs
    for ref in iterator:
        trial = dataset.load(ref)  # type: ignore[arg-type]
        if trial.force is None:
            continue
        aligned = resample_trial(trial, config.rate_hz)
        subject = dataset.subjects[trial.subject_id]
        for side in ("l", "r"):
            force_columns = [f"{side}_grf_{a}" for a in ("v", "ap", "ml")]
            if not all(c in aligned.force.columns for c in force_columns):  # type: ignore[union-attr]
                continue
            try:
                inputs = leg_inputs(aligned.imu.columns, aligned.imu.values, config.leg_places, side)
            except KeyError as exc:
                problems.append(
                    Problem(
                        f"trials/{trial.subject_id}/{trial.trial_id}",
                        f"{exc.args[0]}, needed by leg_places = {list(config.leg_places)}",
                    )
                )
                break
            targets = aligned.force.select(tuple(force_columns)).values / subject.body_weight_n  # type: ignore[union-attr]
            sequences.append(
                LegSequence(
                    trial.subject_id,
                    trial.trial_id,
                    side,
                    inputs.astype(np.float32),
                    targets.astype(np.float32),
                    static_features(
                        subject.hka_deg, subject.affected_side, subject.body_mass_kg, subject.height_m, side
                    ),
                    subject.body_mass_kg * GRAVITY_MPS2,
                    aligned.imu.time_s,
                )
            )
    if problems:
        raise DatasetError(problems)
    if not sequences:
        raise DatasetError([Problem(str(root), "no trial has force data for both an IMU set and a leg")])
    return LoadedData(sequences, dataset.subjects, fingerprint(root, [p for r in refs for p in r.paths]), root)


def fingerprint(root: Path, files: list[Path]) -> str:
    """SHA-256 over ``subjects.csv`` and the trial files used (names and bytes), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted([root / "subjects.csv", *files]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
