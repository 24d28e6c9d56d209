"""Segment alignment of a dataset's trials, with the device's own estimator.

The estimator is :mod:`forcecast.edge.dsp.segment_alignment`.

One estimate per sensor and subject session: every trial of a subject (walking, static, with or without
force) feeds one :class:`~forcecast.edge.dsp.segment_alignment.SegmentAligner` per place at the model rate, as the
device feeds it chunk by chunk, and the result rotates all of that subject's trials. A subject is one
session in format v1 (sensors strapped on once); with ``segment_v1`` static trials (IMU-only is enough)
give gravity from standing, walking trials the medio-lateral axis and the direction of progression; with
``segment_v1_walking`` gravity comes from the walking posture (for datasets without static trials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import numpy as np

from forcecast.edge.dsp.resample import resample
from forcecast.edge.dsp.segment_alignment import (
    DEFAULT_SETTINGS,
    AlignmentSettings,
    SegmentAligner,
    SegmentAlignment,
    apply_alignment,
)
from forcecast.edge.features import sensor_place
from forcecast.edge.schema import SENSOR_AXES, imu_column
from forcecast.lab.dataset import Dataset, DatasetError, Problem
from forcecast.lab.dataset.trial import Trial, TrialRef

Progress = Callable[[Iterable[object], int], Iterator[object]]


def tracked(refs: list[TrialRef], progress: Progress | None) -> Iterator[TrialRef]:
    """The trials ``refs`` in order, shown by ``progress`` (when given) as they go by."""
    if progress is None:
        return iter(refs)
    return (ref for ref, _ in zip(refs, progress(refs, len(refs)), strict=True))


def model_places(leg_places: tuple[str, ...]) -> list[str]:
    """Dataset places a model with ``leg_places`` reads, for either leg."""
    return list(dict.fromkeys(sensor_place(p, side) for side in ("r", "l") for p in leg_places))


def fit_session_alignments(
    dataset: Dataset,
    refs: list[TrialRef],
    rate_hz: float,
    places: list[str],
    progress: Progress | None = None,
    settings: AlignmentSettings = DEFAULT_SETTINGS,
) -> dict[str, dict[str, SegmentAlignment]]:
    """Estimate every subject's sensor rotations from all of the subject's trials.

    Parameters
    ----------
    dataset, refs
        The dataset and the trials to learn from (all trials of a subject should be given, static ones too).
    rate_hz
        The model rate (the trials' IMU data are resampled to it with the device's causal resampler).
    places
        Places to estimate (those the model reads).
    progress
        Progress wrapper over the trials.
    settings
        The estimator's settings (``settings_for(alignment)``).

    Returns
    -------
    dict
        ``subject_id -> place -> SegmentAlignment`` (converged).

    Raises
    ------
    DatasetError
        Naming each subject and sensor whose estimate did not converge, and why.
    """
    aligners: dict[str, dict[str, SegmentAligner]] = {}
    for ref in tracked(refs, progress):
        trial = dataset.load(ref)
        index = {c: i for i, c in enumerate(trial.imu.columns)}
        present = [p for p in places if all(imu_column(p, k, a) in index for k in ("acc", "gyr") for a in SENSOR_AXES)]
        if not present:
            continue
        _, values = resample(trial.imu.time_s, trial.imu.values, rate_hz, causal=True)
        mine = aligners.setdefault(trial.subject_id, {})
        gap = np.full((1, 3), np.nan)  # trials do not join: a NaN row ends standing bouts and jerk windows
        for place in present:
            aligner = mine.setdefault(place, SegmentAligner(place, rate_hz, settings))
            acc = values[:, [index[imu_column(place, "acc", a)] for a in SENSOR_AXES]]
            gyr = values[:, [index[imu_column(place, "gyr", a)] for a in SENSOR_AXES]]
            aligner.update(np.vstack([acc, gap]), np.vstack([gyr, gap]))
    results: dict[str, dict[str, SegmentAlignment]] = {}
    problems = []
    for subject_id, mine in sorted(aligners.items()):
        results[subject_id] = {place: aligner.result() for place, aligner in mine.items()}
        for result in results[subject_id].values():
            if not result.converged:
                problems.append(
                    Problem(f"trials/{subject_id}", f"segment alignment ([data] alignment): {result.reason}")
                )
    if problems:
        raise DatasetError(problems)
    return results


def align_trial(trial: Trial, results: dict[str, SegmentAlignment]) -> Trial:
    """``trial`` with the IMU data of every place in ``results`` rotated into its segment frame."""
    columns = trial.imu.columns
    mine = {p: r for p, r in results.items() if imu_column(p, "acc", "x") in columns}
    values = apply_alignment(columns, trial.imu.values, mine)
    return replace(trial, imu=replace(trial.imu, values=values))
