"""The patient profile a clinic sets and the host writes to the device: feedback limit and static features.

A :class:`PatientProfile` holds what a physiotherapist may change on a running device: the biofeedback
limit and the person's static model features (knee alignment, affected side, body mass, height). It has
the same names, units and ranges as the ``[patient]`` table of ``device.toml``
(:class:`forcecast.edge.runtime.config.PatientConfig`, whose range checks it reuses), and a ``version``:
a u32 the clinic bumps on every change. A device takes a profile only if its version is newer than the
one it holds (``device.toml`` counts as version 0), so an old profile re-sent late never undoes a newer one.

Two encodings, each strict (every value finite and in its documented range, nothing missing, nothing extra):

- the **wire** form, 13 bytes (the payload of the control point's ``PROFILE`` request; with the request
  header it fits one write at the minimum ATT MTU)::

      u32 version | u16 feedback_limit (milli-BW, 0 = no cue) | u16 body_mass (10 g) | u16 height (mm)
      | i16 hka (0.01°, -32768 = unknown) | u8 affected_side (0 none, 1 left, 2 right)

  Values are rounded to those resolutions (far finer than any clinical measurement);
- the **JSON** form (:meth:`PatientProfile.to_json`): the device's ``profile.json`` and the clinic's wire
  format, e.g. ``{"version": 3, "feedback_limit_bw": 1.2, "body_mass_kg": 72.5, "height_m": 1.75,
  "hka_deg": 4.5, "affected_side": "left"}`` (``null`` limit: no cue; ``null`` HKA: unknown).

:class:`ProfileFile` keeps the device's profile: an atomic write (temporary file, fsync, rename, fsync of
the folder), so a power cut leaves either the old profile or the new one, never a mix.

Device code: the standard library only (and the device configuration's range checks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Final, Literal

from forcecast.edge.config import BOUNDS_KEY, Bounds
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.runtime.config import PatientConfig

MAX_VERSION: Final = 2**32 - 1
WIRE: Final = struct.Struct("<IHHHhB")
"""The wire form's layout (13 bytes)."""
WIRE_BYTES: Final = WIRE.size
LIMIT_PER_BW: Final = 1000
"""Wire units of the feedback limit per body weight (milli-BW)."""
MASS_PER_KG: Final = 100
"""Wire units of body mass per kilogram (10 g)."""
HEIGHT_PER_M: Final = 1000
"""Wire units of height per metre (mm)."""
HKA_PER_DEG: Final = 100
"""Wire units of the HKA angle per degree (0.01°)."""
HKA_UNKNOWN: Final = -32768
"""The wire's HKA value for "not measured"."""
SIDES: Final[tuple[Literal["none", "left", "right"], ...]] = ("none", "left", "right")
"""Affected sides in wire order (the wire byte is the index)."""
FILE_NAME: Final = "profile.json"
JSON_KEYS: Final = ("version", "feedback_limit_bw", "body_mass_kg", "height_m", "hka_deg", "affected_side")
"""The keys of the JSON form, all required."""
REASONS: Final = ("bad_length", "bad_field", "out_of_range", "not_finite", "missing_key", "unknown_key", "unreadable")
"""The reasons a :class:`ProfileError` can carry (:class:`StaleProfileError` says ``profile_stale``)."""

_CONFIG_FIELDS: Final = {f.name: f for f in dataclasses.fields(PatientConfig)}
_CONFIG_NAME: Final = {"feedback_limit_bw": "peak_limit_bw"}
"""Profile fields named differently in ``[patient]`` (the config's 0 = no cue is the profile's None)."""


class ProfileError(ForcecastValueError):
    """A profile cannot be encoded, decoded, read or written; the message names the field and the value.

    Parameters
    ----------
    reason
        Stable code, one of :data:`REASONS`.
    message
        What was wrong and where.
    """

    reason = "profile_invalid"

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown profile error reason {reason!r}; one of {', '.join(REASONS)}")
        self.reason = reason
        super().__init__(message)


class StaleProfileError(ForcecastValueError):
    """A profile is not newer than the one the device holds (``current_version``): it is refused, not applied.

    A host re-sending the version the device already holds (its first reply was lost) gets this too, with
    ``current_version`` equal to the version it sent.
    """

    reason = "profile_stale"
    exit_code = 1

    def __init__(self, version: int, current_version: int) -> None:
        self.version = version
        self.current_version = current_version
        super().__init__(
            f"profile version {version} is not newer than the device's current version {current_version}; "
            "a device only takes newer profiles"
        )


def _bounds(name: str) -> Bounds:
    bounds = _CONFIG_FIELDS[_CONFIG_NAME.get(name, name)].metadata[BOUNDS_KEY]
    assert isinstance(bounds, Bounds)
    return bounds


def _check_number(name: str, value: object, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError("bad_field", f"{where}{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ProfileError("not_finite", f"{where}{name}: {value!r} is not a finite number")
    problem = _bounds(name).problem(value)
    if problem is not None:
        raise ProfileError("out_of_range", f"{where}{name}: {problem}")


@dataclasses.dataclass(frozen=True)
class PatientProfile:
    """What a clinic may change on a running device; names, units and ranges as ``device.toml`` ``[patient]``.

    Attributes
    ----------
    version
        1..2³²−1, bumped on every change; a device takes only a newer version than it holds.
    feedback_limit_bw
        Biofeedback: cue when a step's vertical force exceeds this (BW, up to 5); None = no cue
        (``[patient] peak_limit_bw = 0``). A limit of 0 is stored as None.
    body_mass_kg, height_m
        Static features (20..300 kg, 0.9..2.5 m); body mass also converts BW to newtons.
    hka_deg
        Hip-knee-ankle angle of the affected knee, varus positive (−30..30°); None = unknown.
    affected_side
        ``left``, ``right`` or ``none``.

    Raises
    ------
    ProfileError
        If a value has the wrong type, is not finite or is out of range (the message names the field).
    """

    version: int
    feedback_limit_bw: float | None
    body_mass_kg: float
    height_m: float
    hka_deg: float | None = None
    affected_side: Literal["left", "right", "none"] = "none"

    def __post_init__(self) -> None:
        where = "patient profile: "
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ProfileError("bad_field", f"{where}version: expected an integer, got {self.version!r}")
        if not 1 <= self.version <= MAX_VERSION:
            raise ProfileError("out_of_range", f"{where}version: {self.version} is outside 1..{MAX_VERSION}")
        for name in ("feedback_limit_bw", "body_mass_kg", "height_m", "hka_deg"):
            value = getattr(self, name)
            if value is None and name in ("feedback_limit_bw", "hka_deg"):
                continue
            _check_number(name, value, where)
            object.__setattr__(self, name, float(value))
        if self.feedback_limit_bw == 0.0:
            object.__setattr__(self, "feedback_limit_bw", None)
        if self.affected_side not in SIDES:
            raise ProfileError(
                "bad_field", f"{where}affected_side: {self.affected_side!r} is not one of {', '.join(SIDES)}"
            )

    @property
    def peak_limit_bw(self) -> float:
        """The limit as ``device.toml`` writes it: 0 = no cue."""
        return 0.0 if self.feedback_limit_bw is None else self.feedback_limit_bw

    def apply_to(self, patient: PatientConfig) -> PatientConfig:
        """``patient`` (the device's ``[patient]``) with this profile's limit and static features.

        The patient id stays: a profile changes values, never whose device it is.
        """
        return dataclasses.replace(
            patient,
            peak_limit_bw=self.peak_limit_bw,
            body_mass_kg=self.body_mass_kg,
            height_m=self.height_m,
            hka_deg=self.hka_deg,
            affected_side=self.affected_side,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (every key of :data:`JSON_KEYS`; ``None`` for no cue and an unknown HKA)."""
        return {key: getattr(self, key) for key in JSON_KEYS}

    @classmethod
    def from_json(cls, data: object, where: str = "patient profile") -> PatientProfile:
        """A profile from its JSON form (strict: an object with exactly :data:`JSON_KEYS`).

        Raises
        ------
        ProfileError
            Naming ``where`` and the key of anything wrong.
        """
        if not isinstance(data, dict):
            raise ProfileError("bad_field", f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [key for key in JSON_KEYS if key not in data]
        if missing:
            raise ProfileError("missing_key", f"{where}: missing key(s) {', '.join(missing)}")
        unknown = sorted(str(key) for key in data if key not in JSON_KEYS)
        if unknown:
            raise ProfileError(
                "unknown_key", f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(JSON_KEYS)}"
            )
        side = data["affected_side"]
        if not isinstance(side, str):
            raise ProfileError("bad_field", f"{where}: affected_side: expected text, got {side!r}")
        try:
            return cls(
                version=data["version"],
                feedback_limit_bw=data["feedback_limit_bw"],
                body_mass_kg=data["body_mass_kg"],
                height_m=data["height_m"],
                hka_deg=data["hka_deg"],
                affected_side=side,  # type: ignore[arg-type]  # checked against SIDES by the constructor
            )
        except ProfileError as exc:
            raise ProfileError(exc.reason, str(exc).replace("patient profile", where, 1)) from None


def encode_profile(profile: PatientProfile) -> bytes:
    """The wire form (:data:`WIRE_BYTES` bytes), values rounded to the wire's resolutions.

    Raises
    ------
    ProfileError
        ``out_of_range`` if a feedback limit is so small that it would round to "no cue" (under 0.0005 BW).
    """
    limit = 0 if profile.feedback_limit_bw is None else round(profile.feedback_limit_bw * LIMIT_PER_BW)
    if profile.feedback_limit_bw is not None and limit == 0:
        raise ProfileError(
            "out_of_range",
            f"patient profile: feedback_limit_bw {profile.feedback_limit_bw:g} BW is below the wire's resolution "
            f"(1/{LIMIT_PER_BW} BW); use None for no cue",
        )
    hka = HKA_UNKNOWN if profile.hka_deg is None else round(profile.hka_deg * HKA_PER_DEG)
    return WIRE.pack(
        profile.version,
        limit,
        round(profile.body_mass_kg * MASS_PER_KG),
        round(profile.height_m * HEIGHT_PER_M),
        hka,
        SIDES.index(profile.affected_side),
    )


def decode_profile(data: bytes) -> PatientProfile:
    """A profile from its wire form.

    Raises
    ------
    ProfileError
        ``bad_length``, ``bad_field`` (an unknown affected-side byte) or ``out_of_range`` (a version of 0,
        a value outside the ``[patient]`` ranges), naming the field.
    """
    if len(data) != WIRE_BYTES:
        raise ProfileError("bad_length", f"patient profile: {len(data)} bytes, the wire form is {WIRE_BYTES}")
    version, limit, mass, height, hka, side = WIRE.unpack(data)
    if side >= len(SIDES):
        raise ProfileError(
            "bad_field", f"patient profile: affected_side byte {side} is not 0 (none), 1 (left) or 2 (right)"
        )
    return PatientProfile(
        version=version,
        feedback_limit_bw=None if limit == 0 else limit / LIMIT_PER_BW,
        body_mass_kg=mass / MASS_PER_KG,
        height_m=height / HEIGHT_PER_M,
        hka_deg=None if hka == HKA_UNKNOWN else hka / HKA_PER_DEG,
        affected_side=SIDES[side],
    )


class ProfileFile:
    """The device's stored profile: ``profile.json`` in its state folder, replaced atomically.

    Parameters
    ----------
    path
        The file (e.g. ``/var/lib/forcecast/profile.json``, beside the record store).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def temporary(self) -> Path:
        """Where a new profile is written before it is renamed over :attr:`path`."""
        return self.path.with_name(self.path.name + ".tmp")

    def load(self) -> PatientProfile | None:
        """The stored profile, or None if there is none (a leftover temporary file is not a profile).

        Raises
        ------
        ProfileError
            ``unreadable`` (not readable, not UTF-8 JSON) or any reason of :meth:`PatientProfile.from_json`,
            naming the file.
        """
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError("unreadable", f"{self.path}: cannot be read ({exc})") from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ProfileError("unreadable", f"{self.path}: not valid JSON ({exc})") from None
        return PatientProfile.from_json(data, str(self.path))

    def save(self, profile: PatientProfile) -> None:
        """Write ``profile`` atomically: temporary file, fsync, rename over :attr:`path`, fsync of the folder.

        Raises
        ------
        OSError
            If the folder cannot be written (a full disk): the stored profile is then the old one.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.temporary
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()  # a crash's leftover, or a planted link (unlink removes the link, not its target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            with os.fdopen(os.open(temporary, flags, 0o644), "w", encoding="utf-8") as out:
                json.dump(profile.to_json(), out, allow_nan=False, indent=1)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _fsync_folder(self.path.parent)


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"non-finite number {constant}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def profile_path(state_folder: Path) -> Path:
    """Where the device keeps its profile: :data:`FILE_NAME` in its state folder (the record store's folder)."""
    return Path(state_folder) / FILE_NAME
