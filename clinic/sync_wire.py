"""The sync API's request bodies, read and checked before anything is stored (pure functions, no I/O).

A batch (``POST /api/v1/sync/records``, see docs/clinic.md)::

    {"device_id": "fc-0042", "store_id": "7f3a...", "records": [
        {"kind": "step", "seq": 1, "t_host": 1764489600.25, "payload": {...}, "waveform_b64": "..."}, ...]}

Every record is decoded with :func:`forcecast.edge.records.decode`, so the clinic stores only records a reader
understands; a record of a newer schema version than this server reads is refused by name. The first problem
refuses the whole batch (:class:`SyncRequestError`: an HTTP status, a stable reason, the record's kind, seq and
index, and the field): a host fixes nothing by resending part of a batch, and the database stays as it was.

A step's stance waveform travels either inside its payload (``waveform_bw``, three lists of 101 numbers) or,
more compactly, as ``waveform_b64``: float32 little-endian values of shape (3, 101), axes v, ap, ml (what the
host store keeps). The clinic stores it the second way in both cases, beside the payload without it.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from forcecast.clinic.tally import NOTHING, Tally, tally_of
from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.records import KIND_LABELS, RecordError, StepRecord, decode, dumps, loads

WAVEFORM_SHAPE: Final = (3, 101)
WAVEFORM_BYTES: Final = 3 * 101 * 4
MAX_SEQ: Final = 2**63 - 1
MAX_ID_LENGTH: Final = 128


class SyncRequestError(ForcecastValueError):
    """A sync request the clinic refuses as a whole, with what to tell the host.

    Parameters
    ----------
    status
        HTTP status: 400 (bad body), 401 (token), 403 (token of another device), 413 (too large).
    reason
        Stable code for the host (``bad_record``, ``newer_version``, ``too_many_records`` ...).
    message
        What was wrong and where.
    kind, seq, index
        The record that was bad (None when the problem is not one record's).
    field
        The field that was bad (None when it is the whole body).
    """

    reason = "sync_request_refused"  # the class's own code; each instance carries the precise one it was given

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        kind: str | None = None,
        seq: int | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.kind = kind
        self.seq = seq
        self.index = index
        self.field = field

    def to_json(self) -> dict[str, Any]:
        """The error as the API answers it: ``{"error": {"reason", "message", "record"?, "field"?}}``."""
        error: dict[str, Any] = {"reason": self.reason, "message": str(self)}
        if self.index is not None:
            error["record"] = {"index": self.index, "kind": self.kind, "seq": self.seq}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


@dataclass(frozen=True)
class IncomingRecord:
    """One checked record of a batch, as the clinic stores it.

    Attributes
    ----------
    kind, seq
        The record's key within its store (with the device and the store id).
    t_host
        The record's time on the host's clock (epoch s), None if the record carries no time.
    payload
        The record's JSON text (without its waveform, see the module's description).
    waveform
        float32 bytes of shape (3, 101), or None.
    tally
        What the record adds to its quarter hour's figures (:mod:`forcecast.clinic.tally`).
    """

    kind: str
    seq: int
    t_host: float | None
    payload: str
    waveform: bytes | None
    tally: Tally = NOTHING


@dataclass(frozen=True)
class Batch:
    """A checked batch: whose it says it is, from which store, and its records."""

    device_id: str
    store_id: str
    records: tuple[IncomingRecord, ...]


def parse_json_body(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object (finite numbers only).

    Raises
    ------
    SyncRequestError
        400 ``not_json`` / ``not_finite`` / ``not_object``.
    """
    try:
        return loads(body)
    except RecordError as exc:
        raise SyncRequestError(400, exc.reason, f"request body: {exc}".replace("record payload", "body")) from None


def _text(body: dict[str, Any], name: str, *, empty: bool) -> str:
    value = body.get(name)
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or (not empty and not value):
        raise SyncRequestError(
            400, "bad_field", f"{name} must be a text of up to {MAX_ID_LENGTH} characters, got {value!r}", field=name
        )
    return value


def parse_batch(body: dict[str, Any], max_records: int) -> Batch:
    """Check a batch body and every record in it.

    Parameters
    ----------
    body
        The request's JSON object.
    max_records
        The largest batch accepted.

    Raises
    ------
    SyncRequestError
        400 for a bad field or record (naming it), 413 ``too_many_records``.
    """
    unknown = sorted(set(body) - {"device_id", "store_id", "records"})
    if unknown:
        raise SyncRequestError(400, "bad_field", f"unknown field(s) {', '.join(unknown)}", field=unknown[0])
    device_id = _text(body, "device_id", empty=False)
    store_id = _text(body, "store_id", empty=True)
    items = body.get("records")
    if not isinstance(items, list):
        raise SyncRequestError(400, "bad_field", "records must be a list", field="records")
    if len(items) > max_records:
        raise SyncRequestError(
            413, "too_many_records", f"{len(items)} records in one batch; at most {max_records}", field="records"
        )
    return Batch(device_id, store_id, tuple(parse_record(item, index) for index, item in enumerate(items)))


def parse_record(item: Any, index: int) -> IncomingRecord:
    """One record of a batch, checked and decoded (``index``: its place in the batch, for messages).

    Raises
    ------
    SyncRequestError
        400 naming the record (index, kind, seq) and the field.
    """
    if not isinstance(item, dict):
        raise SyncRequestError(400, "not_object", f"records[{index}] is not an object", index=index)
    kind = item.get("kind")
    if kind not in KIND_LABELS:
        raise SyncRequestError(
            400, "unknown_kind", f"records[{index}]: kind {kind!r} is not one of {', '.join(KIND_LABELS)}",
            index=index, field="kind",
        )  # fmt: skip
    seq = item.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise SyncRequestError(
            400, "bad_field", f"records[{index}] ({kind}): seq must be a whole number ≥ 1, got {seq!r}",
            kind=kind, index=index, field="seq",
        )  # fmt: skip
    unknown = sorted(set(item) - {"kind", "seq", "t_host", "payload", "waveform_b64"})
    if unknown:
        raise _bad(kind, seq, index, unknown[0], f"unknown field(s) {', '.join(unknown)}")
    t_host = item.get("t_host")
    if t_host is not None and (
        isinstance(t_host, bool) or not isinstance(t_host, int | float) or not math.isfinite(t_host)
    ):
        raise _bad(kind, seq, index, "t_host", "t_host must be a finite number of seconds")
    payload = item.get("payload")
    try:
        record = decode(kind, payload)
    except RecordError as exc:
        raise _bad(kind, seq, index, "payload", str(exc), exc.reason) from None
    assert isinstance(payload, dict)  # decode refuses anything else
    waveform = _waveform(item.get("waveform_b64"), record, kind, seq, index)
    stored = {key: value for key, value in payload.items() if key != "waveform_bw"}
    time = None if t_host is None else float(t_host)
    return IncomingRecord(kind, seq, time, dumps(stored), waveform, tally_of(kind, stored))


def _bad(kind: str, seq: int, index: int, field: str, problem: str, reason: str = "bad_field") -> SyncRequestError:
    """A 400 naming the record and the field."""
    return SyncRequestError(
        400, reason, f"{kind} record {seq}: {problem}", kind=kind, seq=seq, index=index, field=field
    )


def _waveform(b64: Any, record: Any, kind: str, seq: int, index: int) -> bytes | None:
    if b64 is None:
        curves = record.waveform_bw if isinstance(record, StepRecord) else None
        if curves is None or any(len(curve) != WAVEFORM_SHAPE[1] for curve in curves):
            return None
        return np.asarray(curves, dtype="<f4").tobytes()
    field = "waveform_b64"
    if kind != "step":
        raise _bad(kind, seq, index, field, "only step records carry a waveform")
    if not isinstance(b64, str):
        raise _bad(kind, seq, index, field, "waveform_b64 must be base64 text")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(kind, seq, index, field, "waveform_b64 is not base64") from None
    if len(data) != WAVEFORM_BYTES:
        problem = f"waveform_b64 holds {len(data)} bytes; a (3, 101) float32 waveform is {WAVEFORM_BYTES}"
        raise _bad(kind, seq, index, field, problem)
    if not np.isfinite(np.frombuffer(data, dtype="<f4")).all():
        raise _bad(kind, seq, index, field, "waveform_b64 holds non-finite values", "not_finite")
    return data


def encode_waveform(waveform: bytes) -> str:
    """``waveform_b64`` of float32 waveform bytes (what a host sends)."""
    return base64.b64encode(waveform).decode("ascii")
