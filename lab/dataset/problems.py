"""Problems found in a dataset, each naming the file, row and column it is about."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from forcecast.edge.errors import ForcecastValueError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a dataset.

    Attributes
    ----------
    file
        The file (or folder) concerned, relative to the dataset root where possible.
    message
        What is wrong, in words a lab user can act on.
    row
        1-based data row (the header is not counted; in a CSV, data row ``n`` is line ``n + 1``),
        or ``None`` when the problem is not about one row.
    column
        The column concerned, or ``None``.
    severity
        ``"error"`` makes the dataset unusable until fixed; ``"warning"`` is worth a look.
    """

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{self.severity}: {where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for JSON output."""
        return asdict(self)


class DatasetError(ForcecastValueError):
    """A dataset (or one of its files) cannot be used; ``problems`` says exactly why."""

    reason = "dataset_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        super().__init__("\n".join(lines) if lines else "invalid dataset")

    def report_lines(self) -> list[str]:
        """A headline with the number of problems, then one line per problem (file, row, column)."""
        return [f"the data has {len(self.problems)} problem(s):", *(f"  {p}" for p in self.problems)]


def relative_name(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies below it, else as given."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()
