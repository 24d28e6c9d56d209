"""Generic CSV lab tables, and turning any lab table (CSV or OpenSim) into a :class:`Recording`.

A CSV table has one header row of labels and one time column (``[lab] time_column``, in
``[lab] time_unit``). IMU channels are picked by ``[[channel]]`` rules and per-foot force and CoP by
``[[force]]`` rules of the mapping file, exactly as for C3D and OpenSim files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forcecast.lab.dataset.importers.mapping import Mapping, MappingError, find_label
from forcecast.lab.dataset.importers.opensim import LabTable, TableFormatError, check_time
from forcecast.lab.dataset.importers.recording import Recording, held_imu, up_rotation


def read_csv_table(path: Path) -> LabTable:
    """Read a CSV lab table; every cell must be a number (blank cells are missing samples)."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise TableFormatError(f"{path}: cannot be read as CSV ({exc})") from None
    labels = [str(c).strip() for c in frame.columns]
    columns = []
    for label in frame.columns:
        numbers = pd.to_numeric(frame[label], errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy() & frame[label].notna().to_numpy())
        if bad.size:
            cell = frame[label].iloc[bad[0]]
            raise TableFormatError(
                f"{path}, row {int(bad[0]) + 1}, column {str(label).strip()!r}: not a number: {cell!r}"
            )
        columns.append(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if len(columns) == 0 or frame.shape[0] < 2:
        raise TableFormatError(f"{path}: needs a header row and at least 2 data rows")
    return LabTable(str(path), labels, np.column_stack(columns), {})


def table_recording(table: LabTable, mapping: Mapping, time_label: str | None = None) -> Recording:
    """A :class:`Recording` from a lab table, with columns picked by the mapping.

    Raises
    ------
    MappingError
        When a pattern matches no column or several.
    TableFormatError
        When time is not usable.
    """
    if time_label is None:
        index = find_label(mapping.lab.time_column, table.labels, f"{mapping.source}: [lab] time_column", table.source)
        time = table.values[:, index] * (0.001 if mapping.lab.time_unit == "ms" else 1.0)
    else:  # OpenSim files: time in seconds, always the first column
        index = table.labels.index(time_label)
        time = table.values[:, index]
    check_time(time, table.source)
    notes: list[str] = []
    imu = None
    if mapping.channels:
        columns, blocks = [], []
        for i, rule in enumerate(mapping.channels, start=1):
            j = find_label(
                rule.pattern, table.labels, f"{mapping.source}: [[channel]] #{i} ({rule.channel})", table.source
            )
            columns.append(rule.channel)
            blocks.append(table.values[:, j] * mapping.imu_factor(rule))
        imu, note = held_imu(time, np.column_stack(blocks), tuple(columns), table.source)
        if note is not None:
            notes.append(note)
    in_degrees = next((v for k, v in table.header.items() if k.lower() == "indegrees"), "").strip().lower() == "yes"
    if in_degrees and any("_gyr_" in r.channel and r.unit.lower() != "deg/s" for r in mapping.channels):
        notes.append(
            "the file says inDegrees=yes but the mapping reads its gyroscope columns as radians: check the units"
        )
    rotation = up_rotation(mapping.lab.up_axis)
    picked: dict[str, np.ndarray] = {}
    for i, force_rule in enumerate(mapping.forces, start=1):
        where = f"{mapping.source}: [[force]] #{i} ({force_rule.target})"
        j = find_label(force_rule.pattern, table.labels, where, table.source)
        picked[force_rule.target] = table.values[:, j] * mapping.force_factor(force_rule)
    foot_force, foot_cop = {}, {}
    for side in ("l", "r"):
        if f"{side}_force_x" in picked:
            lab = np.column_stack([picked[f"{side}_force_{a}"] for a in "xyz"])
            foot_force[side] = lab @ rotation.T
        if all(f"{side}_cop_{a}" in picked for a in "xyz"):
            cop = np.column_stack([picked[f"{side}_cop_{a}"] for a in "xyz"]) @ rotation.T
            if side in foot_force:
                cop[~(foot_force[side][:, 2] > mapping.lab.force_threshold_n)] = np.nan
            foot_cop[side] = cop
    if imu is None and not foot_force:
        raise MappingError(f"{mapping.source}: maps neither IMU channels nor force columns found in {table.source}")
    return Recording(
        source=table.source,
        imu=imu,
        force_time_s=time if foot_force else np.zeros(0),
        foot_force=foot_force,
        foot_cop=foot_cop,
        notes=tuple(notes),
    )
