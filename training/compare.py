"""``forcecast compare``: the model zoo under subject-wise cross-validation, run as the device would run it.

Every chosen architecture × static variant (with / without the static features) × output delay is trained
once per fold of the subject-wise cross-validation (:mod:`forcecast.training.cv`: the same folds for all,
each a normal training run, in parallel worker processes, resumable with fingerprints). Then, once per
architecture × variant × delay, the first fold's model is converted to full int8 and timed on this CPU
through the device's interpreter (:mod:`forcecast.training.int8_bench`), one model at a time so the
timings do not compete with training. :mod:`forcecast.training.compare_report` turns it all into one row per
architecture × variant × delay, the accuracy–latency Pareto front and the files.

Folders: ``OUT/runs/<model>-d<delay>-<fold>-<variant>/`` (one cross-validation run each, as ``forcecast cv``
writes them) and ``OUT/int8/<model>-d<delay>-<variant>.json`` (the int8 figures, keyed by the SHA-256 of the
model they were measured on); a re-run trains and measures only what is missing and refuses results made
with another setup.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from forcecast.edge.config import to_dict
from forcecast.training.architectures import REGISTRY, ZOO
from forcecast.training.config import Architecture, DataConfig, TrainConfig
from forcecast.training.cv import (
    STATIC_CHOICES,
    VARIANTS,
    CVError,
    Fold,
    Task,
    _loaded_in_process,
    fold_config,
    make_folds,
    run_with_progress,
    task_fingerprint,
    write_atomic,
)
from forcecast.training.data import LoadedData, load_sequences

RUNS_FOLDER = "runs"
INT8_FOLDER = "int8"
DEFAULT_FOLDS = 3
BENCH_VERSION = 2
"""Version of the int8 figures' form (2: wall-clock and thread CPU time); earlier figures are measured again."""


class CompareError(CVError):
    """The comparison cannot run as asked (unknown model, bad delay, mismatched earlier results); names what."""

    reason = "compare_invalid"


@dataclass(frozen=True)
class Group:
    """One row of the comparison: an architecture, a static variant (``static`` / ``imu``) and an output delay."""

    model: Architecture
    variant: str
    delay: int

    @property
    def name(self) -> str:
        """``<model>-d<delay>-<variant>``, the int8 figures' file name."""
        return f"{self.model}-d{self.delay}-{self.variant}"

    @property
    def use_static(self) -> bool:
        """Whether the models of this row get the static features."""
        return VARIANTS[self.variant]


def parse_models(text: str) -> tuple[Architecture, ...]:
    """The ``--models`` value: comma-separated architectures of the zoo, or ``all``; in zoo order.

    Raises
    ------
    CompareError
        An unknown architecture or an empty list, named with the choices.
    """
    if text.strip() == "all":
        return ZOO
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown or not names:
        what = f"unknown architecture(s) {', '.join(unknown)}" if unknown else "no architecture named"
        raise CompareError(f"--models {text!r}: {what}; choose from {', '.join(ZOO)} (comma-separated) or 'all'")
    return tuple(m for m in ZOO if m in names)


def parse_delays(text: str | None, data: DataConfig) -> tuple[int, ...]:
    """The ``--delays`` value (comma-separated output delays in samples); ``None``: the configuration's delay.

    Raises
    ------
    CompareError
        For a value that is not a whole number, a negative one, or one that with ``out_len`` does not fit
        in half the window (as ``[data] delay`` must), naming the value and the limit.
    """
    if text is None:
        return (data.delay,)
    delays = []
    limit = data.window // 2 - data.out_len
    for item in (t.strip() for t in text.split(",")):
        try:
            delay = int(item)
        except ValueError:
            raise CompareError(f"--delays {text!r}: {item!r} is not a whole number of samples") from None
        if delay < 0:
            raise CompareError(f"--delays {text!r}: {delay} is negative; a delay is 0 or more samples")
        if delay > limit:
            raise CompareError(
                f"--delays {text!r}: {delay} is too large for the window: out_len ({data.out_len}) + delay must be "
                f"at most window / 2 ({data.window // 2}), so at most {limit} samples"
            )
        delays.append(delay)
    return tuple(sorted(set(delays)))


def delay_config(config: TrainConfig, model: Architecture, delay: int) -> TrainConfig:
    """The base configuration with ``model`` as the architecture and ``delay`` as the output delay."""
    return replace(config, model=replace(config.model, architecture=model), data=replace(config.data, delay=delay))


def plan(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    loaded: dict[int, LoadedData],
    models: tuple[Architecture, ...],
    static: str,
    folds: str | int,
) -> list[Task]:
    """Every cross-validation run of the comparison: delay, then model, fold and variant.

    Parameters
    ----------
    loaded
        The dataset loaded for each delay to compare (the keys are the delays).
    static
        ``both``, ``on`` or ``off`` (see :data:`forcecast.training.cv.STATIC_CHOICES`).
    folds
        ``"loso"`` or a number of folds by subject; the same folds for every model and delay.
    """
    if static not in STATIC_CHOICES:
        raise CompareError(f"--static: expected one of {', '.join(STATIC_CHOICES)}, got {static!r}")
    if not models or not loaded:
        raise CompareError("compare: nothing to run (no architecture or no delay)")
    first = next(iter(loaded.values()))
    subject_ids = sorted({s.subject_id for s in first.sequences})
    tasks = []
    for delay, data in loaded.items():
        for model in models:
            for fold in make_folds(subject_ids, folds, data.subjects, config.fit.seed):
                named = Fold(f"{model}-d{delay}-{fold.name}", fold.test)
                for variant in STATIC_CHOICES[static]:
                    run_config = fold_config(delay_config(config, model, delay), named, variant)
                    tasks.append(
                        Task(
                            fold=named,
                            variant=variant,
                            config=run_config,
                            data_dir=str(data_dir),
                            folder=str(out / RUNS_FOLDER / f"{named.name}-{variant}"),
                            fingerprint=task_fingerprint(run_config, data.fingerprint),
                            data_fingerprint=data.fingerprint,
                        )
                    )
    return tasks


def group_of(task: Task) -> Group:
    """The comparison row a run belongs to."""
    return Group(task.config.model.architecture, task.variant, task.config.data.delay)


def groups_of(tasks: list[Task]) -> dict[Group, list[Task]]:
    """The runs of each row, in plan order (the first is the fold whose model is converted to int8)."""
    groups: dict[Group, list[Task]] = {}
    for task in tasks:
        groups.setdefault(group_of(task), []).append(task)
    return groups


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_group(
    group: Group, task: Task, loaded: LoadedData, out: Path, invocations: int
) -> tuple[dict[str, Any], bool]:
    """The int8 figures of one row, from its first fold's model: earlier ones when they match, else measured now.

    A row whose architecture the registry marks as not deployable, or whose model fails to convert, gets
    ``deployable: false`` and the reason instead of figures.

    Returns
    -------
    tuple
        The figures (``deployable``, ``reason``, ``from_run`` and those of
        :func:`forcecast.training.int8_bench.bench_run`) and whether they were measured now.
    """
    from forcecast.training.convert import ConversionError
    from forcecast.training.int8_bench import bench_run

    spec = REGISTRY[group.model]
    if not spec.deployable:
        return {"from_run": task.name, "deployable": False, "reason": spec.not_deployable_reason}, False
    run = Path(task.folder) / "run"
    path = out / INT8_FOLDER / f"{group.name}.json"
    key = {
        "model_sha256": file_sha256(run / "model.keras"),
        "invocations": invocations,
        "from_run": task.name,
        "bench_version": BENCH_VERSION,
    }
    if path.is_file():
        try:
            earlier: dict[str, Any] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CompareError(f"{path}: unreadable earlier int8 figures ({exc}); delete it to measure again") from None
        if all(earlier.get(k) == v for k, v in key.items()):
            return earlier, False
    figures: dict[str, Any] = {**key, "deployable": True, "reason": ""}
    try:
        figures.update(bench_run(run, task.config, loaded, invocations))
    except ConversionError as exc:
        figures.update(deployable=False, reason=f"int8 conversion failed: {exc}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(figures, indent=2) + "\n")
    return figures, True


@dataclass
class CompareOutcome:
    """What a call to :func:`compare` achieved; ``summary`` is ``None`` while runs are missing (``limit``)."""

    tasks: list[Task]
    results: dict[str, dict[str, Any]]
    summary: dict[str, Any] | None
    trained_now: int
    measured_now: int

    @property
    def missing(self) -> list[str]:
        """Names of the runs still to train."""
        return [t.name for t in self.tasks if t.name not in self.results]


def compare(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    models: tuple[Architecture, ...] = ZOO,
    static: str = "both",
    delays: tuple[int, ...] | None = None,
    folds: str | int = DEFAULT_FOLDS,
    jobs: int = 1,
    limit: int | None = None,
    progress: bool = True,
    invocations: int = 200,
    cluster: str | None = None,
) -> CompareOutcome:
    """Run (or finish) the comparison and write ``comparison.{json,csv,md,png}`` and ``pareto.png``.

    Parameters
    ----------
    data_dir
        Dataset (format v1).
    out
        Comparison folder (see the module docstring).
    config
        Base training configuration; each run sets its architecture, delay, static variant and test subjects.
    models
        Architectures (see :func:`parse_models`).
    static
        ``both``, ``on`` or ``off``.
    delays
        Output delays in samples (see :func:`parse_delays`); ``None``: the configuration's.
    folds
        ``"loso"`` or a number of folds by subject.
    jobs
        Worker processes training in parallel.
    limit
        Train at most this many missing runs in this call (re-run to continue; int8 figures come at the end).
    progress
        Progress bars on stderr.
    invocations
        Timed interpreter calls per int8 model.
    cluster
        Train the runs on the Dask cluster at this scheduler address instead of local processes
        (see :func:`forcecast.training.cv.execute`); the int8 figures are still measured here.

    Raises
    ------
    CompareError
        For bad arguments; :class:`forcecast.training.cv.CVError` for an earlier run made with another setup.
    """
    started = time.perf_counter()
    delays = delays if delays is not None else (config.data.delay,)
    loaded = {}
    for delay in delays:
        delay_data = replace(config.data, delay=delay)
        loaded[delay] = load_sequences(data_dir, delay_data)
    tasks = plan(data_dir, out, config, loaded, models, static, folds)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:  # jobs = 1: the runs in this process share what is loaded here
        for delay, data in loaded.items():
            stack.enter_context(_loaded_in_process(data_dir, delay_config(config, models[0], delay), data))
        results, trained_now = _train(tasks, jobs, limit, progress, cluster)
    if any(t.name not in results for t in tasks):
        return CompareOutcome(tasks, results, None, trained_now, 0)
    groups = groups_of(tasks)
    int8: dict[Group, dict[str, Any]] = {}
    measured_now = 0
    bar = _bar(progress, len(groups), "int8")
    for group, members in groups.items():
        if bar is not None:
            bar.set_postfix_str(group.name)
        int8[group], measured = measure_group(group, members[0], loaded[group.delay], out, invocations)
        measured_now += measured
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    from forcecast.training.compare_report import summarise, write_outputs

    first = loaded[delays[0]]
    meta = {
        "data": str(Path(data_dir).resolve()),
        "data_fingerprint_sha256": first.fingerprint,
        "n_subjects": len({s.subject_id for s in first.sequences}),
        "folds_spec": "leave-one-subject-out" if folds == "loso" else f"{folds} folds by subject",
        "seed": config.fit.seed,
        "models": list(models),
        "static": static,
        "delays": list(delays),
        "config": to_dict(config),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "invocations": invocations},
        "trained_now": trained_now,
        "measured_now": measured_now,
        "seconds_now": round(time.perf_counter() - started, 1),
    }
    summary = summarise(groups, results, int8, meta)
    write_outputs(out, summary)
    return CompareOutcome(tasks, results, summary, trained_now, measured_now)


def _bar(progress: bool, total: int, what: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="run" if what == "train" else "model", desc=what, file=sys.stderr, disable=None)


def _train(
    tasks: list[Task], jobs: int, limit: int | None, progress: bool, cluster: str | None = None
) -> tuple[dict[str, dict[str, Any]], int]:
    """:func:`forcecast.training.cv.execute` with a progress bar over runs; the results and how many trained now."""
    return run_with_progress(tasks, jobs, limit, progress, cluster, desc="train", unit="run")
