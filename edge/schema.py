"""Names, units and sign conventions of every signal in forcecast (dataset format v1).

IMU columns are ``<place>_<acc|gyr>_<x|y|z>`` in the sensor's own frame: acceleration in m/s²
including gravity, angular rate in rad/s. Force columns are ``<l|r>_grf_<v|ap|ml>`` in newtons with
``v`` up, ``ap`` forward and ``ml`` **medial** positive, so both legs share one sign convention.

The nominal sensor frame (before any mounting misalignment) is anatomical, with the person standing
upright: x anterior, y to the person's left, z superior. The foot sensor's x points to the toes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

TIME_COLUMN: Final = "time_s"

PLACES: Final = ("l_foot", "r_foot", "l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis")
SENSOR_KINDS: Final = ("acc", "gyr")
SENSOR_AXES: Final = ("x", "y", "z")
SIDES: Final = ("l", "r")
FORCE_AXES: Final = ("v", "ap", "ml")
AFFECTED_SIDES: Final = ("left", "right", "none")

UNITS: Final = {"acc": "m/s^2", "gyr": "rad/s", "grf": "N", "time": "s"}
GRAVITY_MPS2: Final = 9.80665

SUBJECT_COLUMNS: Final = ("subject_id", "body_mass_kg", "height_m", "hka_deg", "affected_side")

_IMU_RE: Final = re.compile(r"^(?P<place>[lr]_(?:foot|shank|thigh)|pelvis)_(?P<kind>acc|gyr)_(?P<axis>[xyz])$")
_FORCE_RE: Final = re.compile(r"^(?P<side>[lr])_grf_(?P<axis>v|ap|ml)$")

Kind = Literal["time", "imu", "force"]


@dataclass(frozen=True)
class ColumnSpec:
    """What one column of a trial file holds.

    Attributes
    ----------
    name
        The column name as written in the file.
    kind
        ``"time"``, ``"imu"`` or ``"force"``.
    place
        Sensor place for IMU columns, side (``"l"``/``"r"``) for force columns, else ``""``.
    quantity
        ``"acc"``, ``"gyr"`` or ``"grf"`` (empty for time).
    axis
        ``x``/``y``/``z`` for IMU columns, ``v``/``ap``/``ml`` for force columns.
    """

    name: str
    kind: Kind
    place: str = ""
    quantity: str = ""
    axis: str = ""

    @property
    def unit(self) -> str:
        """SI unit of the column."""
        return UNITS["time"] if self.kind == "time" else UNITS[self.quantity]


def imu_column(place: str, kind: str, axis: str) -> str:
    """Return the column name of one IMU axis, e.g. ``imu_column("l_shank", "gyr", "z")``."""
    name = f"{place}_{kind}_{axis}"
    if _IMU_RE.match(name) is None:
        raise ValueError(f"not an IMU channel: place={place!r} kind={kind!r} axis={axis!r}")
    return name


def force_column(side: str, axis: str) -> str:
    """Return the column name of one force axis, e.g. ``force_column("r", "ml")``."""
    name = f"{side}_grf_{axis}"
    if _FORCE_RE.match(name) is None:
        raise ValueError(f"not a force channel: side={side!r} axis={axis!r}")
    return name


def parse_column(name: str) -> ColumnSpec | None:
    """Interpret a column name of format v1, or return ``None`` if it is not one."""
    if name == TIME_COLUMN:
        return ColumnSpec(name, "time")
    if (m := _IMU_RE.match(name)) is not None:
        return ColumnSpec(name, "imu", m["place"], m["kind"], m["axis"])
    if (m := _FORCE_RE.match(name)) is not None:
        return ColumnSpec(name, "force", m["side"], "grf", m["axis"])
    return None


def all_imu_columns(places: tuple[str, ...] = PLACES) -> tuple[str, ...]:
    """All IMU column names for ``places`` in canonical order (place, then acc/gyr, then x/y/z)."""
    return tuple(imu_column(p, k, a) for p in places for k in SENSOR_KINDS for a in SENSOR_AXES)


def all_force_columns(sides: tuple[str, ...] = SIDES) -> tuple[str, ...]:
    """All force column names for ``sides`` in canonical order."""
    return tuple(force_column(s, a) for s in sides for a in FORCE_AXES)


KNOWN_COLUMNS: Final = (TIME_COLUMN, *all_imu_columns(), *all_force_columns())
