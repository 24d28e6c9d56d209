"""Trial files of format v1: discovery, reading (CSV or Parquet), structural validation, writing.

A trial is either one file ``<trial_id>.csv|.parquet`` holding ``time_s``, IMU and force columns on
one time base, or a pair ``<trial_id>.imu.csv`` + ``<trial_id>.force.csv`` (or ``.parquet``), each
with its own ``time_s`` on the same clock. An IMU file without a force file is an IMU-only trial
(e.g. a home recording to replay); a force file without IMU data is an error.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forcecast.edge.dsp.resample import nominal_rate_hz
from forcecast.edge.schema import (
    FORCE_AXES,
    KNOWN_COLUMNS,
    SENSOR_AXES,
    TIME_COLUMN,
    ColumnSpec,
    parse_column,
)
from forcecast.lab.dataset.problems import DatasetError, Problem, relative_name

TRIALS_DIR = "trials"
TABLE_SUFFIXES = (".csv", ".parquet")
Part = Literal["single", "imu", "force"]

# Decimal places written per quantity: below the noise floor of lab sensors, above their resolution.
DECIMALS = {"time": 6, "acc": 4, "gyr": 5, "grf": 2}


@dataclass(frozen=True)
class Stream:
    """Samples of several channels on one time base.

    Attributes
    ----------
    time_s
        Sample times, shape ``(n,)``, strictly increasing.
    columns
        Channel names (format v1), one per column of ``values``.
    values
        Shape ``(n, len(columns))``; NaN marks a missing sample.
    source
        File the samples came from (for messages).
    """

    time_s: NDArray[np.float64]
    columns: tuple[str, ...]
    values: NDArray[np.float64]
    source: str = ""

    def __post_init__(self) -> None:
        if self.values.shape != (self.time_s.size, len(self.columns)):
            raise ValueError(
                f"{self.source or 'stream'}: values have shape {self.values.shape}, "
                f"expected ({self.time_s.size}, {len(self.columns)})"
            )

    def column(self, name: str) -> NDArray[np.float64]:
        """One channel by name."""
        try:
            return self.values[:, self.columns.index(name)]
        except ValueError:
            raise KeyError(f"{self.source or 'stream'} has no column {name!r}") from None

    def select(self, columns: tuple[str, ...]) -> Stream:
        """A stream with just ``columns``, in that order."""
        index = [self.columns.index(c) for c in columns]
        return Stream(self.time_s, columns, self.values[:, index], self.source)

    @property
    def duration_s(self) -> float:
        """Time from first to last sample."""
        return float(self.time_s[-1] - self.time_s[0]) if self.time_s.size else 0.0

    @property
    def rate_hz(self) -> float:
        """Nominal sampling rate (from the median time step)."""
        if self.time_s.size < 2:
            return float("nan")
        return nominal_rate_hz(self.time_s)


@dataclass(frozen=True)
class Trial:
    """One recording of one subject: IMU samples and, if measured, ground reaction forces."""

    subject_id: str
    trial_id: str
    imu: Stream
    force: Stream | None

    @property
    def places(self) -> tuple[str, ...]:
        """Sensor places present, in file order."""
        seen: dict[str, None] = {}
        for c in self.imu.columns:
            spec = parse_column(c)
            if spec is not None and spec.kind == "imu":
                seen[spec.place] = None
        return tuple(seen)


@dataclass(frozen=True)
class TrialRef:
    """Where a trial's files are, found by :func:`discover_trials`."""

    subject_id: str
    trial_id: str
    files: tuple[tuple[Part, Path], ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        """The trial's files."""
        return tuple(p for _, p in self.files)


def discover_trials(root: Path) -> tuple[list[TrialRef], list[Problem]]:
    """Find every trial under ``root/trials`` (sorted by subject, then trial)."""
    problems: list[Problem] = []
    trials_dir = root / TRIALS_DIR
    if not trials_dir.is_dir():
        return [], [Problem(TRIALS_DIR, "folder not found: a dataset keeps its trials in trials/<subject_id>/")]
    refs: list[TrialRef] = []
    for subject_dir in sorted(p for p in trials_dir.iterdir() if not p.name.startswith(".")):
        if not subject_dir.is_dir():
            problems.append(
                Problem(
                    relative_name(subject_dir, root), "not a folder: expected trials/<subject_id>/", severity="warning"
                )
            )
            continue
        parts: dict[str, dict[Part, list[Path]]] = {}
        for path in sorted(subject_dir.iterdir()):
            if path.name.startswith("."):
                continue
            parsed = _split_trial_name(path.name)
            if parsed is None:
                problems.append(
                    Problem(
                        relative_name(path, root),
                        "ignored: not a trial file (<trial_id>.csv|.parquet or <trial_id>.imu|.force.csv|.parquet)",
                        severity="warning",
                    )
                )
                continue
            trial_id, part = parsed
            parts.setdefault(trial_id, {}).setdefault(part, []).append(path)
        for trial_id, found in parts.items():
            name = relative_name(subject_dir / trial_id, root)
            duplicated = [part for part, paths in found.items() if len(paths) > 1]
            if duplicated:
                problems.append(
                    Problem(name, f"trial stored twice (both .csv and .parquet for {duplicated[0]!r} data)")
                )
                continue
            if "single" in found and ("imu" in found or "force" in found):
                problems.append(Problem(name, "trial stored both as one file and as an .imu/.force pair"))
                continue
            if "force" in found and "imu" not in found:
                problems.append(Problem(name, "force file without its .imu file"))
                continue
            ordered = tuple((part, found[part][0]) for part in ("single", "imu", "force") if part in found)
            refs.append(TrialRef(subject_dir.name, trial_id, ordered))
    return refs, problems


def read_trial(ref: TrialRef, root: Path | None = None) -> tuple[Trial | None, list[Problem]]:
    """Read a trial's files and check their structure.

    Structural problems (unknown or duplicate columns, unparseable cells, time that is not
    strictly increasing, incomplete axis sets) are errors and yield ``None``. Content checks
    (units, NaN runs, gaps) are in :mod:`forcecast.lab.dataset.checks`.
    """
    problems: list[Problem] = []
    streams: dict[str, Stream | None] = {}
    for part, path in ref.files:
        name = relative_name(path, root)
        table, table_problems = read_table(path, name)
        problems.extend(table_problems)
        if table is None:
            continue
        specs, spec_problems = _column_specs(list(table.columns), name, part)
        problems.extend(spec_problems)
        values, value_problems = _numeric_values(table, name)
        problems.extend(value_problems)
        if spec_problems or value_problems:
            continue
        time = values[:, list(table.columns).index(TIME_COLUMN)]
        problems.extend(_time_problems(time, name))
        imu_cols = tuple(s.name for s in specs if s.kind == "imu")
        force_cols = tuple(s.name for s in specs if s.kind == "force")
        index = {c: i for i, c in enumerate(table.columns)}
        if imu_cols:
            streams["imu"] = Stream(time, imu_cols, values[:, [index[c] for c in imu_cols]], name)
        if force_cols:
            streams["force"] = Stream(time, force_cols, values[:, [index[c] for c in force_cols]], name)
    if problems and any(p.severity == "error" for p in problems):
        return None, problems
    imu = streams.get("imu")
    if imu is None:
        return None, [*problems, Problem(relative_name(ref.paths[0], root), "trial has no IMU columns")]
    force = streams.get("force")
    if force is not None and len(ref.files) == 2:
        overlap = min(imu.time_s[-1], force.time_s[-1]) - max(imu.time_s[0], force.time_s[0])
        if overlap <= 0:
            problems.append(
                Problem(
                    force.source,
                    f"force time {force.time_s[0]:.3f}..{force.time_s[-1]:.3f} s does not overlap IMU time "
                    f"{imu.time_s[0]:.3f}..{imu.time_s[-1]:.3f} s: both files must share one clock",
                    column=TIME_COLUMN,
                )
            )
            return None, problems
    return Trial(ref.subject_id, ref.trial_id, imu, force), problems


def load_trial(ref: TrialRef, root: Path | None = None) -> Trial:
    """Read a trial and raise :class:`DatasetError` on any structural error."""
    trial, problems = read_trial(ref, root)
    if trial is None:
        raise DatasetError(problems)
    return trial


def read_table(path: Path, name: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read one CSV or Parquet table; cells that are not numbers stay as text for reporting."""
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        return None, [Problem(name, f"cannot be read: {exc}")]
    except Exception as exc:  # pyarrow raises its own types for corrupt Parquet files
        return None, [Problem(name, f"cannot be read as {path.suffix[1:]}: {exc}")]
    if table.shape[0] < 2:
        return None, [Problem(name, f"has {table.shape[0]} data row(s); a trial needs at least 2")]
    table.columns = [str(c).strip() for c in table.columns]
    return table, []


def _split_trial_name(filename: str) -> tuple[str, Part] | None:
    for suffix in TABLE_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            for part in ("imu", "force"):
                if stem.endswith("." + part) and len(stem) > len(part) + 1:
                    return stem[: -len(part) - 1], part
            return (stem, "single") if stem and "." not in stem else None
    return None


def _column_specs(columns: list[str], name: str, part: Part) -> tuple[list[ColumnSpec], list[Problem]]:
    problems: list[Problem] = []
    specs: list[ColumnSpec] = []
    for column in columns:
        spec = parse_column(column)
        if spec is None:
            base, dot, suffix = column.rpartition(".")
            if dot and suffix.isdigit() and parse_column(base) is not None:
                problems.append(Problem(name, "duplicate column", column=base))
                continue
            close = difflib.get_close_matches(column.lower(), KNOWN_COLUMNS, n=1, cutoff=0.75)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else (" (expected time_s, <place>_<acc|gyr>_<x|y|z> or <l|r>_grf_<v|ap|ml>)")
            )
            problems.append(Problem(name, f"unknown column{hint}", column=column))
            continue
        if part == "imu" and spec.kind == "force":
            problems.append(Problem(name, "force column in an .imu file (put it in the .force file)", column=column))
        elif part == "force" and spec.kind == "imu":
            problems.append(Problem(name, "IMU column in a .force file (put it in the .imu file)", column=column))
        specs.append(spec)
    if TIME_COLUMN not in columns:
        problems.append(Problem(name, "missing the time column", column=TIME_COLUMN))
    problems.extend(_incomplete_sets(specs, name))
    return specs, problems


def _incomplete_sets(specs: list[ColumnSpec], name: str) -> list[Problem]:
    groups: dict[tuple[str, str], set[str]] = {}
    for s in specs:
        if s.kind != "time":
            groups.setdefault((s.place, s.quantity), set()).add(s.axis)
    problems = []
    for (place, quantity), axes in groups.items():
        wanted = FORCE_AXES if quantity == "grf" else SENSOR_AXES
        missing = [a for a in wanted if a not in axes]
        if missing:
            label = f"{place}_{quantity}" if quantity != "grf" else f"{place}_grf"
            problems.append(
                Problem(name, f"{label} lacks axis/axes {', '.join(missing)}: channels come in complete sets")
            )
    return problems


def _numeric_values(table: pd.DataFrame, name: str) -> tuple[NDArray[np.float64], list[Problem]]:
    problems: list[Problem] = []
    columns = []
    for column in table.columns:
        series = table[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            columns.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna() & (series.astype(str).str.strip().str.lower() != "nan")
        rows = np.flatnonzero(bad.to_numpy())
        for row in rows[:3]:
            problems.append(Problem(name, f"not a number: {series.iloc[row]!r}", int(row) + 1, column))
        if rows.size > 3:
            problems.append(Problem(name, f"{rows.size - 3} more cells that are not numbers", column=column))
        columns.append(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns), problems


def _time_problems(time: NDArray[np.float64], name: str) -> list[Problem]:
    problems: list[Problem] = []
    missing = np.flatnonzero(~np.isfinite(time))
    if missing.size:
        problems.append(Problem(name, f"time is missing ({missing.size} row(s))", int(missing[0]) + 1, TIME_COLUMN))
        return problems
    steps = np.diff(time)
    backwards = np.flatnonzero(steps <= 0)
    if backwards.size:
        first = int(backwards[0]) + 1  # the later row of the first bad pair, 1-based
        problems.append(
            Problem(
                name,
                f"time is not strictly increasing: {time[first]:.6g} s after {time[first - 1]:.6g} s"
                + (f" ({backwards.size} places in all)" if backwards.size > 1 else ""),
                first + 1,
                TIME_COLUMN,
            )
        )
        return problems
    median_step = float(np.median(steps))
    if median_step > 0.5:
        problems.append(
            Problem(
                name,
                f"median time step is {median_step:g}: time_s must be in seconds (looks like milliseconds)",
                column=TIME_COLUMN,
            )
        )
    elif median_step < 1e-5:
        problems.append(
            Problem(
                name, f"median time step is {median_step:g} s: over 100 kHz is not a gait recording", column=TIME_COLUMN
            )
        )
    return problems


def write_table(path: Path, columns: tuple[str, ...], values: NDArray[np.float64]) -> None:
    """Write one table (CSV or Parquet by suffix) with per-quantity rounding.

    The output is deterministic: the same numbers always give the same bytes.
    """
    rounded = np.empty_like(values)
    for j, column in enumerate(columns):
        spec = parse_column(column)
        if spec is None:
            raise ValueError(f"{path}: cannot write unknown column {column!r}")
        digits = DECIMALS["time" if spec.kind == "time" else spec.quantity]
        rounded[:, j] = np.round(values[:, j], digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa  # imported here: only writers need it at import time

    table = pa.table({c: rounded[:, j] for j, c in enumerate(columns)})
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd")
        return
    if path.suffix != ".csv":
        raise ValueError(f"{path}: trial files end in .csv or .parquet")
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    buffer.write((",".join(columns) + "\n").encode())
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    path.write_bytes(buffer.getvalue())


def write_trial(
    root: Path,
    trial: Trial,
    *,
    file_format: Literal["csv", "parquet"] = "csv",
    paired: bool | None = None,
) -> list[Path]:
    """Write a trial under ``root/trials/<subject_id>/``.

    Parameters
    ----------
    root
        Dataset root.
    trial
        The trial to write.
    file_format
        ``"csv"`` or ``"parquet"``.
    paired
        Write an ``.imu``/``.force`` pair. Default: a pair when the streams have different time
        bases, one file when they share one.

    Returns
    -------
    list of Path
        The files written.
    """
    folder = root / TRIALS_DIR / trial.subject_id
    suffix = "." + file_format
    force = trial.force
    same_base = force is None or (
        force.time_s.size == trial.imu.time_s.size and np.array_equal(force.time_s, trial.imu.time_s)
    )
    if paired is None:
        paired = not same_base
    if not paired and not same_base:
        raise ValueError(f"{trial.subject_id}/{trial.trial_id}: IMU and force have different time bases; write a pair")
    written = []
    if not paired:
        columns = (TIME_COLUMN, *trial.imu.columns, *(force.columns if force is not None else ()))
        parts = [trial.imu.time_s[:, None], trial.imu.values]
        if force is not None:
            parts.append(force.values)
        path = folder / f"{trial.trial_id}{suffix}"
        write_table(path, columns, np.hstack(parts))
        written.append(path)
        return written
    imu_path = folder / f"{trial.trial_id}.imu{suffix}"
    write_table(imu_path, (TIME_COLUMN, *trial.imu.columns), np.hstack([trial.imu.time_s[:, None], trial.imu.values]))
    written.append(imu_path)
    if force is not None:
        force_path = folder / f"{trial.trial_id}.force{suffix}"
        write_table(force_path, (TIME_COLUMN, *force.columns), np.hstack([force.time_s[:, None], force.values]))
        written.append(force_path)
    return written
