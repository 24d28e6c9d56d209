"""A dataset folder of format v1: open it, check it, summarise it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from forcecast.edge.schema import parse_column
from forcecast.lab.dataset.checks import check_trial, lag_problems
from forcecast.lab.dataset.problems import DatasetError, Problem
from forcecast.lab.dataset.subjects import SUBJECTS_FILE, Subject, read_subjects
from forcecast.lab.dataset.trial import TRIALS_DIR, Trial, TrialRef, discover_trials, read_trial

Progress = Callable[[Iterator[TrialRef], int], Iterator[TrialRef]]


@dataclass
class Dataset:
    """An opened dataset: its subjects and where each trial's files are.

    Use :meth:`open` (strict) or :meth:`scan` (collects problems instead of raising).
    """

    root: Path
    subjects: dict[str, Subject]
    trials: list[TrialRef]
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def scan(cls, root: Path | str) -> Dataset:
        """Read ``subjects.csv`` and find the trials, recording every problem found so far."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError([Problem(str(root), "not a folder")])
        subjects, problems = read_subjects(root / SUBJECTS_FILE, root)
        refs, trial_problems = discover_trials(root)
        problems += trial_problems
        known = {s.subject_id for s in subjects}
        listed_in_csv = _listed_ids(root)
        kept = []
        for ref in refs:
            if ref.subject_id in known:
                kept.append(ref)
            elif ref.subject_id not in listed_in_csv:
                problems.append(
                    Problem(
                        f"{TRIALS_DIR}/{ref.subject_id}",
                        f"subject {ref.subject_id!r} has trials but is missing from subjects.csv",
                    )
                )
        missing_folders = [(s.subject_id, f"{TRIALS_DIR}/{s.subject_id}") for s in subjects]
        with_trials = {r.subject_id for r in refs}
        for subject_id, folder in missing_folders:
            if subject_id not in with_trials:
                problems.append(
                    Problem(folder, f"subject {subject_id!r} is listed but has no trials", severity="warning")
                )
        # One message per subject folder, not per trial, for subjects missing from subjects.csv.
        problems = list(dict.fromkeys(problems))
        return cls(root, {s.subject_id: s for s in subjects}, kept, problems)

    @classmethod
    def open(cls, root: Path | str) -> Dataset:
        """Like :meth:`scan`, but raise :class:`DatasetError` if an error was found."""
        dataset = cls.scan(root)
        errors = [p for p in dataset.problems if p.severity == "error"]
        if errors:
            raise DatasetError(errors)
        return dataset

    def load(self, ref: TrialRef) -> Trial:
        """Read one trial, raising :class:`DatasetError` on structural errors."""
        trial, problems = read_trial(ref, self.root)
        if trial is None:
            raise DatasetError(problems)
        return trial

    def trials_of(self, subject_id: str) -> list[TrialRef]:
        """References to one subject's trials."""
        return [r for r in self.trials if r.subject_id == subject_id]


@dataclass
class TrialSummary:
    """Figures of one readable trial, for ``forcecast data check``."""

    subject_id: str
    trial_id: str
    duration_s: float
    imu_rate_hz: float
    force_rate_hz: float | None
    places: tuple[str, ...]
    force_sides: tuple[str, ...]
    force_coverage: dict[str, float]
    imu_lag_ms: float | None = None
    """IMU lag behind the force estimated from heel strikes (None: no force onsets or no foot/shank IMU)."""


class DatasetSummary(TypedDict):
    """Totals of a checked dataset (:meth:`CheckReport.summary`), as ``forcecast data check --json`` prints them."""

    root: str
    subjects: int
    subjects_with_trials: int
    trials: int
    duration_s: float
    imu_rates_hz: list[float]
    force_rates_hz: list[float]
    places: list[str]
    force_coverage: dict[str, float]
    imu_lag_ms: dict[str, float]
    errors: int
    warnings: int


@dataclass
class CheckReport:
    """Result of checking a whole dataset."""

    root: Path
    n_subjects: int
    trials: list[TrialSummary]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the dataset unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth a look."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def summary(self) -> DatasetSummary:
        """Totals: subjects, trials, duration, rates, channels and force coverage."""
        rates = sorted({round(t.imu_rate_hz, 2) for t in self.trials})
        force_rates = sorted({round(t.force_rate_hz, 2) for t in self.trials if t.force_rate_hz})
        places = sorted({p for t in self.trials for p in t.places})
        coverage: dict[str, float] = {}
        for side in ("l", "r"):
            weights = [(t.duration_s, t.force_coverage.get(side, 0.0)) for t in self.trials]
            total = sum(w for w, _ in weights)
            coverage[side] = (sum(w * c for w, c in weights) / total) if total else 0.0
        return {
            "root": str(self.root),
            "subjects": self.n_subjects,
            "subjects_with_trials": len({t.subject_id for t in self.trials}),
            "trials": len(self.trials),
            "duration_s": round(sum(t.duration_s for t in self.trials), 3),
            "imu_rates_hz": rates,
            "force_rates_hz": force_rates,
            "places": places,
            "force_coverage": {k: round(v, 4) for k, v in coverage.items()},
            "imu_lag_ms": {
                f"{t.subject_id}/{t.trial_id}": t.imu_lag_ms for t in self.trials if t.imu_lag_ms is not None
            },
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }


def check_dataset(root: Path | str, progress: Progress | None = None) -> CheckReport:
    """Check every file of a dataset and summarise it; never raises for bad data.

    Parameters
    ----------
    root
        Dataset folder.
    progress
        Optional wrapper around the trial iterator (e.g. a tqdm progress bar).
    """
    root = Path(root)
    try:
        dataset = Dataset.scan(root)
    except DatasetError as exc:
        return CheckReport(root, 0, [], exc.problems)
    problems = list(dataset.problems)
    summaries: list[TrialSummary] = []
    refs = iter(dataset.trials)
    for ref in progress(refs, len(dataset.trials)) if progress else refs:
        trial, trial_problems = read_trial(ref, root)
        problems += trial_problems
        if trial is None:
            continue
        from forcecast.lab.dataset.importers.sync import trial_lag  # here: scipy filters, only when a trial is checked

        lag = trial_lag(trial)
        problems += check_trial(trial, dataset.subjects.get(ref.subject_id))
        problems += lag_problems(trial, lag.lag_s, lag.contacts)
        summaries.append(_summarise(trial))
        summaries[-1].imu_lag_ms = lag.as_dict()["lag_ms"]
    if not dataset.trials and not any(p.file == TRIALS_DIR for p in problems):
        problems.append(Problem(TRIALS_DIR, "no trials found"))
    return CheckReport(root, len(dataset.subjects), summaries, problems)


def _summarise(trial: Trial) -> TrialSummary:
    force = trial.force
    sides: list[str] = []
    coverage: dict[str, float] = {}
    if force is not None:
        for side in ("l", "r"):
            cols = [j for j, c in enumerate(force.columns) if (s := parse_column(c)) and s.place == side]
            if cols:
                sides.append(side)
                coverage[side] = float(np.mean(np.all(np.isfinite(force.values[:, cols]), axis=1)))
    duration = trial.imu.duration_s
    return TrialSummary(
        trial.subject_id,
        trial.trial_id,
        duration,
        trial.imu.rate_hz,
        None if force is None else force.rate_hz,
        trial.places,
        tuple(sides),
        coverage,
    )


def _listed_ids(root: Path) -> set[str]:
    """Subject ids present in subjects.csv even on rows with errors (so they are not reported twice)."""
    path = root / SUBJECTS_FILE
    if not path.is_file():
        return set()
    try:
        import pandas as pd

        ids = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["subject_id"])["subject_id"]
    except (OSError, ValueError):  # unreadable or without the column: already reported by read_subjects
        return set()
    return {s.strip() for s in ids}
