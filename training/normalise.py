"""Normalisation constants of a run, fitted on its training sequences only, with guards for real data.

- IMU inputs and targets: mean and SD over finite samples (unknown targets are NaN and do not
  count). Statistics that are not finite or beyond what a device contract accepts (a 1e30 spike)
  stop the run with an error naming the channel and the sequence with the largest value, instead of
  silently zeroing that channel.
- Static features: the 0/1 flags (:data:`BINARY_STATIC`) are not z-scored (mean 0, SD 1), so the
  device's one formula ``(x - mean) / std`` passes them through. A feature that is constant over the
  training subjects (every training subject had a measured HKA, or nobody was affected) carries no
  information the model could learn, and z-scoring it with a floored SD would send any other value a
  thousand SDs out: it is *neutralised*, ``mean`` = its value and ``std`` = :data:`NEUTRAL_STD`, so its
  normalised value is 0 (within 1e-4 for any plausible value) for everyone, and a warning names it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ModelContract, Normalisation
from forcecast.lab.dataset import DatasetError, Problem
from forcecast.training.data import LegSequence, TrainingDataWarning

BINARY_STATIC = ("hka_known", "ipsi_affected", "contra_affected")
"""Static features that are 0/1 flags."""
NEUTRAL_STD = 1e6
"""SD given to a neutralised static feature (the largest a device contract accepts)."""
LIMIT = 1e6
"""Largest mean or SD a device contract accepts (see ``forcecast.edge.contract_limits``)."""
MIN_STD = 1e-3
"""Floor of a fitted SD (a near-constant channel is not blown up)."""


@dataclass(frozen=True)
class StaticNormalisation:
    """Static-feature constants and what was done to which feature."""

    normalisation: Normalisation
    binary: tuple[str, ...]
    neutralised: tuple[str, ...]

    def notes(self) -> dict[str, str]:
        """Contract notes (text) saying how each static feature is encoded."""
        notes = {"static_binary": ", ".join(self.binary) + ": 0/1 flags, not z-scored (mean 0, std 1)"}
        if self.neutralised:
            notes["static_neutralised"] = (
                ", ".join(self.neutralised) + f": constant in training, neutralised (std {NEUTRAL_STD:g}: normalised "
                "value 0 for everyone)"
            )
        return notes


def fit_static(train: list[LegSequence], names: tuple[str, ...]) -> StaticNormalisation:
    """Static normalisation over the training sequences (see the module docstring); warns per neutralised feature."""
    values = np.stack([s.static for s in train]).astype(np.float64)
    mean, std, binary, neutralised = [], [], [], []
    for j, name in enumerate(names):
        column = values[:, j]
        if float(np.ptp(column)) == 0.0:
            mean.append(float(column[0]))
            std.append(NEUTRAL_STD)
            neutralised.append(name)
            subjects = sorted({s.subject_id for s in train})
            warnings.warn(
                f"static feature {name} is {column[0]:g} for every training subject ({', '.join(subjects)}): "
                "the model cannot learn its effect; neutralised (its normalised value is 0 for everyone)",
                TrainingDataWarning,
                2,
            )
        elif name in BINARY_STATIC:
            mean.append(0.0)
            std.append(1.0)
            binary.append(name)
        else:
            mean.append(float(np.mean(column)))
            std.append(max(float(np.std(column)), MIN_STD))
    return StaticNormalisation(Normalisation(tuple(mean), tuple(std)), tuple(binary), tuple(neutralised))


def neutralised_features(contract: ModelContract) -> list[str]:
    """Static features a contract neutralises (their SD is :data:`NEUTRAL_STD`)."""
    if contract.static is None:
        return []
    return [n for n, sd in zip(contract.static_features, contract.static.std, strict=True) if sd >= NEUTRAL_STD]


def fit_checked(sequences: list[LegSequence], attribute: str, names: tuple[str, ...], what: str) -> Normalisation:
    """Mean and SD per column of ``attribute`` (``inputs`` or ``targets``) over finite samples.

    Raises
    ------
    DatasetError
        Naming the column and the sequence holding its largest value when a statistic is not finite
        or beyond :data:`LIMIT`, or when a column has no finite sample at all.
    """
    stacked = np.concatenate([getattr(s, attribute) for s in sequences]).astype(np.float64)
    finite = np.isfinite(stacked)
    counts = finite.sum(axis=0)
    safe = np.where(finite, stacked, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = safe.sum(axis=0) / np.maximum(counts, 1)
        spread = np.where(finite, stacked - mean, 0.0)
        std = np.sqrt((spread**2).sum(axis=0) / np.maximum(counts, 1))
    problems = []
    for j, name in enumerate(names):
        if counts[j] == 0:
            problems.append(Problem("training data", f"{what} {name}: no known sample in the training subjects"))
        elif not (np.isfinite(mean[j]) and np.isfinite(std[j]) and abs(mean[j]) <= LIMIT and std[j] <= LIMIT):
            where, value = _largest(sequences, attribute, j)
            problems.append(
                Problem(
                    f"trials/{where}",
                    f"{what} {name} reaches {value:.3g}: its training mean {mean[j]:.3g} / SD {std[j]:.3g} are "
                    f"not usable (beyond ±{LIMIT:g}); a spike or a unit slip ('forcecast data check' names the rows)",
                    column=name,
                )
            )
    if problems:
        raise DatasetError(problems)
    return Normalisation(tuple(float(m) for m in mean), tuple(max(float(s), MIN_STD) for s in std))


def _largest(sequences: list[LegSequence], attribute: str, column: int) -> tuple[str, float]:
    """The sequence (``subject/trial/side``) holding the largest finite |value| of a column, and that value."""
    best_key, best = sequences[0].key, 0.0
    for seq in sequences:
        values: NDArray[np.floating] = getattr(seq, attribute)[:, column]
        finite = values[np.isfinite(values)]
        if finite.size and float(np.max(np.abs(finite))) >= best:
            best_key, best = seq.key, float(np.max(np.abs(finite)))
    return best_key, best
