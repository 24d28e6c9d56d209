"""``replay:FILE``: play a recorded format-v1 trial as if its sensors were live.

At ``speed = 1`` chunks are released in real time (sleeping between them); ``speed = 0`` plays as
fast as the consumer takes them (benchmarks, batch processing). The file's own timestamps are kept,
gaps, NaN and all, so a replay exercises the same quality checks as a real sensor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.dataset.problems import DatasetError
from edge.dataset.subjects import Subject, load_subjects
from edge.dataset.trial import read_table
from edge.schema import TIME_COLUMN, parse_column
from edge.sources.base import Chunk, FloatArray, SourceError
from edge.sources.lsm6dsox import ACC_RANGE_MPS2, GYR_RANGE_RADS

SUFFIXES = (".imu.csv", ".imu.parquet", ".csv", ".parquet")


class ReplaySource:
    """Replay one trial file (a single file or the ``.imu`` part of a pair).

    Parameters
    ----------
    path
        ``trials/<subject>/<trial>.csv|.parquet`` or ``<trial>.imu.csv|.parquet``.
    speed
        1 = real time, 0 = as fast as possible, other values scale time.
    chunk_s
        Duration of each chunk (the real device reads its FIFO about this often).
    acc_range_mps2, gyr_range_rads
        Full scale of the sensors that recorded the file (default ±16 g, ±2000 °/s).
    """

    def __init__(
        self,
        path: Path | str,
        speed: float = 1.0,
        chunk_s: float = 0.04,
        acc_range_mps2: float = ACC_RANGE_MPS2,
        gyr_range_rads: float = GYR_RANGE_RADS,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"replay: {self.path}: file not found")
        if speed < 0:
            raise SourceError(f"replay: speed must be ≥ 0, got {speed}")
        self.subject_id, self.time_s, self.columns, self.values = _load(self.path)
        steps = np.diff(self.time_s)
        if not np.any(steps > 0):
            raise SourceError(f"replay: {self.path}: cannot tell the sample rate from time_s")
        self.rate_hz = float(1.0 / np.median(steps[steps > 0]))
        if not 10.0 <= self.rate_hz <= 2000.0:
            raise SourceError(f"replay: {self.path}: {self.rate_hz:.3g} Hz is not an IMU rate (time_s in seconds?)")
        self.acc_range_mps2 = acc_range_mps2
        self.gyr_range_rads = gyr_range_rads
        self.speed = speed
        self.chunk_s = chunk_s
        self._closed = False

    @property
    def subject(self) -> Subject | None:
        """The trial's subject from the dataset's ``subjects.csv``, if the file sits in a dataset."""
        listing = self.path.parent.parent.parent / "subjects.csv"
        if not listing.is_file():
            return None
        try:
            return next((s for s in load_subjects(listing) if s.subject_id == self.subject_id), None)
        except DatasetError:
            return None

    def chunks(self) -> Iterator[Chunk]:
        """Yield the trial in chunks of ``chunk_s`` (paced when ``speed > 0``)."""
        n = self.time_s.size
        step = max(1, round(self.chunk_s * self.rate_hz))
        started = time.monotonic()
        elapsed = np.concatenate([[0.0], np.cumsum(np.clip(np.diff(self.time_s), 0.0, None))])
        for a in range(0, n, step):
            if self._closed:
                return
            b = min(a + step, n)
            if self.speed > 0:
                due = started + float(elapsed[b - 1]) / self.speed
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            yield Chunk(self.time_s[a:b], self.values[a:b], self.columns)

    def close(self) -> None:
        """Stop after the current chunk."""
        self._closed = True


def _load(path: Path) -> tuple[str, FloatArray, tuple[str, ...], FloatArray]:
    """Subject id, time, IMU columns and values of a trial file.

    Read leniently on purpose: a device log may hold what a dataset may not (a clock that stepped
    back), and the runtime's quality checks are what must cope with it.
    """
    if not any(path.name.endswith(s) for s in SUFFIXES):
        raise SourceError(f"replay: {path}: not a format-v1 trial file ({', '.join(SUFFIXES)})")
    table, problems = read_table(path, path.name)
    if table is None:
        raise SourceError(f"replay: {problems[0]}")
    columns = tuple(c for c in table.columns if (spec := parse_column(c)) is not None and spec.kind == "imu")
    if TIME_COLUMN not in table.columns or not columns:
        raise SourceError(f"replay: {path}: needs a {TIME_COLUMN} column and IMU columns such as r_shank_acc_x")
    try:
        values = table[list(columns)].to_numpy(dtype=np.float64)
        time_s = table[TIME_COLUMN].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise SourceError(f"replay: {path}: non-numeric cells ({exc}); run 'forcecast data check' on it") from None
    if not np.all(np.isfinite(time_s)):
        raise SourceError(f"replay: {path}: time_s has missing values")
    return path.parent.name, time_s, columns, values
