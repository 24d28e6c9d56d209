"""Typed, versioned records: the contract between the device store, the wire, the host store and analytics.

Three kinds of record travel from the device to the host, each a frozen dataclass:

- :class:`StepRecord`: one stance phase of one leg (contact times, peaks, loading rate, impulses, the
  101-point stance waveform, flags);
- :class:`SummaryRecord`: the GRF stream over a summary period (steps, samples, mean and peak vertical
  force per leg, quality-event counts, cues);
- :class:`EventRecord`: something that happened (a cue, a quality event, a model switch or rollback, a
  storage outage, a quarantined record ...), its type one of :class:`EventType`.

One encoding, used by every part: a record is a JSON object (:meth:`to_payload`) holding its fields under
their names plus ``"v"``, the record type's schema version. The device store keeps that object as text
(:func:`dumps`), the wire compresses the same text, the host store keeps it again, and every reader turns
it back into a record with :func:`decode` (or the class's :meth:`from_payload`). Numbers are finite (JSON
has no NaN: an unknown value is ``null``).

Versions: a payload without ``"v"`` is version 1, the format every device wrote before records carried
a version; it decodes as it always did. Every field of a version 1 record is optional (its producers
wrote subsets; a missing field reads as ``None``), except an event's ``event``. Keys a reader does not
know are kept in ``extra`` and written back, so nothing is lost through a reader. A payload of a *newer*
version than this software knows is refused (:class:`RecordError` with reason ``newer_version``): its
meaning may have changed. Changing a field's meaning, removing one, or adding an event type bumps the
record type's ``SCHEMA_VERSION``, and :meth:`from_payload` then keeps reading every older version.

Every problem with a payload raises :class:`RecordError`, whose ``reason`` is a stable code (see
:data:`REASONS`) and whose message names the record kind and the field.

Device code: the standard library only (and the error root).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Final

from forcecast.edge.errors import ForcecastValueError

VERSION_KEY: Final = "v"
"""The payload key holding the record type's schema version (absent: version 1)."""
WAVEFORM_AXES: Final = ("v", "ap", "ml")
"""Axes of a step's stance waveform, in the order of :attr:`StepRecord.waveform_bw`."""
LEGS: Final = ("l", "r")
REASONS: Final = (
    "not_json",
    "not_object",
    "not_finite",
    "unknown_kind",
    "bad_version",
    "newer_version",
    "bad_field",
    "missing_field",
    "unknown_event",
)
"""The reasons a :class:`RecordError` can carry."""


class RecordError(ForcecastValueError):
    """A record payload cannot be encoded or decoded (still a ``ValueError``).

    Parameters
    ----------
    reason
        Stable code, one of :data:`REASONS` (hosts count rejections by it); the class default says only
        that a record was bad.
    message
        What was wrong and where (record kind, field).
    """

    reason = "bad_record"

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown record error reason {reason!r}; one of {', '.join(REASONS)}")
        self.reason = reason
        super().__init__(message)


class RecordKind(IntEnum):
    """The kinds of record (the value is the wire's kind byte; :attr:`label` the store's name)."""

    STEP = 1
    SUMMARY = 2
    EVENT = 3

    @property
    def label(self) -> str:
        """The name the stores use: ``step``, ``summary`` or ``event``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: RecordKind | str | int) -> RecordKind:
        """A kind from itself, its label (``"step"``) or its wire value (``1``).

        Raises
        ------
        RecordError
            ``unknown_kind``, naming the known labels.
        """
        if isinstance(value, RecordKind):
            return value
        if isinstance(value, str):
            for kind in cls:
                if kind.label == value:
                    return kind
        elif isinstance(value, int) and not isinstance(value, bool) and value in cls._value2member_map_:
            return cls(value)
        raise RecordError("unknown_kind", f"unknown record kind {value!r}; known: {', '.join(KIND_LABELS)}")


KIND_LABELS: Final = tuple(kind.label for kind in RecordKind)
"""``("step", "summary", "event")``: the record kinds by their stores' names."""


class EventType(StrEnum):
    """What an :class:`EventRecord` reports (a closed set: adding one bumps ``EventRecord.SCHEMA_VERSION``)."""

    CUE = "cue"
    """Biofeedback fired: ``leg``, ``time_s``, ``force_bw``, ``limit_bw``, ``latency_ms``."""
    NAN = "nan"
    """Quality: samples with missing values (``start_s``, ``end_s``, ``samples``, ``detail``)."""
    DROPOUT = "dropout"
    """Quality: a gap in the sensor stream."""
    CLOCK_JUMP = "clock_jump"
    """Quality: the sensor clock went backwards or leapt forward."""
    SATURATION = "saturation"
    """Quality: samples at full scale."""
    CALIBRATION_SKIPPED = "calibration_skipped"
    """The start-up calibration was skipped (``detail`` says why)."""
    ALIGNMENT_CONVERGED = "alignment_converged"
    """Segment alignment converged (``detail`` per sensor)."""
    MODEL_SWITCHED = "model_switched"
    """Another model took over the stream (``from``, ``to``)."""
    MODEL_CONFIRMED = "model_confirmed"
    """A new model passed its health period."""
    MODEL_UNHEALTHY = "model_unhealthy"
    """A new model failed its health period."""
    MODEL_ROLLED_BACK = "model_rolled_back"
    """The previous model was made active again."""
    STORAGE_FULL = "storage_full"
    """Records were held while the disk was full (``start_s``, ``end_s``, ``held``, ``lost``, ``attempts``)."""
    STORAGE_ERROR = "storage_error"
    """Records were held while the store failed."""
    RECORD_QUARANTINED = "record_quarantined"
    """A stored record could not be read or sent (``kind``, ``seq``, ``reason``)."""
    PROFILE_APPLIED = "profile_applied"
    """A patient profile took effect (``profile``: its JSON form, with ``version``; ``detail``). Event version 2."""


QUALITY_EVENTS: Final = (EventType.NAN, EventType.DROPOUT, EventType.CLOCK_JUMP, EventType.SATURATION)
"""Event types the stream guard reports."""

Waveform = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


# ------------------------------------------------------------------------------------------ one JSON encoding


def dumps(payload: Mapping[str, Any]) -> str:
    """The JSON text of a payload, as the device store keeps it and the wire compresses it (compact).

    Raises
    ------
    RecordError
        ``not_object`` (not a mapping), ``not_finite`` (NaN or Infinity anywhere) or ``not_json``
        (a value JSON cannot hold).
    """
    if not isinstance(payload, Mapping):
        raise RecordError("not_object", f"a record payload is a JSON object, not a {type(payload).__name__}")
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise RecordError("not_finite", f"record payload holds a non-finite number: {exc}") from None
    except (TypeError, RecursionError) as exc:
        raise RecordError("not_json", f"record payload is not JSON-serialisable: {exc}") from None


class _NotFiniteError(ForcecastValueError):
    """A record body holds NaN, Infinity or a number beyond float range."""

    reason = "not_finite"


def _refuse_constant(constant: str) -> Any:
    raise _NotFiniteError(f"non-finite number {constant}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFiniteError(f"number {text} is beyond float range")
    return value


def loads(text: str | bytes) -> dict[str, Any]:
    """A payload back from its JSON text (strict: an object of finite numbers).

    Raises
    ------
    RecordError
        ``not_json`` (not UTF-8 JSON, nested too deep), ``not_finite`` (NaN, Infinity, a number beyond
        float range) or ``not_object`` (valid JSON but not an object).
    """
    try:
        payload = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFiniteError as exc:
        raise RecordError("not_finite", f"record payload: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RecordError("not_json", f"record payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RecordError("not_object", f"record payload is a JSON {type(payload).__name__}, not an object")
    return payload


# ------------------------------------------------------------------------------------------ field readers

_Reader = Callable[[Any, str], Any]


def _bad(where: str, expected: str, value: Any) -> RecordError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return RecordError("bad_field", f"{where}: expected {expected}, got {shown}")


def _number(value: Any, where: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value  # the common case, first
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, "a number", value)
    if not math.isfinite(value):
        raise RecordError("not_finite", f"{where}: non-finite number {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, "an integer", value)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, "a string", value)
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, "true or false", value)
    return value


def _leg(value: Any, where: str) -> str:
    if value not in LEGS:
        raise _bad(where, "'l' or 'r'", value)
    return str(value)


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise _bad(where, "a list of strings", value)
    return tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(value))


def _waveform(value: Any, where: str) -> Waveform:
    if not isinstance(value, Mapping) or set(value) != set(WAVEFORM_AXES):
        raise _bad(where, f"an object with the axes {', '.join(WAVEFORM_AXES)}", value)
    v, ap, ml = (_numbers(value[axis], f"{where}.{axis}") for axis in WAVEFORM_AXES)
    return v, ap, ml


def _numbers(points: Any, where: str) -> tuple[float, ...]:
    """A list of finite numbers as a tuple of floats (checked in bulk; element by element only to say which)."""
    if not isinstance(points, list | tuple):
        raise _bad(where, "a list of numbers", points)
    if not all(type(p) is float or type(p) is int for p in points) or not math.isfinite(sum(points)):
        for i, p in enumerate(points):
            _number(p, f"{where}[{i}]")  # raises for the first bad one (a finite sum that overflowed passes)
    return tuple(map(float, points))


def _counts(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise _bad(where, "an object of integers", value)
    return {str(k): _integer(v, f"{where}.{k}") for k, v in value.items()}


def _amounts(value: Any, where: str) -> dict[str, float | None]:
    if not isinstance(value, Mapping):
        raise _bad(where, "an object of numbers", value)
    return {str(k): None if v is None else _number(v, f"{where}.{k}") for k, v in value.items()}


def _flat_object(value: Any, where: str) -> dict[str, Any]:
    """An object whose values are text, integers, finite numbers or null (e.g. a patient profile's JSON form)."""
    if not isinstance(value, Mapping):
        raise _bad(where, "an object", value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool)):
            out[str(key)] = item
        else:
            out[str(key)] = _number(item, f"{where}.{key}")
    return out


def _event(value: Any, where: str) -> EventType:
    if not isinstance(value, str):
        raise _bad(where, "an event type", value)
    try:
        return EventType(value)
    except ValueError:
        raise RecordError(
            "unknown_event", f"{where}: unknown event type {value!r}; known: {', '.join(EventType)}"
        ) from None


def _write_waveform(value: Waveform) -> dict[str, list[float]]:
    return {axis: list(curve) for axis, curve in zip(WAVEFORM_AXES, value, strict=True)}


def _write_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True)
class _Field:
    """How one attribute is held in a payload."""

    attr: str
    key: str
    read: _Reader
    write: Callable[[Any], Any] = _write_plain


# ------------------------------------------------------------------------------------------ the records


class _Record:
    """What every record type shares: its kind, its schema version, one encoding."""

    KIND: ClassVar[RecordKind]
    SCHEMA_VERSION: ClassVar[int]
    _FIELDS: ClassVar[tuple[_Field, ...]]
    _REQUIRED: ClassVar[frozenset[str]] = frozenset()
    _NULLS: ClassVar[bool] = False
    """Write fields that are ``None`` as ``null`` (step records always did) instead of leaving them out."""
    _PLAN: ClassVar[tuple[tuple[tuple[str, str, _Reader, str], ...], frozenset[str]]]
    """Each concrete type's decoding plan, made on first use by :meth:`_plan`."""

    extra: dict[str, Any]

    def _check_extra(self) -> None:
        clash = self._plan()[1] & self.extra.keys() if self.extra else None
        if clash:
            raise RecordError(
                "bad_field", f"{self.KIND.label} record: extra keys {sorted(clash)} are the record's own fields"
            )

    def to_payload(self) -> dict[str, Any]:
        """The record as the JSON object every store and the wire carry (with its version under ``"v"``)."""
        payload: dict[str, Any] = {VERSION_KEY: self.SCHEMA_VERSION}
        for spec in self._FIELDS:
            value = getattr(self, spec.attr)
            if value is not None:
                payload[spec.key] = spec.write(value)
            elif self._NULLS:
                payload[spec.key] = None
        payload.update(self.extra)
        return payload

    @classmethod
    def _version(cls, payload: Mapping[str, Any]) -> int:
        """The payload's schema version (1 without ``"v"``); RecordError if bad or newer than this software's."""
        label = cls.KIND.label
        version = payload.get(VERSION_KEY, 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RecordError("bad_version", f"{label} record: version {version!r} is not a positive integer")
        if version > cls.SCHEMA_VERSION:
            raise RecordError(
                "newer_version",
                f"{label} record: version {version} is newer than this software reads ({cls.SCHEMA_VERSION}); "
                "update forcecast on this side",
            )
        return version

    @classmethod
    def _read(cls, payload: Any) -> dict[str, Any]:
        """Constructor arguments from a payload of any version this software reads."""
        label = cls.KIND.label
        if not isinstance(payload, Mapping):
            raise RecordError("not_object", f"{label} record: payload is a {type(payload).__name__}, not an object")
        cls._version(payload)
        # Event version 2 only added an event type (profile_applied) and its field: every version 1 payload
        # reads as it did. A version that changes a field's meaning adds its reading of older payloads here.
        plan, known = cls._plan()
        arguments: dict[str, Any] = {}
        for attr, key, read, where in plan:
            value = payload.get(key)
            if value is None:
                if attr in cls._REQUIRED:
                    raise RecordError("missing_field", f"{label} record: field {key!r} is missing")
                continue
            arguments[attr] = read(value, where)
        arguments["extra"] = {str(k): v for k, v in payload.items() if k not in known}
        return arguments

    @classmethod
    def _plan(cls) -> tuple[tuple[tuple[str, str, _Reader, str], ...], frozenset[str]]:
        """``(attr, key, reader, where)`` per field and every key the type knows (made once per type)."""
        cached = cls.__dict__.get("_PLAN")
        if cached is None:
            label = cls.KIND.label
            plan = tuple((f.attr, f.key, f.read, f"{label} record field {f.key!r}") for f in cls._FIELDS)
            cached = (plan, frozenset({VERSION_KEY, *(f.key for f in cls._FIELDS)}))
            cls._PLAN = cached
        return cached


@dataclass(frozen=True)
class StepRecord(_Record):
    """One stance phase of one leg (device times in seconds, forces in body weights ``_bw`` and newtons ``_n``).

    Attributes
    ----------
    t_unix
        Device Unix time of initial contact.
    patient_id
        Whose step.
    leg
        ``l`` or ``r``.
    ic_s, tc_s, stance_s
        Initial contact, toe-off (stream time) and stance duration.
    peak1_bw, peak2_bw
        Vertical peaks of the first and second half of stance.
    loading_rate_bw_s
        Mean slope between 20 % and 80 % of the first peak.
    impulse_v_bws, impulse_brake_bws, impulse_prop_bws
        Vertical impulse, braking and propulsive anterior-posterior impulses.
    peak_ml_bw
        Largest medial force.
    peak1_n, peak2_n, peak_ml_n, loading_rate_n_s
        The same in newtons.
    waveform_bw
        The stance waveform, 101 points per axis (v, ap, ml).
    asymmetry_peak1
        (R − L) / max(R, L) of the first peak against the other leg's last step.
    flags
        Quality events during the step (``dropout``, ``alignment_pending`` ...).
    calibrated
        Whether the start-up calibration succeeded.
    model_version
        The model that predicted the force.
    extra
        Keys this software does not know, kept as they came.
    """

    KIND: ClassVar[RecordKind] = RecordKind.STEP
    SCHEMA_VERSION: ClassVar[int] = 1
    _NULLS: ClassVar[bool] = True

    t_unix: float | None = None
    patient_id: str | None = None
    leg: str | None = None
    ic_s: float | None = None
    tc_s: float | None = None
    stance_s: float | None = None
    peak1_bw: float | None = None
    peak2_bw: float | None = None
    loading_rate_bw_s: float | None = None
    impulse_v_bws: float | None = None
    impulse_brake_bws: float | None = None
    impulse_prop_bws: float | None = None
    peak_ml_bw: float | None = None
    peak1_n: float | None = None
    peak2_n: float | None = None
    peak_ml_n: float | None = None
    loading_rate_n_s: float | None = None
    waveform_bw: Waveform | None = None
    asymmetry_peak1: float | None = None
    flags: tuple[str, ...] = ()
    calibrated: bool | None = None
    model_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_extra()

    @property
    def peak_bw(self) -> float | None:
        """The larger vertical peak (None when neither is known)."""
        peaks = [p for p in (self.peak1_bw, self.peak2_bw) if p is not None]
        return max(peaks) if peaks else None

    @property
    def peak_n(self) -> float | None:
        """The larger vertical peak in newtons (None when neither is known)."""
        peaks = [p for p in (self.peak1_n, self.peak2_n) if p is not None]
        return max(peaks) if peaks else None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> StepRecord:
        """A step record from its payload (any version this software reads; none: version 1).

        Raises
        ------
        RecordError
            A newer version, a bad version, or a field of the wrong type.
        """
        return cls(**cls._read(payload))


_STEP_NUMBERS = (
    "t_unix",
    "ic_s",
    "tc_s",
    "stance_s",
    "peak1_bw",
    "peak2_bw",
    "loading_rate_bw_s",
    "impulse_v_bws",
    "impulse_brake_bws",
    "impulse_prop_bws",
    "peak_ml_bw",
    "peak1_n",
    "peak2_n",
    "peak_ml_n",
    "loading_rate_n_s",
)
StepRecord._FIELDS = (
    _Field("t_unix", "t_unix", _number),
    _Field("patient_id", "patient_id", _text),
    _Field("leg", "leg", _leg),
    *(_Field(name, name, _number) for name in _STEP_NUMBERS[1:]),
    _Field("waveform_bw", "waveform_bw", _waveform, _write_waveform),
    _Field("asymmetry_peak1", "asymmetry_peak1", _number),
    _Field("flags", "flags", _texts),
    _Field("calibrated", "calibrated", _flag),
    _Field("model_version", "model_version", _text),
)


@dataclass(frozen=True)
class SummaryRecord(_Record):
    """The GRF stream over one summary period (per-leg values keyed by leg).

    Attributes
    ----------
    t_unix
        Device Unix time of the period's start.
    patient_id
        Whose stream.
    start_s, end_s
        The period in stream time.
    steps
        Steps per leg.
    grf_samples
        Predicted GRF samples per leg.
    mean_v_bw, max_v_bw
        Mean and largest vertical force per leg (None: no samples).
    quality_events
        Quality events so far, per type.
    cues
        Cues so far.
    extra
        Keys this software does not know, kept as they came.
    """

    KIND: ClassVar[RecordKind] = RecordKind.SUMMARY
    SCHEMA_VERSION: ClassVar[int] = 1

    t_unix: float | None = None
    patient_id: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    steps: dict[str, int] | None = None
    grf_samples: dict[str, int] | None = None
    mean_v_bw: dict[str, float | None] | None = None
    max_v_bw: dict[str, float | None] | None = None
    quality_events: dict[str, int] | None = None
    cues: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_extra()

    @property
    def duration_s(self) -> float | None:
        """``end_s - start_s`` (None when either is unknown)."""
        return None if self.start_s is None or self.end_s is None else self.end_s - self.start_s

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SummaryRecord:
        """A summary record from its payload (any version this software reads; none: version 1).

        Raises
        ------
        RecordError
            A newer version, a bad version, or a field of the wrong type.
        """
        return cls(**cls._read(payload))


SummaryRecord._FIELDS = (
    _Field("t_unix", "t_unix", _number),
    _Field("patient_id", "patient_id", _text),
    _Field("start_s", "start_s", _number),
    _Field("end_s", "end_s", _number),
    _Field("steps", "steps", _counts),
    _Field("grf_samples", "grf_samples", _counts),
    _Field("mean_v_bw", "mean_v_bw", _amounts),
    _Field("max_v_bw", "max_v_bw", _amounts),
    _Field("quality_events", "quality_events", _counts),
    _Field("cues", "cues", _integer),
)


@dataclass(frozen=True)
class EventRecord(_Record):
    """Something that happened on the device; which fields are set depends on :attr:`event` (see :class:`EventType`).

    Attributes
    ----------
    event
        What happened.
    t_unix
        Device Unix time.
    patient_id
        Whose device (when known).
    detail
        Human-readable specifics.
    start_s, end_s, samples
        Quality events and storage outages: the stream time span (and samples affected).
    leg, time_s, force_bw, limit_bw, latency_ms
        Cues: the leg, the crossing sample's time, its force, the limit, the cue's latency.
    from_version, to_version
        ``model_switched``: the models (payload keys ``from`` and ``to``).
    record_kind, seq, reason
        ``record_quarantined``: which record (payload key ``kind``) and why.
    held, lost, attempts
        Storage outages: records held, records lost per kind, write attempts.
    profile
        ``profile_applied``: the profile now in effect, in its JSON form (``version``, ``feedback_limit_bw``
        and the static features: :meth:`forcecast.edge.profile.PatientProfile.to_json`).
    extra
        Keys this software does not know, kept as they came.
    """

    KIND: ClassVar[RecordKind] = RecordKind.EVENT
    SCHEMA_VERSION: ClassVar[int] = 2
    """2 added the ``profile_applied`` event (and its ``profile`` field); version 1 payloads read unchanged."""
    _REQUIRED: ClassVar[frozenset[str]] = frozenset({"event"})

    event: EventType
    t_unix: float | None = None
    patient_id: str | None = None
    detail: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    samples: int | None = None
    leg: str | None = None
    time_s: float | None = None
    force_bw: float | None = None
    limit_bw: float | None = None
    latency_ms: float | None = None
    from_version: str | None = None
    to_version: str | None = None
    record_kind: str | None = None
    seq: int | None = None
    reason: str | None = None
    held: int | None = None
    lost: dict[str, int] | None = None
    attempts: int | None = None
    profile: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.event, EventType):
            object.__setattr__(self, "event", _event(self.event, "event record field 'event'"))
        self._check_extra()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EventRecord:
        """An event record from its payload (any version this software reads; none: version 1).

        Raises
        ------
        RecordError
            A newer version, a bad version, a missing or unknown event type, or a field of the wrong type.
        """
        return cls(**cls._read(payload))


EventRecord._FIELDS = (
    _Field("event", "event", _event, str),
    _Field("t_unix", "t_unix", _number),
    _Field("patient_id", "patient_id", _text),
    _Field("detail", "detail", _text),
    _Field("start_s", "start_s", _number),
    _Field("end_s", "end_s", _number),
    _Field("samples", "samples", _integer),
    _Field("leg", "leg", _leg),
    _Field("time_s", "time_s", _number),
    _Field("force_bw", "force_bw", _number),
    _Field("limit_bw", "limit_bw", _number),
    _Field("latency_ms", "latency_ms", _number),
    _Field("from_version", "from", _text),
    _Field("to_version", "to", _text),
    _Field("record_kind", "kind", _text),
    _Field("seq", "seq", _integer),
    _Field("reason", "reason", _text),
    _Field("held", "held", _integer),
    _Field("lost", "lost", _counts),
    _Field("attempts", "attempts", _integer),
    _Field("profile", "profile", _flat_object),
)

Record = StepRecord | SummaryRecord | EventRecord
"""Any record."""
RECORD_TYPES: Final[dict[RecordKind, type[StepRecord] | type[SummaryRecord] | type[EventRecord]]] = {
    RecordKind.STEP: StepRecord,
    RecordKind.SUMMARY: SummaryRecord,
    RecordKind.EVENT: EventRecord,
}


def decode(kind: RecordKind | str | int, payload: Any) -> Record:
    """The typed record of ``kind`` (a :class:`RecordKind`, its label or its wire value) from its payload.

    Raises
    ------
    RecordError
        Unknown kind, a payload that is not an object, a newer or bad version, a missing or mistyped field.
    """
    return RECORD_TYPES[RecordKind.parse(kind)].from_payload(payload)


def decode_text(kind: RecordKind | str | int, text: str | bytes) -> Record:
    """:func:`decode` of a payload's JSON text (as stored)."""
    return decode(kind, loads(text))


def encode(record: Record) -> dict[str, Any]:
    """The payload of a record (:meth:`to_payload`)."""
    return record.to_payload()


def encode_text(record: Record) -> str:
    """The JSON text of a record, as the stores keep it and the wire compresses it."""
    return dumps(record.to_payload())


def version_of(kind: RecordKind | str | int, payload: Mapping[str, Any]) -> int:
    """The schema version a payload says it has (1 without ``"v"``), checked against what this software reads.

    Raises
    ------
    RecordError
        ``bad_version`` (not a positive integer) or ``newer_version``.
    """
    if not isinstance(payload, Mapping):
        raise RecordError("not_object", f"record payload is a {type(payload).__name__}, not an object")
    return RECORD_TYPES[RecordKind.parse(kind)]._version(payload)
