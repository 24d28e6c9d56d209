"""From a format-v1 dataset to per-leg sequences at the model rate, with edge's own DSP."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.dsp.segment_alignment import settings_for
from forcecast.edge.features import leg_inputs, static_features
from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset import Dataset, DatasetError, Problem, Subject, check_dataset, resample_trial
from forcecast.training.alignment import align_trial, fit_session_alignments, model_places, tracked
from forcecast.training.config import DataConfig

Progress = Callable[[Iterable[object], int], Iterator[object]]


class TrainingDataWarning(UserWarning):
    """Data left out of (or changed for) training, named: nothing is dropped silently."""


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
        GRF of this leg in body weights (v, ap, ml), shape ``(n, 3)``; NaN where unknown (overground
        stance off the plates), 0 where known to be unloaded (swing).
    static
        Static feature vector (``forcecast.edge.features.STATIC_FEATURES`` order), physical units.
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
    """Sequences plus what the model card needs about their origin.

    Attributes
    ----------
    dropped
        One entry per leg sequence left out, ``{"sequence": "S01/walk/l", "reason": ...}``.
    padded
        Keys of sequences shorter than the window that were front-padded (``short_trials = "pad"``).
    imu_only_trials
        Trials without force (not training data; counted, not dropped silently).
    """

    sequences: list[LegSequence]
    subjects: dict[str, Subject]
    fingerprint: str
    root: Path
    dropped: list[dict[str, str]] = field(default_factory=list)
    padded: list[str] = field(default_factory=list)
    imu_only_trials: int = 0


def load_sequences(root: Path, config: DataConfig, progress: Progress | None = None) -> LoadedData:
    """Validate a dataset and turn every trial with force into two leg sequences.

    IMU-only trials (e.g. static trials kept by ``data import``) give no sequence, hence no window and no
    normalisation constant; with a segment alignment they (like every trial) feed the subject's estimate,
    and the fingerprint covers them.

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
    alignments = (
        fit_session_alignments(
            dataset,
            dataset.trials,
            config.rate_hz,
            model_places(config.leg_places),
            settings=settings_for(config.alignment),
        )
        if config.alignment != "none"
        else None
    )
    sequences: list[LegSequence] = []
    problems: list[Problem] = []
    dropped: list[dict[str, str]] = []
    imu_only = 0
    for ref in tracked(refs, progress):
        trial = dataset.load(ref)
        if trial.force is None:
            imu_only += 1
            continue
        if not np.isfinite(trial.force.values).any():
            problems.append(
                Problem(
                    trial.force.source or f"trials/{trial.subject_id}/{trial.trial_id}",
                    "every force sample is NaN (unknown): nothing to train on; remove its force columns/file "
                    "to keep it as an IMU-only trial, or mark known swing phases as 0 N",
                )
            )
            continue
        aligned = resample_trial(trial, config.rate_hz)
        if alignments is not None:  # into segment frames, before leg_inputs mirrors the left leg
            aligned = align_trial(aligned, alignments[trial.subject_id])
        subject = dataset.subjects[trial.subject_id]
        force = aligned.force
        assert force is not None  # resampling and alignment keep the force the trial has
        for side in ("l", "r"):
            force_columns = [f"{side}_grf_{a}" for a in ("v", "ap", "ml")]
            if not all(c in force.columns for c in force_columns):
                dropped.append(
                    {
                        "sequence": f"{trial.subject_id}/{trial.trial_id}/{side}",
                        "reason": f"no force columns {', '.join(force_columns)}",
                    }
                )
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
            targets = force.select(tuple(force_columns)).values / subject.body_weight_n
            if not np.isfinite(targets).any():
                dropped.append(
                    {
                        "sequence": f"{trial.subject_id}/{trial.trial_id}/{side}",
                        "reason": "force unknown (NaN) throughout for this leg",
                    }
                )
                continue
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
    sequences, padded, short = fit_short_sequences(sequences, config)
    dropped += [{"sequence": key, "reason": f"shorter than the {config.window}-sample window"} for key in short]
    for entry in dropped:
        warnings.warn(f"left out of training: {entry['sequence']}: {entry['reason']}", TrainingDataWarning, 2)
    if padded:
        warnings.warn(
            f"{len(padded)} leg sequence(s) shorter than the {config.window}-sample window were front-padded "
            f"with their first sample (targets unknown there): {', '.join(padded[:10])}"
            + (f" and {len(padded) - 10} more" if len(padded) > 10 else ""),
            TrainingDataWarning,
            2,
        )
    if not sequences:
        raise DatasetError([Problem(str(root), "no trial has force data for both an IMU set and a leg")])
    return LoadedData(
        sequences,
        dataset.subjects,
        fingerprint(root, [p for r in (dataset.trials if alignments is not None else refs) for p in r.paths]),
        root,
        dropped,
        padded,
        imu_only,
    )


def fit_short_sequences(
    sequences: list[LegSequence], config: DataConfig
) -> tuple[list[LegSequence], list[str], list[str]]:
    """Handle sequences shorter than the window as ``config.short_trials`` says.

    Returns
    -------
    sequences, padded, skipped
        The sequences to use, and the keys of those padded and of those skipped.
    """
    out, padded, skipped = [], [], []
    for seq in sequences:
        n = seq.inputs.shape[0]
        if n >= config.window:
            out.append(seq)
        elif config.short_trials == "skip":
            skipped.append(seq.key)
        else:
            out.append(pad_front(seq, max(config.window - config.delay - config.out_len, config.window - n)))
            padded.append(seq.key)
    return out, padded, skipped


def pad_front(seq: LegSequence, count: int) -> LegSequence:
    """``seq`` with ``count`` samples before it: inputs repeat its first finite sample, targets unknown (NaN)."""
    finite = np.flatnonzero(np.all(np.isfinite(seq.inputs), axis=1))
    first = seq.inputs[finite[0] if finite.size else 0]
    step = float(np.median(np.diff(seq.time_s))) if seq.time_s.size > 1 else 0.01
    return LegSequence(
        seq.subject_id,
        seq.trial_id,
        seq.side,
        np.concatenate([np.repeat(first[None, :], count, axis=0), seq.inputs]).astype(np.float32),
        np.concatenate([np.full((count, 3), np.nan, dtype=np.float32), seq.targets]),
        seq.static,
        seq.body_weight_n,
        np.concatenate([seq.time_s[0] - step * np.arange(count, 0, -1), seq.time_s]),
    )


def fingerprint(root: Path, files: list[Path]) -> str:
    """SHA-256 over ``subjects.csv`` and the trial files used (names and bytes), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted([root / "subjects.csv", *files]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
