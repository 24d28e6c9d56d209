"""The mapping file: which lab channel is which forcecast channel, in which unit.

A mapping file is TOML. Labels are matched by patterns, case-insensitively: a glob (``*``, ``?``,
``[...]``) or, after a ``re:`` prefix, a regular expression matched against the whole label::

    [lab]
    up_axis = "z"                 # the lab's vertical axis (positive up): x, y or z
    walking_direction = "auto"    # auto (from markers or CoP), or +x, -x, +y, -y, +z, -z
    force_coverage = "plates"     # plates (overground) or everywhere (instrumented treadmill)

    [[channel]]
    pattern = "*Sensor 1IM ACC Pitch"
    channel = "r_foot_acc_x"
    unit = "g"                    # g, mg, m/s^2, mm/s^2, rad/s, deg/s, mrad/s
    scale = 1.0                   # optional; -1 flips an axis

    [markers]
    l_heel = "LHEE"
    l_toe = "LTOE"
    r_heel = "RHEE"
    r_toe = "RTOE"

    [trials]
    exclude = ["*static*", "*ROM*"]

Force columns of table formats (OpenSim ``.mot``/``.sto``, CSV) are mapped with ``[[force]]``
tables onto per-foot lab-frame components ``<l|r>_force_<x|y|z>`` and ``<l|r>_cop_<x|y|z>``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from forcecast.edge.config import ConfigError, load_config
from forcecast.edge.schema import SENSOR_AXES, parse_column

ACC_UNITS = {"m/s^2": 1.0, "m/s2": 1.0, "mm/s^2": 1e-3, "g": 9.80665, "mg": 9.80665e-3}
GYR_UNITS = {"rad/s": 1.0, "mrad/s": 1e-3, "deg/s": 0.017453292519943295}
FORCE_UNITS = {"n": 1.0, "kn": 1000.0}
LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
DIRECTIONS = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")
MARKER_ROLES = ("l_heel", "l_toe", "r_heel", "r_toe")
_FORCE_TARGET = re.compile(r"^(?P<side>[lr])_(?P<kind>force|cop)_(?P<axis>[xyz])$")


class MappingError(ConfigError):
    """A mapping does not fit a file (a pattern matches nothing or several labels)."""

    reason = "mapping_mismatch"


@dataclass(frozen=True)
class ChannelRule:
    """One IMU channel: a label pattern, the forcecast channel it becomes, its unit and scale."""

    pattern: str = ""
    channel: str = ""
    unit: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class ForceRule:
    """One force or CoP column of a table format, mapped to ``<l|r>_<force|cop>_<x|y|z>`` (lab frame)."""

    pattern: str = ""
    target: str = ""
    unit: str = "N"
    scale: float = 1.0


@dataclass(frozen=True)
class Markers:
    """Label patterns of the heel and toe markers of each foot (empty: no such marker)."""

    l_heel: str = ""
    l_toe: str = ""
    r_heel: str = ""
    r_toe: str = ""

    def patterns(self) -> dict[str, str]:
        """Role -> pattern for the markers that are named."""
        return {role: getattr(self, role) for role in MARKER_ROLES if getattr(self, role)}


@dataclass(frozen=True)
class Lab:
    """How the lab is laid out and what its force data cover.

    Attributes
    ----------
    up_axis
        The lab axis pointing up (``x``, ``y`` or ``z``; C3D labs mostly use ``z``, OpenSim ``y``).
    walking_direction
        ``auto`` (from foot markers, else from the CoP sequence) or a fixed lab direction.
    force_coverage
        ``plates``: force is known only on clean plate contacts (overground); ``everywhere``:
        the force of each foot is measured all the time (split-belt treadmill), so 0 N is swing.
    force_threshold_n
        Vertical force above which a foot (or something) is on a plate.
    plate_margin_mm
        A clean contact needs the heel and toe markers at least this far inside the plate edges
        (negative: allowed that far outside, for markers set above a shoe's sole).
    time_column
        Name (pattern) of the time column of table formats.
    time_unit
        ``s`` or ``ms`` for table formats.
    """

    up_axis: Literal["x", "y", "z"] = "z"
    walking_direction: str = "auto"
    force_coverage: Literal["plates", "everywhere"] = "plates"
    force_threshold_n: float = 20.0
    plate_margin_mm: float = 0.0
    time_column: str = "time"
    time_unit: Literal["s", "ms"] = "s"
    length_unit: str = "m"

    def __post_init__(self) -> None:
        if self.walking_direction not in DIRECTIONS:
            raise ValueError(f"walking_direction {self.walking_direction!r} is not one of {', '.join(DIRECTIONS)}")
        if self.walking_direction[1:] == self.up_axis:
            raise ValueError(f"walking_direction {self.walking_direction!r} is along up_axis {self.up_axis!r}")
        if not 1.0 <= self.force_threshold_n <= 200.0:
            raise ValueError(f"force_threshold_n must be 1..200 N, got {self.force_threshold_n}")
        if self.length_unit.lower() not in LENGTH_UNITS:
            raise ValueError(f"length_unit {self.length_unit!r} is not one of {', '.join(LENGTH_UNITS)}")


@dataclass(frozen=True)
class Trials:
    """Which files are trials: glob patterns on the file name (without folder), case-insensitive."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def wanted(self, name: str) -> str | None:
        """``None`` if the file is a trial to import, else the reason it is left out."""
        lowered = name.lower()
        if not any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.include):
            return f"not matched by [trials] include {list(self.include)}"
        for pattern in self.exclude:
            if fnmatch.fnmatchcase(lowered, pattern.lower()):
                return f"excluded by [trials] exclude pattern {pattern!r}"
        return None


@dataclass(frozen=True)
class MappingFile:
    """The whole mapping file, as written in TOML (see the module docstring)."""

    lab: Lab = field(default_factory=Lab)
    channel: tuple[ChannelRule, ...] = ()
    force: tuple[ForceRule, ...] = ()
    markers: Markers = field(default_factory=Markers)
    trials: Trials = field(default_factory=Trials)


@dataclass(frozen=True)
class Mapping:
    """A checked mapping: the file's content plus where it came from (for messages)."""

    source: str
    lab: Lab
    channels: tuple[ChannelRule, ...]
    forces: tuple[ForceRule, ...]
    markers: Markers
    trials: Trials

    def imu_factor(self, rule: ChannelRule) -> float:
        """Multiplier from the rule's unit to SI (m/s², rad/s), scale included."""
        units = ACC_UNITS if "_acc_" in rule.channel else GYR_UNITS
        return units[rule.unit.lower()] * rule.scale

    def force_factor(self, rule: ForceRule) -> float:
        """Multiplier from the rule's unit to N (force) or m (CoP), scale included."""
        units = FORCE_UNITS if "_force_" in rule.target else LENGTH_UNITS
        return units[rule.unit.lower()] * rule.scale


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file.

    Raises
    ------
    ConfigError
        Naming the file, the table and entry, and the value that is wrong: an unknown unit or
        channel, a channel mapped twice, an incomplete axis set, a pattern that is not valid.
    """
    path = Path(path)
    content = load_config(MappingFile, path)
    where = f"{path}:"
    seen: dict[str, int] = {}
    groups: dict[tuple[str, str], set[str]] = {}
    for i, rule in enumerate(content.channel, start=1):
        at = f"{where} [[channel]] #{i}"
        if not rule.pattern:
            raise ConfigError(f"{at}: pattern is missing")
        _check_pattern(rule.pattern, at)
        spec = parse_column(rule.channel)
        if spec is None or spec.kind != "imu":
            raise ConfigError(
                f"{at} (pattern {rule.pattern!r}): channel {rule.channel!r} is not <place>_<acc|gyr>_<x|y|z>"
            )
        units = ACC_UNITS if spec.quantity == "acc" else GYR_UNITS
        if rule.unit.lower() not in units:
            raise ConfigError(
                f"{at} ({rule.channel}): unit {rule.unit!r} is not a {spec.quantity} unit (one of {', '.join(units)})"
            )
        if rule.scale == 0 or rule.scale != rule.scale:
            raise ConfigError(f"{at} ({rule.channel}): scale must be a non-zero number")
        if rule.channel in seen:
            raise ConfigError(
                f"{at}: channel {rule.channel!r} is mapped twice (also by [[channel]] #{seen[rule.channel]})"
            )
        seen[rule.channel] = i
        groups.setdefault((spec.place, spec.quantity), set()).add(spec.axis)
    for (place, quantity), axes in sorted(groups.items()):
        missing = [a for a in SENSOR_AXES if a not in axes]
        if missing:
            raise ConfigError(
                f"{where} [[channel]]: {place}_{quantity} has no mapping for axis/axes {', '.join(missing)} "
                "(channels come in complete x, y, z sets)"
            )
    force_seen: dict[str, int] = {}
    for i, force_rule in enumerate(content.force, start=1):
        at = f"{where} [[force]] #{i}"
        _check_pattern(force_rule.pattern, at)
        match = _FORCE_TARGET.match(force_rule.target)
        if match is None:
            raise ConfigError(f"{at}: target {force_rule.target!r} is not <l|r>_<force|cop>_<x|y|z>")
        units = FORCE_UNITS if match["kind"] == "force" else LENGTH_UNITS
        if force_rule.unit.lower() not in units:
            raise ConfigError(f"{at} ({force_rule.target}): unit {force_rule.unit!r} is not one of {', '.join(units)}")
        if force_rule.target in force_seen:
            raise ConfigError(f"{at}: target {force_rule.target!r} is mapped twice")
        force_seen[force_rule.target] = i
    for side in ("l", "r"):
        present = [a for a in "xyz" if f"{side}_force_{a}" in force_seen]
        if present and len(present) != 3:
            raise ConfigError(f"{where} [[force]]: {side}_force needs x, y and z, has only {', '.join(present)}")
    for role, pattern in content.markers.patterns().items():
        _check_pattern(pattern, f"{where} [markers] {role}")
    for key in ("include", "exclude"):
        for pattern in getattr(content.trials, key):
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{where} [trials] {key}: patterns must be non-empty text")
    return Mapping(str(path), content.lab, content.channel, content.force, content.markers, content.trials)


def matches(pattern: str, label: str) -> bool:
    """Whether ``label`` matches ``pattern`` (glob, or ``re:`` regex on the whole label), ignoring case."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], label.strip(), flags=re.IGNORECASE) is not None
    return fnmatch.fnmatchcase(label.strip().lower(), pattern.lower())


def find_label(pattern: str, labels: list[str], where: str, file: str) -> int:
    """Index of the one label matching ``pattern``.

    Raises
    ------
    MappingError
        If no label or more than one matches; the message names the mapping entry, the file and labels.
    """
    hits = [i for i, label in enumerate(labels) if matches(pattern, label)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        shown = ", ".join(repr(label) for label in labels[:12]) + (" ..." if len(labels) > 12 else "")
        raise MappingError(f"{where}: pattern {pattern!r} matches no label of {file} (labels: {shown})")
    names = ", ".join(repr(labels[i]) for i in hits[:4])
    raise MappingError(f"{where}: pattern {pattern!r} matches {len(hits)} labels of {file} ({names}): make it specific")


def _check_pattern(pattern: str, where: str) -> None:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(f"{where}: pattern is empty")
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except re.error as exc:
            raise ConfigError(f"{where}: pattern {pattern!r} is not a valid regular expression ({exc})") from None
