"""``subjects.csv``: who was measured, with the static features the models use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forcecast.edge.schema import AFFECTED_SIDES, SUBJECT_COLUMNS
from forcecast.lab.dataset.problems import DatasetError, Problem, relative_name

SUBJECTS_FILE = "subjects.csv"

# Plausible ranges; values outside them are almost always a unit slip.
MASS_RANGE_KG = (20.0, 300.0)
HEIGHT_RANGE_M = (0.8, 2.5)
HKA_LIMIT_DEG = 30.0


@dataclass(frozen=True)
class Subject:
    """One measured person.

    Attributes
    ----------
    subject_id
        Identifier, also the name of the subject's folder under ``trials/``.
    body_mass_kg, height_m
        Anthropometrics.
    hka_deg
        Frontal-plane hip-knee-ankle alignment, varus positive; ``None`` when unknown.
    affected_side
        ``"left"``, ``"right"`` or ``"none"``.
    extra
        Any further columns of ``subjects.csv`` (e.g. ``group``), as text.
    """

    subject_id: str
    body_mass_kg: float
    height_m: float
    hka_deg: float | None
    affected_side: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def body_weight_n(self) -> float:
        """Body weight in newtons (mass times standard gravity)."""
        return self.body_mass_kg * 9.80665


def read_subjects(path: Path, root: Path | None = None) -> tuple[list[Subject], list[Problem]]:
    """Read and validate ``subjects.csv``.

    Parameters
    ----------
    path
        The file to read.
    root
        Dataset root, used only to print the file name relative to it.

    Returns
    -------
    subjects, problems
        Every row that is valid, and one problem per thing wrong (rows with errors are left out
        of ``subjects`` but named in ``problems``).
    """
    name = relative_name(path, root)
    if not path.is_file():
        return [], [Problem(name, "file not found: a dataset needs subjects.csv at its root")]
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return [], [Problem(name, f"cannot be parsed as CSV: {exc}")]
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in SUBJECT_COLUMNS if c not in table.columns]
    if missing:
        return [], [Problem(name, f"missing required column(s): {', '.join(missing)}")]

    problems: list[Problem] = []
    subjects: list[Subject] = []
    seen: dict[str, int] = {}
    extra_columns = [c for c in table.columns if c not in SUBJECT_COLUMNS]
    for index, raw in enumerate(table.to_dict("records"), start=1):
        row_problems: list[Problem] = []

        def bad(column: str, message: str, _row: int = index, _out: list[Problem] = row_problems) -> None:
            _out.append(Problem(name, message, _row, column))

        subject_id = raw["subject_id"].strip()
        if not subject_id:
            bad("subject_id", "empty subject_id")
        elif subject_id in seen:
            bad("subject_id", f"duplicate subject_id {subject_id!r} (first on row {seen[subject_id]})")
        elif "/" in subject_id or "\\" in subject_id or subject_id.startswith("."):
            bad("subject_id", f"subject_id {subject_id!r} cannot name a folder")
        else:
            seen[subject_id] = index

        mass = _number(raw["body_mass_kg"])
        if mass is None:
            bad("body_mass_kg", f"not a number: {raw['body_mass_kg']!r}")
        elif not MASS_RANGE_KG[0] <= mass <= MASS_RANGE_KG[1]:
            hint = " (looks like grams)" if mass > 1000 else ""
            bad("body_mass_kg", f"{mass:g} kg is outside {MASS_RANGE_KG[0]:g}..{MASS_RANGE_KG[1]:g} kg{hint}")

        height = _number(raw["height_m"])
        if height is None:
            bad("height_m", f"not a number: {raw['height_m']!r}")
        elif not HEIGHT_RANGE_M[0] <= height <= HEIGHT_RANGE_M[1]:
            hint = " (looks like centimetres)" if 80 <= height <= 250 else ""
            hint = " (looks like millimetres)" if 800 <= height <= 2500 else hint
            bad("height_m", f"{height:g} m is outside {HEIGHT_RANGE_M[0]:g}..{HEIGHT_RANGE_M[1]:g} m{hint}")

        hka: float | None = None
        if raw["hka_deg"].strip():
            hka = _number(raw["hka_deg"])
            if hka is None:
                bad("hka_deg", f"not a number: {raw['hka_deg']!r} (leave it blank when unknown)")
            elif abs(hka) > HKA_LIMIT_DEG:
                bad("hka_deg", f"{hka:g}° is beyond ±{HKA_LIMIT_DEG:g}° (degrees, varus positive)")

        side = raw["affected_side"].strip()
        if side not in AFFECTED_SIDES:
            bad("affected_side", f"{side!r} is not one of {', '.join(AFFECTED_SIDES)}")

        problems.extend(row_problems)
        if not row_problems and mass is not None and height is not None:
            extra = {c: str(raw[c]) for c in extra_columns}
            subjects.append(Subject(subject_id, mass, height, hka, side, extra))
    if table.empty:
        problems.append(Problem(name, "no subjects listed"))
    return subjects, problems


def load_subjects(path: Path) -> list[Subject]:
    """Read ``subjects.csv`` and raise :class:`DatasetError` if anything is wrong with it."""
    subjects, problems = read_subjects(path)
    if problems:
        raise DatasetError(problems)
    return subjects


def write_subjects(path: Path, subjects: list[Subject]) -> None:
    """Write ``subjects.csv`` (format v1); unknown ``hka_deg`` and body mass (NaN) are written blank."""
    extra_columns = sorted({k for s in subjects for k in s.extra})
    rows = []
    for s in subjects:
        row = {
            "subject_id": s.subject_id,
            "body_mass_kg": f"{s.body_mass_kg:.1f}" if math.isfinite(s.body_mass_kg) else "",
            "height_m": f"{s.height_m:.3f}",
            "hka_deg": "" if s.hka_deg is None else f"{s.hka_deg:.1f}",
            "affected_side": s.affected_side,
        }
        row.update({c: s.extra.get(c, "") for c in extra_columns})
        rows.append(row)
    pd.DataFrame(rows, columns=[*SUBJECT_COLUMNS, *extra_columns]).to_csv(path, index=False, lineterminator="\n")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
