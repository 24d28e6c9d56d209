"""Read a C3D file (force plates, foot markers, analog IMU channels) with ``ezc3d``.

Force plates are extracted by ezc3d from the ``FORCE_PLATFORM`` parameters (types 1–4, calibration
matrix applied, force and centre of pressure expressed in the lab frame). ezc3d reports the force
as the plate's reaction on the subject for the usual plate setups; when a plate's loaded vertical
force comes out negative, it is negated (reported in the notes). IMU channels are analog channels
picked and scaled by the mapping; when the IMU system was recorded as sample-and-hold at the analog
rate, its own samples are recovered (:func:`remove_sample_and_hold`).

``ezc3d`` is imported inside :func:`read_c3d` so that the rest of forcecast works without it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.errors import ForcecastValueError
from forcecast.lab.dataset.importers.mapping import Mapping, MappingError, find_label
from forcecast.lab.dataset.importers.recording import (
    FloatArray,
    Plate,
    Recording,
    held_imu,
    missing_markers,
    up_rotation,
)

LENGTH_TO_M = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}


class C3DError(ForcecastValueError):
    """A C3D file cannot be used; the message names the file and what is wrong."""

    reason = "c3d_invalid"


def read_c3d(path: Path, mapping: Mapping) -> Recording:
    """Read one C3D file into a :class:`Recording` (lab frame turned to z up, SI units).

    Raises
    ------
    C3DError
        If the file cannot be read, or lacks what the mapping asks for.
    MappingError
        If a mapping pattern matches no label or several.
    """
    try:
        import ezc3d
    except ImportError as exc:  # the lab extra is not installed
        raise C3DError(f"{path}: reading C3D needs ezc3d (pip install 'forcecast[lab]'): {exc}") from None
    try:
        c3d = ezc3d.c3d(str(path), extract_forceplat_data=True)
    except Exception as exc:  # ezc3d raises plain RuntimeError/ValueError for every kind of damage
        raise C3DError(f"{path}: cannot be read as C3D ({exc})") from None
    expected = _header_frames(path)
    found = int(c3d["data"]["points"].shape[2]) if c3d["data"]["points"].size else None
    if expected is not None and found is not None and found < expected:
        raise C3DError(f"{path}: truncated: the header announces {expected} frames, the file holds {found}")
    params = c3d["parameters"]
    rotation = up_rotation(mapping.lab.up_axis)
    notes: list[str] = []
    point_rate = float(params["POINT"]["RATE"]["value"][0])
    analogs = c3d["data"]["analogs"]
    analog_rate = float(params["ANALOG"]["RATE"]["value"][0]) if analogs.size else 0.0
    first_frame = int(c3d["header"]["points"]["first_frame"])
    start_s = first_frame / point_rate if point_rate > 0 else 0.0

    unit = _point_unit(params)
    markers: dict[str, FloatArray] = {}
    marker_time = np.zeros(0)
    points = c3d["data"]["points"]
    if mapping.markers.patterns():
        labels = [str(label) for label in params["POINT"]["LABELS"]["value"]]
        labels += [
            str(label)
            for key in sorted(params["POINT"])
            if key.startswith("LABELS") and key != "LABELS"
            for label in params["POINT"][key]["value"]
        ]
        for role, pattern in mapping.markers.patterns().items():
            index = find_label(pattern, labels, f"{mapping.source}: [markers] {role}", str(path))
            xyz = missing_markers(points[:3, index, :].T) * LENGTH_TO_M[unit]
            markers[role] = xyz @ rotation.T
        marker_time = start_s + np.arange(points.shape[2]) / point_rate

    n_analog = analogs.shape[2] if analogs.size else 0
    analog_time = start_s + np.arange(n_analog) / analog_rate if n_analog else np.zeros(0)
    plates = []
    for number, platform in enumerate(c3d["data"]["platform"], start=1):
        scale_force = 1000.0 if str(platform["unit_force"]).strip().lower() == "kn" else 1.0
        scale_pos = LENGTH_TO_M.get(str(platform["unit_position"]).strip().lower(), 1e-3)
        force = np.asarray(platform["force"], dtype=np.float64).T * scale_force
        cop = np.asarray(platform["center_of_pressure"], dtype=np.float64).T * scale_pos
        corners = np.asarray(platform["corners"], dtype=np.float64).T * scale_pos
        force, cop, corners = force @ rotation.T, cop @ rotation.T, corners @ rotation.T
        loaded = np.abs(force[:, 2]) > mapping.lab.force_threshold_n
        if loaded.any() and np.median(force[loaded, 2]) < 0:
            force = -force
            notes.append(f"plate {number}: vertical force was negative when loaded; taken as the force on the plate")
        cop[~loaded] = np.nan
        plates.append(Plate(number, corners, force, cop))
    if not plates:
        notes.append("no force plates in the file")

    imu = None
    if mapping.channels:
        if not n_analog:
            raise C3DError(f"{path}: the mapping names IMU channels but the file has no analog data")
        labels = [str(label) for label in params["ANALOG"]["LABELS"]["value"]]
        labels += [
            str(label)
            for key in sorted(params["ANALOG"])
            if key.startswith("LABELS") and key != "LABELS"
            for label in params["ANALOG"][key]["value"]
        ]
        columns, blocks = [], []
        for i, rule in enumerate(mapping.channels, start=1):
            index = find_label(rule.pattern, labels, f"{mapping.source}: [[channel]] #{i} ({rule.channel})", str(path))
            columns.append(rule.channel)
            blocks.append(analogs[0, index, :].astype(np.float64) * mapping.imu_factor(rule))
        imu, note = held_imu(analog_time, np.column_stack(blocks), tuple(columns), str(path))
        if note is not None:
            notes.append(note)
    elif not markers and not plates:
        raise MappingError(f"{mapping.source}: maps no IMU channel and no marker, and {path} has no force plate")
    return Recording(
        source=str(path),
        imu=imu,
        force_time_s=analog_time if plates else np.zeros(0),
        plates=tuple(plates),
        marker_time_s=marker_time,
        markers=markers,
        notes=tuple(notes),
    )


def _header_frames(path: Path) -> int | None:
    """Frame count announced by the C3D header (ezc3d silently reads fewer from a truncated file).

    ``None`` when the header cannot tell (over 65535 frames, or an unknown processor type).
    """
    with path.open("rb") as handle:
        header = handle.read(512)
        if len(header) < 512 or header[0] < 2:
            return None
        handle.seek((header[0] - 1) * 512)
        parameter_start = handle.read(4)
    if len(parameter_start) < 4 or parameter_start[3] not in (84, 85, 86):
        return None
    order = ">" if parameter_start[3] == 86 else "<"  # MIPS is big-endian; Intel and DEC little
    first, last = struct.unpack(order + "HH", header[6:10])
    if last == 65535 or last < first:
        return None
    return last - first + 1


def _point_unit(params: dict[str, Any]) -> str:
    units = params["POINT"].get("UNITS", {}).get("value", ["mm"])
    unit = str(units[0]).strip().lower() if len(units) else "mm"
    if unit not in LENGTH_TO_M:
        raise C3DError(f"POINT:UNITS is {unit!r}: expected mm, cm or m")
    return unit
