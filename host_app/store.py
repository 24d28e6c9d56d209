"""The host's log: every record a device sent, stored once, in SQLite.

A record is identified by ``(device_id, store_id, kind, seq)``: the store id names the device's record
store (a replaced store restarts its seqs at 1, so seqs alone would collide); ``""`` is the store of a
device that reports no id (older firmware). Storing a record again (a re-sent record after a reconnect)
changes nothing, so the BLE client can resume generously. :meth:`HostStore.resume_point` gives the
sequence number to resume after: the highest one below which nothing is missing, so a gap (a record
lost mid-transfer) is asked for again rather than skipped. Records the *device* no longer has are
settled: a prefix its size cap deleted before it was sent with :meth:`HostStore.settle`, and one
record it quarantined (damaged, unsendable) with :meth:`HostStore.mark_gap`, so that they do not hold
the resume point back forever.

Schema versions: 1 (records, devices), 2 (+ patient, host-clock time, brief and waveform columns, and
settled floors), 3 (+ store id in every key, the device's current store, gaps), 4 (+ clinic marks: how far
each device store's records were acknowledged by a clinic, see :meth:`HostStore.clinic_mark`). Older files are
migrated in place, in one transaction, when opened.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from forcecast.edge.errors import ForcecastRuntimeError
from forcecast.edge.records import (
    KIND_LABELS,
    EventRecord,
    Record,
    RecordError,
    StepRecord,
    SummaryRecord,
    decode,
    dumps,
    version_of,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = 4
KINDS = KIND_LABELS
_RECORDS = """
CREATE TABLE IF NOT EXISTS records (
    device_id TEXT NOT NULL,
    store_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_utc TEXT NOT NULL,
    payload TEXT NOT NULL,
    patient_id TEXT,
    t_host REAL,
    brief TEXT,
    waveform BLOB,
    PRIMARY KEY (device_id, store_id, kind, seq)
) WITHOUT ROWID
"""
_FLOORS = """
CREATE TABLE IF NOT EXISTS floors (
    device_id TEXT NOT NULL,
    store_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (device_id, store_id, kind)
) WITHOUT ROWID
"""
_SCHEMA = f"""
{_RECORDS};
CREATE INDEX IF NOT EXISTS records_by_patient_time ON records (patient_id, kind, t_host);
{_FLOORS};
CREATE TABLE IF NOT EXISTS gaps (
    device_id TEXT NOT NULL,
    store_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    received_utc TEXT NOT NULL,
    PRIMARY KEY (device_id, store_id, kind, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clinic_marks (
    clinic TEXT NOT NULL,
    device_id TEXT NOT NULL,
    store_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (clinic, device_id, store_id, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    address TEXT,
    info TEXT,
    clock_offset_ms INTEGER,
    last_seen_utc TEXT,
    store_id TEXT NOT NULL DEFAULT ''
);
"""


WAVEFORM_POINTS = 101


def _derived(kind: str, payload: dict[str, Any], clock_offset_s: float) -> tuple[Any, ...]:
    """``(patient_id, t_host, brief, waveform)`` columns of a record: what day queries read.

    The record is decoded (:func:`forcecast.edge.records.decode`); one that does not decode is kept as it
    came but left out of day queries (no patient, no host time).
    """
    brief = json.dumps({k: v for k, v in payload.items() if k != "waveform_bw"}, separators=(",", ":"))
    try:
        record = decode(kind, payload)
    except RecordError:
        return None, None, brief, None
    t_host = record.t_unix + clock_offset_s if record.t_unix is not None else None
    waveform = None
    curves = record.waveform_bw if isinstance(record, StepRecord) else None
    if curves is not None and all(len(curve) == WAVEFORM_POINTS for curve in curves):
        waveform = np.asarray(curves, dtype="<f4").tobytes()
    return record.patient_id, t_host, brief, waveform


class HostStoreError(ForcecastRuntimeError):
    """The host store cannot be used (not ours, corrupt, newer schema); the message names the file."""

    reason = "host_store_unusable"


@dataclass(frozen=True)
class HostRecord:
    """One stored record."""

    device_id: str
    kind: str
    seq: int
    received_utc: str
    payload: dict[str, Any]
    store_id: str = ""

    def record(self) -> Record:
        """The payload as a typed record (RecordError if it is not one)."""
        return decode(self.kind, self.payload)


R = TypeVar("R", StepRecord, SummaryRecord, EventRecord)


@dataclass(frozen=True)
class DatedRecord(Generic[R]):
    """A patient's record in a day query: the device it came from, its host-clock time, the typed record.

    ``waveform`` is the step's stance waveform as float32 bytes of shape (3, 101), axes v, ap, ml, when asked
    for and known (the record itself is read without it: day queries are fast that way).
    """

    device_id: str
    t_host: float
    record: R
    waveform: bytes | None = None


class HostStore:
    """Idempotent record log (thread-safe; one connection behind a lock).

    Parameters
    ----------
    path
        SQLite file (created with its folder if missing).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise HostStoreError(f"{self.path}: not a forcecast host store ({exc})") from None
        if version > SCHEMA_VERSION:
            raise HostStoreError(
                f"{self.path}: schema version {version} is newer than this forcecast ({SCHEMA_VERSION})"
            )
        if tables and not {"records", "devices"} <= tables:
            raise HostStoreError(f"{self.path}: an SQLite file of something else (tables: {', '.join(sorted(tables))})")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        if version == 1:
            self._migrate_from_v1()
        if tables and version < 3:
            self._migrate_to_v3()
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate_from_v1(self) -> None:
        """Version 2 keeps each record's patient, host-clock time, brief and waveform in columns for day queries."""
        self._db.execute("BEGIN IMMEDIATE")
        for column in ("patient_id TEXT", "t_host REAL", "brief TEXT", "waveform BLOB"):
            self._db.execute(f"ALTER TABLE records ADD COLUMN {column}")
        rows = self._db.execute("SELECT device_id, kind, seq, payload FROM records").fetchall()
        for device_id, kind, seq, text in rows:
            payload = json.loads(text)
            self._db.execute(
                "UPDATE records SET patient_id = ?, t_host = ?, brief = ?, waveform = ? "
                "WHERE device_id = ? AND kind = ? AND seq = ?",
                (*_derived(kind, payload, 0.0), device_id, kind, seq),
            )
        self._db.execute("COMMIT")

    def _migrate_to_v3(self) -> None:
        """Version 3 keys records and floors by store id too (``""`` for what was stored before) and adds gaps."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DROP INDEX IF EXISTS records_by_patient_time")
            db.execute("ALTER TABLE records RENAME TO records_v2")
            db.execute(_RECORDS)
            columns = "device_id, kind, seq, received_utc, payload, patient_id, t_host, brief, waveform"
            db.execute(f"INSERT INTO records (store_id, {columns}) SELECT '', {columns} FROM records_v2")
            db.execute("DROP TABLE records_v2")
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'floors'").fetchone():
                db.execute("ALTER TABLE floors RENAME TO floors_v2")
                db.execute(_FLOORS)
                db.execute("INSERT INTO floors SELECT device_id, '', kind, upto FROM floors_v2")
                db.execute("DROP TABLE floors_v2")
            db.execute("ALTER TABLE devices ADD COLUMN store_id TEXT NOT NULL DEFAULT ''")
            db.execute("PRAGMA user_version = 3")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def current_store(self, device_id: str) -> str:
        """The store id the device reported last (``""`` if none: older firmware, or never connected)."""
        with self._lock:
            return self._current_store(device_id)

    def _current_store(self, device_id: str) -> str:
        row = self._db.execute("SELECT store_id FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return str(row[0]) if row and row[0] is not None else ""

    def _store_of(self, device_id: str, store_id: str | None) -> str:
        return self._current_store(device_id) if store_id is None else store_id

    def add(
        self,
        device_id: str,
        kind: str,
        seq: int,
        payload: dict[str, Any],
        received_utc: str,
        store_id: str | None = None,
    ) -> bool:
        """Store one record; returns False if it was already there (nothing changes then)."""
        return self.add_many(device_id, [(kind, seq, payload)], received_utc, store_id=store_id) == 1

    def add_many(
        self,
        device_id: str,
        records: list[tuple[str, int, dict[str, Any]]],
        received_utc: str,
        clock_offset_s: float = 0.0,
        store_id: str | None = None,
    ) -> int:
        """Store ``(kind, seq, payload)`` records in one transaction; returns how many were new.

        A record's time on the host clock (``t_host``) is its device time ``t_unix`` plus
        ``clock_offset_s`` (host − device, from the session's time sync), so days are cut on the host's
        clock even when the device's drifted. ``store_id`` None means the device's current store (as
        everywhere in this class).

        A record is stored as it came (its payload, see :mod:`forcecast.edge.records`); one that does not
        decode as a record of its kind is kept but left out of day queries.

        Raises
        ------
        ValueError
            On an unknown kind, a seq below 1, a payload that is not finite JSON, or a record of a newer
            version than this software reads (:class:`~forcecast.edge.records.RecordError`, reason
            ``newer_version``); nothing of the batch is stored then.
        """
        rows = []
        for kind, seq, payload in records:
            if kind not in KINDS:
                raise ValueError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}")
            if seq < 1:
                raise ValueError(f"{kind} record seq must be ≥ 1, got {seq}")
            text = dumps(payload)
            try:
                version_of(kind, payload)
            except RecordError as exc:
                if exc.reason == "newer_version":
                    raise RecordError(exc.reason, f"{device_id} {kind} record {seq}: {exc}") from None
            rows.append((kind, seq, received_utc, text, *_derived(kind, payload, clock_offset_s)))
        with self._lock:
            key = (device_id, self._store_of(device_id, store_id))
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO records (device_id, store_id, kind, seq, received_utc, payload, patient_id, "
                    "t_host, brief, waveform) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*key, *row) for row in rows],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def settle(self, device_id: str, kind: str, upto: int, store_id: str | None = None) -> None:
        """Declare every seq ≤ ``upto`` done: stored here, or gone from the device for good."""
        with self._lock:
            self._db.execute(
                "INSERT INTO floors VALUES (?, ?, ?, ?) ON CONFLICT(device_id, store_id, kind) DO UPDATE SET "
                "upto = MAX(upto, excluded.upto)",
                (device_id, self._store_of(device_id, store_id), kind, upto),
            )

    def mark_gap(
        self, device_id: str, kind: str, seq: int, reason: str, received_utc: str, store_id: str | None = None
    ) -> bool:
        """Declare one seq gone for good (the device quarantined it); returns False if already known.

        The resume point then passes it, and :meth:`gaps` lists it with the device's reason.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}")
        if seq < 1:
            raise ValueError(f"{kind} gap seq must be ≥ 1, got {seq}")
        with self._lock:
            before = self._db.total_changes
            self._db.execute(
                "INSERT OR IGNORE INTO gaps VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, self._store_of(device_id, store_id), kind, seq, reason, received_utc),
            )
            return self._db.total_changes > before

    def gaps(self, device_id: str, store_id: str | None = None) -> list[dict[str, Any]]:
        """Seqs the device reported gone for good: ``kind``, ``seq``, ``reason``, ``received_utc``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, seq, reason, received_utc FROM gaps WHERE device_id = ? AND store_id = ? "
                "ORDER BY kind, seq",
                (device_id, self._store_of(device_id, store_id)),
            ).fetchall()
        return [{"kind": k, "seq": s, "reason": r, "received_utc": u} for k, s, r, u in rows]

    def resume_point(self, device_id: str, kind: str, store_id: str | None = None) -> int:
        """The highest seq with every record up to it stored, settled or a known gap (0 if record 1 is missing)."""
        with self._lock:
            key = (device_id, self._store_of(device_id, store_id), kind)
            row = self._db.execute("SELECT upto FROM floors WHERE device_id = ? AND store_id = ? AND kind = ?", key)
            floor = (row.fetchone() or (0,))[0]
            present = (
                "(EXISTS (SELECT 1 FROM records WHERE device_id = ? AND store_id = ? AND kind = ? AND seq = {0}) "
                "OR EXISTS (SELECT 1 FROM gaps WHERE device_id = ? AND store_id = ? AND kind = ? AND seq = {0}))"
            )
            (following,) = self._db.execute(
                f"SELECT {present.format('?')}", (*key, floor + 1, *key, floor + 1)
            ).fetchone()
            if not following:
                return int(floor)
            (end,) = self._db.execute(
                f"""SELECT MIN(p.seq) FROM (SELECT seq FROM records WHERE device_id = ? AND store_id = ? AND kind = ?
                    AND seq > ? UNION ALL SELECT seq FROM gaps WHERE device_id = ? AND store_id = ? AND kind = ?
                    AND seq > ?) p WHERE NOT {present.format("p.seq + 1")}""",
                (*key, floor, *key, floor, *key, *key),
            ).fetchone()
        return int(end)

    def adopt_legacy(self, device_id: str, store_id: str) -> int:
        """Move what was stored for the device without a store id under ``store_id``; returns the records moved.

        For a device whose firmware gave its existing store an id on upgrade (its seqs go on from the old
        ones). Nothing moves if ``store_id`` already holds records.
        """
        with self._lock:
            db = self._db
            if db.execute(
                "SELECT 1 FROM records WHERE device_id = ? AND store_id = ?", (device_id, store_id)
            ).fetchone():
                return 0
            db.execute("BEGIN IMMEDIATE")
            try:
                moved = db.execute(
                    "UPDATE records SET store_id = ? WHERE device_id = ? AND store_id = ''", (store_id, device_id)
                ).rowcount
                for table in ("floors", "gaps"):
                    db.execute(
                        f"UPDATE OR IGNORE {table} SET store_id = ? WHERE device_id = ? AND store_id = ''",
                        (store_id, device_id),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return int(moved)

    def records(
        self, device_id: str, kind: str, after_seq: int = 0, limit: int = 100_000, store_id: str | None = None
    ) -> list[HostRecord]:
        """Stored records of one device, store and kind, by seq."""
        with self._lock:
            store = self._store_of(device_id, store_id)
            rows = self._db.execute(
                "SELECT seq, received_utc, payload FROM records WHERE device_id = ? AND store_id = ? AND kind = ? "
                "AND seq > ? ORDER BY seq LIMIT ?",
                (device_id, store, kind, after_seq, limit),
            ).fetchall()
        return [HostRecord(device_id, kind, s, r, json.loads(p), store) for s, r, p in rows]

    def patient_records(
        self, patient_id: str, kind: str, start: float, end: float
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """``(device_id, t_host, payload)`` of one patient's records with ``start <= t_host < end``, by time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, t_host, payload FROM records WHERE patient_id = ? AND kind = ? "
                "AND t_host >= ? AND t_host < ? ORDER BY t_host",
                (patient_id, kind, start, end),
            ).fetchall()
        return [(d, t, json.loads(p)) for d, t, p in rows]

    def patient_briefs(
        self, patient_id: str, kind: str, start: float, end: float, waveforms: bool = False
    ) -> list[tuple[str, float, dict[str, Any], bytes | None]]:
        """Like :meth:`patient_records`, but fast: payloads without their waveform.

        The waveform comes (if asked) as float32 bytes of shape (3, 101), axes v, ap, ml (None when the
        record had none).
        """
        with self._lock:
            rows = self._db.execute(
                f"SELECT device_id, t_host, brief, {'waveform' if waveforms else 'NULL'} FROM records "
                "WHERE patient_id = ? AND kind = ? AND t_host >= ? AND t_host < ? ORDER BY t_host",
                (patient_id, kind, start, end),
            ).fetchall()
        return [(d, t, json.loads(b), w) for d, t, b, w in rows]

    def dated_records(
        self, patient_id: str, record_type: type[R], start: float, end: float, waveforms: bool = False
    ) -> list[DatedRecord[R]]:
        """One patient's records of a type with ``start <= t_host < end``, by time (see :class:`DatedRecord`).

        ``record_type`` is :class:`~forcecast.edge.records.StepRecord`, ``SummaryRecord`` or ``EventRecord``.
        Read from the briefs (payloads without their waveform); a brief that no longer decodes (stored by
        older software that did not check records) is left out and logged.
        """
        kind = record_type.KIND
        out: list[DatedRecord[R]] = []
        for device_id, t_host, brief, blob in self.patient_briefs(patient_id, kind.label, start, end, waveforms):
            try:
                record = record_type.from_payload(brief)
            except RecordError as exc:
                log.warning("%s: %s record of %s at %s left out: %s", self.path, kind.label, device_id, t_host, exc)
                continue
            out.append(DatedRecord(device_id, t_host, record, blob))
        return out

    def day_totals(self, patient_id: str, start: float, end: float) -> tuple[int, float, int]:
        """``(steps, cumulative vertical impulse in BW·s, cues)`` of a patient between two host-clock times."""
        with self._lock:
            steps, load = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(json_extract(brief, '$.impulse_v_bws')), 0) FROM records "
                "WHERE patient_id = ? AND kind = 'step' AND t_host >= ? AND t_host < ?",
                (patient_id, start, end),
            ).fetchone()
            (cues,) = self._db.execute(
                "SELECT COUNT(*) FROM records WHERE patient_id = ? AND kind = 'event' AND t_host >= ? "
                "AND t_host < ? AND json_extract(brief, '$.event') = 'cue'",
                (patient_id, start, end),
            ).fetchone()
        return int(steps), float(load), int(cues)

    def patients(self) -> list[str]:
        """Every patient with stored records."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT patient_id FROM records WHERE patient_id IS NOT NULL")
            return sorted(r[0] for r in rows.fetchall())

    def count(self, device_id: str, kind: str, store_id: str | None = None) -> int:
        """How many records of a kind are stored for a device's store."""
        with self._lock:
            key = (device_id, self._store_of(device_id, store_id), kind)
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM records WHERE device_id = ? AND store_id = ? AND kind = ?", key
                ).fetchone()[0]
            )

    def note_device(
        self,
        device_id: str,
        address: str,
        info: dict[str, Any],
        clock_offset_ms: int,
        seen_utc: str,
        store_id: str | None = None,
    ) -> None:
        """Remember a device's address, info, clock offset (host time − device time) and current store.

        ``store_id`` None leaves the current store as it was.
        """
        with self._lock:
            store = self._store_of(device_id, store_id)
            self._db.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET "
                "address = excluded.address, info = excluded.info, clock_offset_ms = excluded.clock_offset_ms, "
                "last_seen_utc = excluded.last_seen_utc, store_id = excluded.store_id",
                (device_id, address, json.dumps(info), clock_offset_ms, seen_utc, store),
            )

    def devices(self) -> list[dict[str, Any]]:
        """Every device seen."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, address, info, clock_offset_ms, last_seen_utc, store_id FROM devices"
            ).fetchall()
        return [
            {
                "device_id": d,
                "address": a,
                "info": json.loads(i or "{}"),
                "clock_offset_ms": o,
                "last_seen_utc": s,
                "store_id": store,
            }
            for d, a, i, o, s, store in rows
        ]

    # ------------------------------------------------------------------ clinic sync (schema version 4)

    def clinic_mark(self, clinic: str, device_id: str, store_id: str, kind: str) -> int:
        """The seq up to which a clinic acknowledged every record of a device store and kind that is stored here.

        ``clinic`` names the clinic (its base URL). 0 when nothing was acknowledged yet.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT upto FROM clinic_marks WHERE clinic = ? AND device_id = ? AND store_id = ? AND kind = ?",
                (clinic, device_id, store_id, kind),
            ).fetchone()
        return int(row[0]) if row else 0

    def set_clinic_mark(self, clinic: str, device_id: str, store_id: str, kind: str, upto: int) -> None:
        """Record that the clinic acknowledged every stored record up to ``upto`` (the mark never goes back)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO clinic_marks VALUES (?, ?, ?, ?, ?) ON CONFLICT(clinic, device_id, store_id, kind) "
                "DO UPDATE SET upto = MAX(upto, excluded.upto)",
                (clinic, device_id, store_id, kind, upto),
            )

    def lower_clinic_mark(self, clinic: str, device_id: str, store_id: str, kind: str, upto: int) -> bool:
        """Move a clinic mark back to ``upto`` if it is above; returns whether it moved.

        For a clinic that holds less than it had acknowledged (its database restored from a backup).
        """
        with self._lock:
            changed = self._db.execute(
                "UPDATE clinic_marks SET upto = ? WHERE clinic = ? AND device_id = ? AND store_id = ? AND kind = ? "
                "AND upto > ?",
                (upto, clinic, device_id, store_id, kind, upto),
            ).rowcount
        return bool(changed)

    def stores_with_records(self, device_id: str) -> list[str]:
        """Every store id of a device that has records here (``""``: firmware without store ids)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT store_id FROM records WHERE device_id = ? ORDER BY store_id", (device_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def outgoing(
        self, device_id: str, store_id: str, kind: str, after_seq: int, limit: int
    ) -> list[tuple[int, float | None, dict[str, Any], bytes | None]]:
        """Records to push to a clinic: ``(seq, t_host, brief, waveform)`` with seq > ``after_seq``, by seq.

        The brief is the payload without its waveform, which comes as float32 bytes of shape (3, 101) (None when
        the record had none), as :meth:`patient_briefs` gives them.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, t_host, brief, waveform FROM records WHERE device_id = ? AND store_id = ? AND kind = ? "
                "AND seq > ? ORDER BY seq LIMIT ?",
                (device_id, store_id, kind, after_seq, limit),
            ).fetchall()
        return [(int(q), t, json.loads(b), w) for q, t, b, w in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> HostStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
