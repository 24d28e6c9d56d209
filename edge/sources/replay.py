"""``replay:FILE``: play a recorded format-v1 trial as if its sensors were live.

At ``speed = 1`` chunks are released in real time (sleeping between them); ``speed = 0`` plays as
fast as the consumer takes them (benchmarks, batch processing). The file's own timestamps are kept,
gaps, NaN and all, so a replay exercises the same quality checks as a real sensor.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from forcecast.edge.schema import AFFECTED_SIDES, TIME_COLUMN, parse_column
from forcecast.edge.sources.base import Chunk, FloatArray, SourceError, SubjectProfile
from forcecast.edge.sources.lsm6dsox import ACC_RANGE_MPS2, GYR_RANGE_RADS

SUFFIXES = (".imu.csv", ".imu.parquet", ".csv", ".parquet")


class ReplaySource:
    """Replay one trial file (a single file or the ``.imu`` part of a pair).

    Parameters
    ----------
    path
        ``trials/<subject>/<trial>.csv`` or ``<trial>.imu.csv`` (a Parquet trial is refused: no pyarrow here).
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
    def subject(self) -> SubjectProfile | None:
        """The trial's subject from the dataset's ``subjects.csv``, if the file sits in a dataset.

        ``None`` when there is no such file, the subject is not listed, or its row is not usable
        (``forcecast data check`` names what is wrong with it).
        """
        listing = self.path.parent.parent.parent / "subjects.csv"
        if not listing.is_file():
            return None
        return _subject_row(listing, self.subject_id)

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
    if path.suffix == ".parquet":
        raise SourceError(
            f"replay: {path}: the device replays CSV trials (Parquet needs pyarrow, which it does not install); "
            "write a CSV copy with 'forcecast data resample DATASET --out COPY --rate-hz HZ --format csv'"
        )
    header, table = _read_csv(path)
    columns = tuple(c for c in header if (spec := parse_column(c)) is not None and spec.kind == "imu")
    if TIME_COLUMN not in header or not columns:
        raise SourceError(f"replay: {path}: needs a {TIME_COLUMN} column and IMU columns such as r_shank_acc_x")
    if table.shape[0] < 2:
        raise SourceError(f"replay: {path}: has {table.shape[0]} data row(s); a trial needs at least 2")
    values = table[:, [header.index(c) for c in columns]]
    time_s = table[:, header.index(TIME_COLUMN)]
    if not np.all(np.isfinite(time_s)):
        raise SourceError(f"replay: {path}: time_s has missing values")
    return path.parent.name, time_s, columns, values


def _read_csv(path: Path) -> tuple[list[str], FloatArray]:
    """Header and numbers of a CSV trial (blank cells are NaN); the standard library only, no pandas."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header = [c.strip() for c in next(reader, [])]
            rows: list[list[float]] = []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise SourceError(f"replay: {path}, row {line}: {len(row)} cells, the header has {len(header)}")
                rows.append([_cell(text, path, line, header[i]) for i, text in enumerate(row)])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"replay: {path}: cannot be read: {exc}") from None
    return header, np.array(rows, dtype=np.float64).reshape(len(rows), len(header))


def _cell(text: str, path: Path, line: int, column: str) -> float:
    text = text.strip()
    if not text or text.lower() == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise SourceError(
            f"replay: {path}, row {line}, column {column}: {text!r} is not a number; run 'forcecast data check' on it"
        ) from None


def _subject_row(listing: Path, subject_id: str) -> SubjectProfile | None:
    """The row of ``subject_id`` in ``subjects.csv`` as a profile, or ``None`` if absent or not usable."""
    try:
        with listing.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, skipinitialspace=True))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    for row in rows:
        cells = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if cells.get("subject_id") != subject_id:
            continue
        try:
            mass, height = float(cells["body_mass_kg"]), float(cells["height_m"])
            hka = float(cells["hka_deg"]) if cells.get("hka_deg") else None
        except (KeyError, ValueError):
            return None
        side = cells.get("affected_side", "")
        if side not in AFFECTED_SIDES or not (math.isfinite(mass) and math.isfinite(height)):
            return None
        if hka is not None and not math.isfinite(hka):
            return None
        return SubjectProfile(subject_id, mass, height, hka, side)
    return None
