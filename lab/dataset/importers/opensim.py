"""OpenSim / OpenSense storage files (``.mot``, ``.sto``): a header ending in ``endheader``, then a table.

Typical content: ``time``, ``ground_force_vx``/``vy``/``vz``, ``ground_force_px``/``py``/``pz`` per foot
(often a ``1_`` or ``l_``/``r_`` prefix), in a y-up lab frame. Columns are mapped with the same
mapping file as every other format (``[[force]]`` and ``[[channel]]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import ForcecastValueError

MAX_HEADER_LINES = 200


class TableFormatError(ForcecastValueError):
    """A table file cannot be parsed; the message names the file, line and column."""

    reason = "table_invalid"


@dataclass(frozen=True)
class LabTable:
    """A parsed lab table: column labels, numbers, and header fields (empty for CSV)."""

    source: str
    labels: list[str]
    values: NDArray[np.float64]
    header: dict[str, str]


def parse_storage(text: str, source: str = "<text>") -> LabTable:
    """Parse the content of an OpenSim ``.mot``/``.sto`` file.

    Raises
    ------
    TableFormatError
        Naming the line (1-based) and column of what is wrong: no ``endheader``, counts that
        disagree with ``nRows``/``nColumns``, cells that are not numbers, time not increasing.
    """
    lines = text.splitlines()
    header: dict[str, str] = {}
    end = None
    for number, line in enumerate(lines[:MAX_HEADER_LINES]):
        stripped = line.strip()
        if stripped.lower() == "endheader":
            end = number
            break
        key, eq, value = stripped.partition("=")
        if eq:
            header[key.strip()] = value.strip()
    if end is None:
        raise TableFormatError(
            f"{source}: no 'endheader' line in the first {MAX_HEADER_LINES} lines: not a .mot/.sto file"
        )
    body = [(i + 1, line) for i, line in enumerate(lines) if i > end and line.strip()]
    if not body:
        raise TableFormatError(f"{source}: no column labels after 'endheader' (line {end + 1})")
    label_line, label_text = body[0]
    labels = [c.strip() for c in re.split(r"\t+" if "\t" in label_text else r"\s+", label_text.strip())]
    if len(set(labels)) != len(labels):
        duplicate = next(c for c in labels if labels.count(c) > 1)
        raise TableFormatError(f"{source}, line {label_line}: column {duplicate!r} appears twice")
    if labels[0].lower() != "time":
        raise TableFormatError(f"{source}, line {label_line}: first column is {labels[0]!r}, expected 'time'")
    rows = []
    line_numbers = []
    for line_number, line in body[1:]:
        line_numbers.append(line_number)
        cells = line.split()
        if len(cells) != len(labels):
            raise TableFormatError(
                f"{source}, line {line_number}: {len(cells)} value(s), expected {len(labels)} (one per column)"
            )
        row = []
        for label, cell in zip(labels, cells, strict=True):
            try:
                row.append(float(cell))
            except ValueError:
                raise TableFormatError(
                    f"{source}, line {line_number}, column {label!r}: not a number: {cell!r}"
                ) from None
        rows.append(row)
    if len(rows) < 2:
        raise TableFormatError(f"{source}: {len(rows)} data row(s); a trial needs at least 2")
    values = np.asarray(rows, dtype=np.float64)
    _check_counts(header, len(rows), len(labels), source)
    check_time(values[:, 0], source, line_numbers)
    return LabTable(source, labels, values, header)


def read_storage(path: Path) -> LabTable:
    """Read and parse a ``.mot``/``.sto`` file."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise TableFormatError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    return parse_storage(text, str(path))


def check_time(time: NDArray[np.float64], source: str, line_numbers: list[int] | None = None) -> None:
    """Time must be finite and strictly increasing; ``line_numbers`` (1-based, per row) name where it is not.

    Without line numbers, rows are named as data rows (1-based, header not counted).
    """

    def where(row: int) -> str:
        return f"line {line_numbers[row]}" if line_numbers is not None else f"row {row + 1}"

    bad = np.flatnonzero(~np.isfinite(time))
    if bad.size:
        raise TableFormatError(f"{source}, {where(int(bad[0]))}: time is not a finite number")
    backwards = np.flatnonzero(np.diff(time) <= 0)
    if backwards.size:
        row = int(backwards[0]) + 1
        raise TableFormatError(
            f"{source}, {where(row)}: time {time[row]:g} does not increase (after {time[row - 1]:g})"
        )


def _check_counts(header: dict[str, str], n_rows: int, n_columns: int, source: str) -> None:
    for key, found in (("nRows", n_rows), ("nColumns", n_columns)):
        match = next((v for k, v in header.items() if k.lower() == key.lower()), None)
        if match is None:
            continue
        try:
            declared = int(match)
        except ValueError:
            raise TableFormatError(f"{source}: header {key}={match!r} is not a whole number") from None
        if declared != found:
            raise TableFormatError(f"{source}: header says {key}={declared}, the table has {found}")
