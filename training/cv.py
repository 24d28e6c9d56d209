"""Subject-wise cross-validation (``forcecast cv``): folds by subject, parallel, resumable.

Each fold holds out its test subject(s) as the subject-naive test set and trains on the rest through
the normal training entry point (:func:`forcecast.training.fit.train`, validation subjects drawn from the rest
as usual), once with and once without static features. A finished fold × variant writes
``OUT/folds/<fold>-<variant>/result.json`` (atomically: written whole or not at all) and
``predictions.npz`` beside its run folder; a re-run skips it when its fingerprint (resolved
configuration, dataset fingerprint, test subjects) matches, and refuses it when not, rather than mixing
results of different setups. :mod:`forcecast.training.cv_report` summarises the folds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.config import ConfigError, to_dict
from forcecast.lab.dataset import Subject
from forcecast.training.config import TrainConfig
from forcecast.training.data import LoadedData, load_sequences

VARIANTS = {"static": True, "imu": False}
"""Variant name -> whether the model gets the static features."""
STATIC_CHOICES = {"both": ("static", "imu"), "on": ("static",), "off": ("imu",)}
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.npz"


class CVError(ConfigError):
    """Cross-validation cannot run as asked (bad fold spec, mismatched earlier results); names what and where."""

    reason = "cv_invalid"


@dataclass(frozen=True)
class Fold:
    """One fold: its name (a folder name) and its subject-naive test subjects."""

    name: str
    test: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """One training run of the cross-validation: a fold with or without static features."""

    fold: Fold
    variant: str
    config: TrainConfig
    data_dir: str
    folder: str
    fingerprint: str
    data_fingerprint: str

    @property
    def name(self) -> str:
        """``<fold>-<variant>``, the folder name under ``OUT/folds``."""
        return f"{self.fold.name}-{self.variant}"


def parse_folds(text: str) -> str | int:
    """``loso`` or a number of folds >= 2, from the command line or a caller.

    Raises
    ------
    CVError
        If ``text`` is neither.
    """
    if text.strip().lower() == "loso":
        return "loso"
    try:
        k = int(text)
    except ValueError:
        raise CVError(f"--folds: expected 'loso' or a number of folds, got {text!r}") from None
    if k < 2:
        raise CVError(f"--folds: need at least 2 folds, got {k}")
    return k


def stratum(subject: Subject | None) -> str:
    """A subject's stratum for fold assignment: affected side, plus ``group`` when subjects.csv has one."""
    if subject is None:
        return ""
    group = subject.extra.get("group", "")
    return f"{subject.affected_side}/{group}" if group else subject.affected_side


def make_folds(subject_ids: list[str], folds: str | int, subjects: Mapping[str, Subject], seed: int) -> list[Fold]:
    """Folds by subject.

    ``loso`` gives one fold per subject, named after it. ``K`` gives K folds named ``fold01``...:
    the subjects of each stratum (affected side and group) are shuffled by ``seed`` and dealt in
    turn over the folds, so every fold gets its share of each stratum where the numbers allow.

    Raises
    ------
    CVError
        If there are fewer than 2 subjects (a fold needs a test subject and one to train on; with
        one training subject, validation is a held-out block of its trials) or more folds than subjects.
    """
    ids = sorted(set(subject_ids))
    if len(ids) < 2:
        raise CVError(
            f"cross-validation needs at least 2 subjects with force data, got {len(ids)} ({', '.join(ids) or 'none'})"
        )
    if folds == "loso":
        return [Fold(s, (s,)) for s in ids]
    k = int(folds)
    if k > len(ids):
        raise CVError(f"--folds {k}: more folds than subjects with force data ({len(ids)})")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for s in ids:
        groups.setdefault(stratum(subjects.get(s)), []).append(s)
    dealt: list[str] = []
    for label in sorted(groups):
        members = groups[label]
        dealt += [members[i] for i in rng.permutation(len(members))]
    width = len(str(k))
    return [Fold(f"fold{i + 1:0{width}d}", tuple(sorted(dealt[i::k]))) for i in range(k)]


def fold_config(config: TrainConfig, fold: Fold, variant: str) -> TrainConfig:
    """The run configuration of one fold × variant: its test subjects, no subject-exposed group."""
    return replace(
        config,
        model=replace(config.model, use_static=VARIANTS[variant]),
        split=replace(config.split, test_subjects=fold.test, exposed_fraction=0.0),
    )


def task_fingerprint(config: TrainConfig, data_fingerprint: str) -> str:
    """SHA-256 over the resolved run configuration (test subjects included) and the dataset fingerprint."""
    text = json.dumps({"config": to_dict(config), "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def plan(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    loaded: LoadedData,
    folds: str | int,
    static: str,
) -> list[Task]:
    """Every fold × variant to run, in order (fold, then variant)."""
    if static not in STATIC_CHOICES:
        raise CVError(f"--static: expected one of {', '.join(STATIC_CHOICES)}, got {static!r}")
    subject_ids = sorted({s.subject_id for s in loaded.sequences})
    tasks = []
    for fold in make_folds(subject_ids, folds, loaded.subjects, config.fit.seed):
        for variant in STATIC_CHOICES[static]:
            run_config = fold_config(config, fold, variant)
            name = f"{fold.name}-{variant}"
            tasks.append(
                Task(
                    fold=fold,
                    variant=variant,
                    config=run_config,
                    data_dir=str(data_dir),
                    folder=str(out / "folds" / name),
                    fingerprint=task_fingerprint(run_config, loaded.fingerprint),
                    data_fingerprint=loaded.fingerprint,
                )
            )
    return tasks


def finished(task: Task) -> dict[str, Any] | None:
    """The task's earlier result when it exists and matches; ``None`` when it still has to run.

    Raises
    ------
    CVError
        If a result exists but was made with another configuration, dataset or test subjects
        (naming the fold and what differs), or cannot be read.
    """
    path = Path(task.folder) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
        earlier_fingerprint = result["fingerprint"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CVError(f"{path}: unreadable earlier fold result ({exc}); delete the folder to rerun the fold") from None
    if earlier_fingerprint == task.fingerprint:
        if not (Path(task.folder) / PREDICTIONS_FILE).is_file():
            raise CVError(f"{path}: its {PREDICTIONS_FILE} is missing; delete the folder to rerun the fold")
        return dict(result)
    reasons = []
    if result.get("data_fingerprint_sha256") != task.data_fingerprint:
        reasons.append(
            f"dataset fingerprint {str(result.get('data_fingerprint_sha256'))[:12]}... there, "
            f"{task.data_fingerprint[:12]}... now"
        )
    reasons += config_differences(result.get("config", {}), to_dict(task.config))
    raise CVError(
        f"{path}: fold {task.name} was run with another setup ({'; '.join(reasons) or 'fingerprint differs'}); "
        "results of different setups are not mixed: use another --out, or delete that folder to rerun it"
    )


def config_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``[table] key: old there, new now`` for every key that differs between two resolved configs."""
    out = []
    for table in sorted(set(before) | set(now)):
        a, b = before.get(table, {}), now.get(table, {})
        if not isinstance(a, Mapping) or not isinstance(b, Mapping):
            if a != b:
                out.append(f"[{table}]: {a!r} there, {b!r} now")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"[{table}] {key}: {a.get(key)!r} there, {b.get(key)!r} now")
    return out


_LOADED: dict[tuple[str, str], LoadedData] = {}
"""Sequences already loaded in this process, by (dataset folder, data config)."""


def _cache_key(data_dir: str | Path, config: TrainConfig) -> tuple[str, str]:
    """The key of :data:`_LOADED`: the dataset folder and the data configuration."""
    return str(data_dir), json.dumps(to_dict(config.data), sort_keys=True)


@contextmanager
def _loaded_in_process(data_dir: Path, config: TrainConfig, loaded: LoadedData) -> Iterator[None]:
    """Share ``loaded`` with the folds run in this process (``jobs`` = 1) while the block runs."""
    key = _cache_key(data_dir, config)
    _LOADED[key] = loaded
    try:
        yield
    finally:
        _LOADED.pop(key, None)


def run_task(task: Task) -> dict[str, Any]:
    """Train and evaluate one fold × variant and write its result atomically (runs in a worker process).

    Returns
    -------
    dict
        The fold's result (also in ``<folder>/result.json``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from forcecast.training.fit import train

    key = _cache_key(task.data_dir, task.config)
    if key not in _LOADED:
        _LOADED[key] = load_sequences(Path(task.data_dir), task.config.data)
    loaded = _LOADED[key]
    if loaded.fingerprint != task.data_fingerprint:
        raise CVError(f"{task.data_dir}: the dataset changed while cross-validation ran (fingerprint differs)")
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = train(Path(task.data_dir), folder / "run", task.config, loaded=loaded, verbose=0)
    naive = run.evaluations.get("subject_naive")
    if naive is None:
        raise CVError(f"fold {task.name}: no test sequence for subject(s) {', '.join(task.fold.test)}")
    _write_predictions(folder / PREDICTIONS_FILE, naive["predictions"])
    metrics = run.metrics
    result = {
        "name": task.name,
        "fold": task.fold.name,
        "variant": task.variant,
        "use_static": VARIANTS[task.variant],
        "test_subjects": list(task.fold.test),
        "fingerprint": task.fingerprint,
        "data_fingerprint_sha256": task.data_fingerprint,
        "config": to_dict(task.config),
        "split": metrics["split"],
        "epochs_run": metrics["epochs_run"],
        "train_windows": metrics["train_windows"],
        "seconds": metrics["seconds"],
        "run": "run",
        "predictions": PREDICTIONS_FILE,
        "subject_naive": metrics["subject_naive"],
    }
    write_atomic(folder / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result


def _write_predictions(path: Path, predictions: list[tuple[Any, Any]]) -> None:
    """Test predictions and targets of one fold, per sequence, for pooled metrics across folds."""
    sequences = [s for s, _ in predictions]
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        predicted=np.concatenate([p for _, p in predictions]).astype(np.float64),
        measured=np.concatenate([s.targets for s in sequences]).astype(np.float64),
        lengths=np.array([s.targets.shape[0] for s in sequences], dtype=np.int64),
        body_weight_n=np.array([s.body_weight_n for s in sequences], dtype=np.float64),
        subjects=np.array([s.subject_id for s in sequences]),
        keys=np.array([s.key for s in sequences]),
    )
    tmp.replace(path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see all of it or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def execute(
    tasks: list[Task],
    jobs: int,
    limit: int | None = None,
    on_done: Callable[[Task, dict[str, Any]], None] | None = None,
    cluster: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Run what is missing, ``jobs`` at a time (``jobs`` > 1: spawned worker processes, each with its own TF).

    Parameters
    ----------
    tasks
        The plan.
    jobs
        Parallel worker processes; 1 runs in this process.
    limit
        Run at most this many missing tasks now (the rest on a later call).
    on_done
        Called after each task finishes (progress).
    cluster
        A Dask scheduler address (``--cluster``): the missing tasks run on its workers instead, each
        fold's folder coming back to this machine (see :mod:`forcecast.training.fanout`); ``jobs`` is
        then unused (the cluster's workers set the parallelism).

    Returns
    -------
    dict
        Results of every finished task (earlier and now), by task name.
    """
    if jobs < 1:
        raise CVError(f"--jobs must be >= 1, got {jobs}")
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for task in tasks:  # check every earlier result before training anything
        earlier = finished(task)
        if earlier is None:
            todo.append(task)
        else:
            results[task.name] = earlier
    if limit is not None:
        todo = todo[: max(0, limit)]
    if cluster is not None:
        from forcecast.training.fanout import execute_on_cluster

        return results | execute_on_cluster(todo, cluster, on_done)
    if jobs == 1 or len(todo) <= 1:
        for task in todo:
            results[task.name] = run_task(task)
            _clear_keras()
            if on_done:
                on_done(task, results[task.name])
        return results
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    from forcecast.training.quiet import import_tensorflow

    context = multiprocessing.get_context("spawn")
    workers = min(jobs, len(todo))  # each imports TensorFlow first, without its start-up lines on stderr
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=import_tensorflow) as pool:
        futures = {pool.submit(run_task, task): task for task in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                task = futures[future]
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    print(f"forcecast cv: fold {task.name} failed", file=sys.stderr)
                    raise error
                results[task.name] = future.result()
                if on_done:
                    on_done(task, results[task.name])
    return results


def _clear_keras() -> None:
    """Free the finished fold's graphs before the next one trains in this process."""
    import keras

    keras.backend.clear_session()


@dataclass
class CVOutcome:
    """What a call to :func:`cross_validate` achieved.

    ``summary`` is ``None`` while folds are missing (``limit`` stopped early); re-run to finish.
    """

    tasks: list[Task]
    results: dict[str, dict[str, Any]]
    summary: dict[str, Any] | None
    trained_now: int

    @property
    def complete(self) -> bool:
        """Whether every fold × variant has a result."""
        return all(t.name in self.results for t in self.tasks)


def cross_validate(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    folds: str | int = "loso",
    static: str = "both",
    jobs: int = 1,
    limit: int | None = None,
    progress: bool = True,
    cluster: str | None = None,
) -> CVOutcome:
    """Run (or finish) a subject-wise cross-validation and write its summary.

    Parameters
    ----------
    data_dir
        Dataset (format v1).
    out
        Output folder: ``folds/<fold>-<variant>/`` per run, then ``cv.json``, ``cv.csv``, ``cv.md``.
    config
        Base training configuration; each fold sets its test subjects and the static variant.
    folds
        ``"loso"`` (leave one subject out) or a number of folds by subject.
    static
        ``both`` (with and without static features), ``on`` or ``off``.
    jobs
        Worker processes (each trains one fold at a time with its own TensorFlow).
    limit
        Train at most this many missing fold × variant runs in this call.
    progress
        Show a progress bar on stderr.
    cluster
        Train on the Dask cluster at this scheduler address instead of local processes (see
        :func:`execute`).

    Raises
    ------
    CVError
        For a bad fold spec, too few subjects, or an earlier fold result made with another setup.
    """
    import time

    started = time.perf_counter()
    loaded = load_sequences(data_dir, config.data)
    tasks = plan(data_dir, out, config, loaded, folds, static)
    out.mkdir(parents=True, exist_ok=True)
    with _loaded_in_process(data_dir, config, loaded):
        results, trained_now = run_with_progress(tasks, jobs, limit, progress, cluster)
    if not all(t.name in results for t in tasks):
        return CVOutcome(tasks, results, None, trained_now)
    from forcecast.training.cv_report import summarise_cv, write_summary

    meta = {
        "folds_spec": "leave-one-subject-out" if folds == "loso" else f"{folds} folds by subject",
        "data": str(Path(data_dir).resolve()),
        "data_fingerprint_sha256": loaded.fingerprint,
        "n_subjects": len({s.subject_id for s in loaded.sequences}),
        "seed": config.fit.seed,
        "config": to_dict(config),
        "trained_now": trained_now,
        "seconds_now": round(time.perf_counter() - started, 1),
    }
    summary = summarise_cv(tasks, results, meta)
    write_summary(out, summary)
    return CVOutcome(tasks, results, summary, trained_now)


def run_with_progress(
    tasks: list[Task],
    jobs: int,
    limit: int | None,
    progress: bool,
    cluster: str | None = None,
    desc: str = "cv",
    unit: str = "fold",
) -> tuple[dict[str, dict[str, Any]], int]:
    """:func:`execute` the tasks, with a progress bar on stderr when ``progress``; the results and how many ran now.

    Parameters
    ----------
    tasks, jobs, limit, cluster
        As :func:`execute`.
    progress
        Show a tqdm bar (label ``desc``, counting ``unit``) with each finished run's vertical r.
    """
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit=unit, desc=desc, file=sys.stderr, disable=None)
    already = sum(1 for t in tasks if (Path(t.folder) / RESULT_FILE).is_file())

    def done(task: Task, result: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{task.name} v r {result['subject_naive']['pooled']['axes']['v']['r']:.3f}")
            bar.update(1)

    try:
        if bar is not None:
            bar.update(already)
        results = execute(tasks, jobs, limit, done, cluster=cluster)
    finally:
        if bar is not None:
            bar.close()
    return results, len(results) - already
