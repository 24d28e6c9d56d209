"""Typed configuration: frozen dataclasses filled from TOML, with errors that name the key.

Every tunable of forcecast lives in a dataclass with defaults. ``load_config`` reads a TOML file
(optionally one table of it) into such a class, checking each value's type, so a typo or a wrong
type is reported as ``synth.toml: [synth] duration_s: expected a number, got 'sixty'`` instead of
failing later somewhere else.

Numbers must be finite (NaN and ±inf are refused everywhere), and a field declared with
:func:`bounded` must also lie in its range; an unknown key is named with the closest known one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from forcecast.edge.errors import ForcecastValueError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")

BOUNDS_KEY = "forcecast.bounds"
"""Field metadata key holding a :class:`Bounds`."""


class ConfigError(ForcecastValueError):
    """A configuration file or value is wrong; the message names the file and key."""

    reason = "config_invalid"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range a numeric configuration value must lie in.

    Attributes
    ----------
    low, high
        Smallest and largest value allowed (``None``: unbounded on that side).
    low_open
        The range excludes ``low`` itself (e.g. "> 0").
    unit
        Unit named in the error message (``"s"``, ``"kg"``...).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    unit: str = ""

    def describe(self) -> str:
        """The range in words, e.g. ``> 0 and ≤ 1 s``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{_number(self.low)}..{_number(self.high)}{unit}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"≤ {_number(self.high)}")
        return " and ".join(parts) + unit

    def problem(self, value: object) -> str | None:
        """Why ``value`` is out of range, or None if it is fine (None itself is always fine: "not set")."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number (allowed: {self.describe()})"
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and value > self.high
        if below or above:
            return f"{_number(value)} is out of range (allowed: {self.describe()})"
        return None


def _number(value: float) -> str:
    """A number as people write it in a config: integers in full, others with up to six significant digits."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


def bounded(
    default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False, unit: str = ""
) -> Any:
    """A dataclass field with a default and a range checked by :func:`from_dict` and :func:`check_bounds`.

    Parameters
    ----------
    default
        The field's default.
    low, high
        Smallest and largest allowed value (``None``: no limit).
    low_open
        Exclude ``low`` itself.
    unit
        Unit for error messages.
    """
    return dataclasses.field(default=default, metadata={BOUNDS_KEY: Bounds(low, high, low_open, unit)})


def check_bounds(obj: DataclassInstance) -> None:
    """Check every :func:`bounded` field of dataclass instance ``obj`` (call it from ``__post_init__``).

    Raises
    ------
    ValueError
        Naming the field and its allowed range.
    """
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get(BOUNDS_KEY)
        if bounds is not None:
            problem = bounds.problem(getattr(obj, f.name))
            if problem is not None:
                raise ValueError(f"{f.name}: {problem}")


def load_config(cls: type[T], path: Path | str, table: str | None = None) -> T:
    """Read ``path`` (TOML) into dataclass ``cls``.

    Parameters
    ----------
    cls
        A dataclass whose fields all have defaults.
    path
        TOML file.
    table
        Name of the table to read (e.g. ``"synth"``); ``None`` reads the top level.
    """
    path = Path(path)
    data = read_toml(path)
    prefix = f"{path}: "
    if table is not None:
        if table not in data:
            raise ConfigError(f"{path}: no [{table}] table")
        data = data[table]
        prefix += f"[{table}] "
    return from_dict(cls, data, prefix)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every way reading it can fail into one :class:`ConfigError` naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02X})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from plain data, checking names and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(_at_table(where, f"expected a table, got {type(data).__name__}"))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        named = "; ".join(_unknown_key(key, list(fields)) for key in unknown)
        raise ConfigError(_at_table(where, f"{named}; known: {', '.join(fields)}"))
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(_at_table(where, f"missing key(s) {', '.join(missing)}"))
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{where}{name}")
        bounds = fields[name].metadata.get(BOUNDS_KEY)
        problem = bounds.problem(values[name]) if bounds is not None else None
        if problem is not None:
            raise ConfigError(f"{where}{name}: {problem}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(_at_table(where, str(exc))) from None


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _at_table(where: str, message: str) -> str:
    """``message`` about the table ``where`` (a key prefix such as ``"f.toml: runtime."``) as a whole."""
    head = where.rstrip()
    if head.endswith("."):
        return f"{head[:-1]}: {message}"
    if head.endswith(":"):
        return f"{head} {message}"
    return f"{head}: {message}" if head else message


def to_dict(obj: object) -> dict[str, Any]:
    """Plain-data form of a config dataclass (tuples become lists), ready for TOML or JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    table = plain(obj)
    if not isinstance(table, dict):
        raise TypeError(f"{obj!r} is not a config dataclass instance")
    return table


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {value} is too large for a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        if "\x00" in value:
            raise ConfigError(f"{where}: text must not contain a NUL character, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value
