"""The on-device record store: step records, GRF stream summaries and events, kept until the host has them.

Store-and-forward over one SQLite file. Every record gets a per-kind sequence number (1, 2, 3 ...,
never reused); the host reads records after the last sequence number it holds and acknowledges up
to a sequence number. The file survives a power cut at any moment:

- WAL journal with ``synchronous=FULL``: once ``append`` (or ``ack``) returns, the change is on
  disk, and a cut mid-write rolls back to the last commit on the next open.
- The next sequence number comes from a per-kind counter, not from ``MAX(seq)``, so numbers stay
  unique even when the size cap has deleted every stored record of a kind.
- A size cap: when the live database pages exceed ``max_bytes``, the oldest acknowledged records go
  first, then the oldest unacknowledged ones; the batch just appended is never deleted. "Oldest"
  is append order, which, unlike the device clock, survives reboots and clock jumps.

Acknowledging is by "everything up to ``seq``", so the acknowledged records of a kind are always a
prefix of its sequence; the store keeps that prefix as one number per kind (``acked_upto``) instead
of a flag per row, which makes ``ack`` a single small write.

Identity: every store gets a random 64-bit ``store_id`` when it is created (a store made by older
software gets one the first time it is opened, marked ``store_id_origin = upgrade``), so a host can
tell a replaced store, whose seqs restart at 1, from the one it was syncing.

Damaged records: a stored payload that no longer parses as a JSON object of finite numbers is moved to
the ``quarantine`` table by :meth:`RecordStore.records` (or by :meth:`RecordStore.quarantine`, for one
the link cannot send) and a ``record_quarantined`` event names its kind, seq and reason; readers go on
past it instead of stopping there.

Full disk: a write that fails with SQLITE_FULL (which is how SQLite reports ENOSPC) gives back the
space kept in a reserve file, deletes acknowledged records in small transactions, checkpoints and
truncates the WAL, and tries once more; if it still fails, :class:`StorageFullError` says so and the
store stays consistent (the runtime keeps running and retries later).

Threading: one connection opened with ``check_same_thread=False`` and guarded by a lock, so the
runtime may append from one thread while the BLE server reads and acknowledges from another. Each
public method is one critical section.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from forcecast.edge.errors import ForcecastRuntimeError
from forcecast.edge.records import KIND_LABELS, EventRecord, EventType, Record, RecordKind, decode, dumps, loads

_T = TypeVar("_T")
SCHEMA_VERSION = 1
APPLICATION_ID = 0x46434153  # "FCAS" in the SQLite header marks a forcecast store
_CAP_BATCH_ROWS = 32
_CAP_ORDER = (("dropped_acked", "r.seq <= k.acked_upto"), ("dropped_unacked", "r.seq > k.acked_upto"))
_TABLES = {"meta", "kinds", "records"}
SQLITE_FULL = 13
QUARANTINE_KEEP = 64
"""Quarantined records kept for inspection (the oldest go first)."""
RESERVE_BYTES = 1024 * 1024
_QUARANTINE = """
CREATE TABLE IF NOT EXISTS quarantine (
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_time_s REAL,
    payload TEXT,
    reason TEXT NOT NULL,
    at_utc TEXT NOT NULL,
    PRIMARY KEY (kind, seq)
)
"""
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE kinds (
    kind TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,
    acked_upto INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL REFERENCES kinds (kind),
    seq INTEGER NOT NULL,
    device_time_s REAL NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (kind, seq)
);
"""


class StoreError(ForcecastRuntimeError):
    """The store file is unreadable, corrupt, not a forcecast store or failed a write; the message names the file."""

    reason = "store_unusable"


class StorageFullError(StoreError):
    """A write failed for lack of space (ENOSPC / SQLITE_FULL) even after acknowledged records were freed."""

    reason = "storage_full"


def _is_full(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL


def _new_store_id() -> str:
    while (store_id := secrets.token_hex(8)) == "0" * 16:
        pass
    return store_id


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class StoredRecord:
    """One record as stored.

    Attributes
    ----------
    kind
        ``step``, ``summary`` or ``event``.
    seq
        Per-kind sequence number: 1, 2, 3 ... in append order, never reused.
    device_time_s
        Device clock time of the record.
    payload
        The record body, as JSON round-trips it (tuples come back as lists).
    acked
        Whether the host has acknowledged it.
    """

    kind: str
    seq: int
    device_time_s: float
    payload: dict[str, Any]
    acked: bool

    def record(self) -> Record:
        """The payload as a typed record (:func:`forcecast.edge.records.decode`; RecordError if it is not one)."""
        return decode(self.kind, self.payload)


class RecordStore:
    """A crash-safe SQLite store of step, summary and event records with sequence numbers and a size cap.

    Parameters
    ----------
    path
        SQLite file; it and its parent folders are created if missing.
    max_bytes
        Size cap on the live database pages (the WAL is not counted).
    device_id
        Device this store belongs to. A store created with an id refuses to open under another
        non-empty id; an empty id accepts any store, and a store created without an id adopts the
        first non-empty one it is opened with.
    reserve_bytes
        Disk space held in ``<path>.reserve`` and given back when the disk is full, so that acknowledged
        records can still be deleted (a deletion needs WAL space too); 0 keeps no reserve.

    Raises
    ------
    StoreError
        The file is not SQLite, is corrupt, is another program's SQLite database, was written by a
        newer schema, or belongs to another device.
    """

    KINDS = KIND_LABELS

    def __init__(
        self,
        path: Path | str,
        max_bytes: int = 256 * 1024 * 1024,
        device_id: str = "",
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if reserve_bytes < 0:
            raise ValueError(f"reserve_bytes must be ≥ 0, got {reserve_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.full_events = 0
        """Writes that met a full disk (each one triggered a reclaim)."""
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's folder: {exc}") from None
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        try:
            with self._guard("opening the store"):
                self._open(device_id)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise
        self._fill_reserve()

    # -- public API -----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        """The device id recorded in the store (empty if none)."""
        with self._guard("reading meta"):
            return self._meta("device_id")

    @property
    def store_id(self) -> str:
        """The store's random identity: 16 hex digits (64 bits, never all zero), fixed for its lifetime."""
        with self._guard("reading meta"):
            return self._meta("store_id")

    @property
    def store_id_origin(self) -> str:
        """``created`` (the id was made with the store) or ``upgrade`` (given to a store older software made)."""
        with self._guard("reading meta"):
            return self._meta("store_id_origin")

    def append(self, kind: str | RecordKind, records: Sequence[tuple[float, Record | dict[str, Any]]]) -> list[int]:
        """Store a batch of records of one kind in one transaction.

        Parameters
        ----------
        kind
            One of ``KINDS`` (or the :class:`~forcecast.edge.records.RecordKind`).
        records
            ``(device_time_s, record)`` pairs; each record a typed record (stored as its payload, see
            :mod:`forcecast.edge.records`) or a JSON-serialisable dict, stored as it is.

        Returns
        -------
        list of int
            The sequence numbers assigned, in order. When this returns, the batch is on disk.

        Raises
        ------
        ValueError
            Unknown kind, non-finite time or a payload that is not a JSON-serialisable dict; nothing
            of the batch is stored.
        """
        kind = kind.label if isinstance(kind, RecordKind) else kind
        self._check_kind(kind)
        rows = []
        for i, (device_time_s, record) in enumerate(records):
            payload = record.to_payload() if isinstance(record, Record) else record
            if not isinstance(payload, dict):
                raise ValueError(f"{kind} record {i}: payload must be a dict, got {type(payload).__name__}")
            try:
                text = dumps(payload)
            except ValueError as exc:
                raise ValueError(f"{kind} record {i}: payload is not JSON-serialisable: {exc}") from None
            if not isinstance(device_time_s, int | float) or not math.isfinite(device_time_s):
                raise ValueError(f"{kind} record {i}: device_time_s must be a finite number, got {device_time_s!r}")
            rows.append((float(device_time_s), text))
        if not rows:
            return []

        def write(conn: sqlite3.Connection) -> list[int]:
            # The cap runs in the same transaction: a returned append has both, a failed one changed nothing.
            (last,) = conn.execute("SELECT last_seq FROM kinds WHERE kind = ?", (kind,)).fetchone()
            seqs = list(range(last + 1, last + 1 + len(rows)))
            conn.executemany(
                "INSERT INTO records (kind, seq, device_time_s, payload) VALUES (?, ?, ?, ?)",
                [(kind, seq, t, text) for seq, (t, text) in zip(seqs, rows, strict=True)],
            )
            conn.execute("UPDATE kinds SET last_seq = ? WHERE kind = ?", (seqs[-1], kind))
            (first_id,) = conn.execute("SELECT id FROM records WHERE kind = ? AND seq = ?", (kind, seqs[0])).fetchone()
            self._enforce_cap(protect_from_id=first_id)
            return seqs

        if self.reserve_bytes and not self.reserve_path.exists():  # spent on a full disk (or never made)
            if self._short_of_space():
                with self._guard("reclaiming space"):
                    self.full_events += 1
                    self._reclaim()
                if self._short_of_space():
                    raise StorageFullError(
                        f"{self.path}: appending {len(rows)} {kind} record(s) refused: fewer than "
                        f"{self.reserve_bytes} bytes free on the disk, kept for acknowledgements and the deletions "
                        "they allow"
                    )
            with self._guard("refilling the reserve"):
                self._fill_reserve()
        return self._write(f"appending {len(rows)} {kind} record(s)", write)

    def records(self, kind: str, after_seq: int = 0, limit: int = 1000) -> list[StoredRecord]:
        """Records of ``kind`` with ``seq > after_seq``, oldest first, at most ``limit``.

        A record whose payload is damaged (not JSON, NaN or Infinity, not an object) is quarantined on
        the way (see :meth:`quarantine`) and skipped, so one bad row never stops a reader. If the
        quarantine cannot be written (full disk), the record is still skipped and tried again next time.
        """
        self._check_kind(kind)
        if limit < 0:
            raise ValueError(f"limit must be ≥ 0, got {limit}")
        out: list[StoredRecord] = []
        while len(out) < limit:
            with self._guard(f"reading {kind} records"):
                conn = self._connection()
                (acked_upto,) = conn.execute("SELECT acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
                rows = conn.execute(
                    "SELECT seq, device_time_s, payload FROM records WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (kind, after_seq, limit - len(out)),
                ).fetchall()
            want = limit - len(out)
            for seq, t, text in rows:
                try:
                    payload = loads(text if isinstance(text, str) else bytes(text))
                except ValueError as exc:
                    with contextlib.suppress(StoreError):
                        self.quarantine(kind, seq, f"damaged payload: {exc}")
                    continue
                out.append(StoredRecord(kind, seq, t, payload, seq <= acked_upto))
            if len(rows) < want:
                break  # nothing more stored
            after_seq = rows[-1][0]
        return out

    def quarantine(self, kind: str, seq: int, reason: str) -> int | None:
        """Move record ``seq`` of ``kind`` out of the queue and log a ``record_quarantined`` event.

        For a record nobody can send: a damaged payload, or one the wire refuses (too large). The row
        goes to the ``quarantine`` table (the newest :data:`QUARANTINE_KEEP` are kept) and an event
        ``{"event": "record_quarantined", "kind", "seq", "reason"}`` is appended in the same
        transaction, so the host learns of the gap, with its reason, through the event stream.

        Returns
        -------
        int or None
            The event's seq, or None if the record was not (or no longer) in the queue.

        Raises
        ------
        StoreError
            The write failed (e.g. :class:`StorageFullError`); nothing changed.
        """
        self._check_kind(kind)
        reason = reason[:300]

        def write(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT id, device_time_s, payload FROM records WHERE kind = ? AND seq = ?", (kind, seq)
            ).fetchone()
            if row is None:
                return None
            record_id, device_time_s, text = row
            conn.execute(
                "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
                (kind, seq, device_time_s, str(text)[:4096], reason, _utc_now()),
            )
            conn.execute("DELETE FROM records WHERE id = ?", (record_id,))
            conn.execute(
                "DELETE FROM quarantine WHERE rowid NOT IN (SELECT rowid FROM quarantine ORDER BY rowid DESC LIMIT ?)",
                (QUARANTINE_KEEP,),
            )
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'quarantined'")
            finite = isinstance(device_time_s, int | float) and math.isfinite(device_time_s)
            at = float(device_time_s) if finite else 0.0
            event = EventRecord(
                event=EventType.RECORD_QUARANTINED,
                record_kind=kind,
                seq=seq,
                reason=reason,
                t_unix=round(time.time(), 3),
            )
            (last,) = conn.execute("SELECT last_seq FROM kinds WHERE kind = 'event'").fetchone()
            conn.execute(
                "INSERT INTO records (kind, seq, device_time_s, payload) VALUES ('event', ?, ?, ?)",
                (last + 1, at, dumps(event.to_payload())),
            )
            conn.execute("UPDATE kinds SET last_seq = ? WHERE kind = 'event'", (last + 1,))
            return int(last + 1)

        return self._write(f"quarantining {kind} record {seq}", write, essential=True)

    def quarantined(self) -> list[dict[str, Any]]:
        """The quarantined records kept (``kind``, ``seq``, ``reason``, ``at_utc``), oldest first."""
        with self._guard("reading the quarantine"):
            rows = (
                self._connection().execute("SELECT kind, seq, reason, at_utc FROM quarantine ORDER BY rowid").fetchall()
            )
        return [{"kind": k, "seq": s, "reason": r, "at_utc": a} for k, s, r, a in rows]

    def ack(self, kind: str, upto_seq: int) -> int:
        """Acknowledge every record of ``kind`` with ``seq <= upto_seq``.

        Returns
        -------
        int
            How many stored records became acknowledged by this call (0 when already acknowledged).

        Raises
        ------
        ValueError
            ``upto_seq`` is beyond the last sequence number ever assigned (a host acknowledging
            records this store never wrote, e.g. from another device or an older store).
        """
        self._check_kind(kind)

        def write(conn: sqlite3.Connection) -> int:
            last, acked_upto = conn.execute("SELECT last_seq, acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
            if upto_seq > last:
                raise ValueError(f"{self.path}: cannot acknowledge {kind} records up to {upto_seq}: last seq is {last}")
            if upto_seq <= acked_upto:
                return 0
            (newly,) = conn.execute(
                "SELECT COUNT(*) FROM records WHERE kind = ? AND seq > ? AND seq <= ?", (kind, acked_upto, upto_seq)
            ).fetchone()
            conn.execute("UPDATE kinds SET acked_upto = ? WHERE kind = ?", (upto_seq, kind))
            return int(newly)

        return self._write(f"acknowledging {kind} records", write, essential=True)

    def reclaim(self) -> int:
        """Make room on a full disk: delete every acknowledged record and give the space back.

        Deletes in small transactions (a deletion needs WAL space too; the batch shrinks when even
        that fails), then checkpoints and truncates the WAL and the freed pages. Appends and
        acknowledgements call this by themselves when they meet SQLITE_FULL; the runtime may call it
        when retrying after a failed write.

        Returns
        -------
        int
            How many acknowledged records were deleted.

        Raises
        ------
        StoreError
            If the store is closed or fails for another reason than a full disk.
        """
        with self._guard("reclaiming space"):
            return self._reclaim()

    def last_seq(self, kind: str) -> int:
        """Highest sequence number ever assigned to ``kind`` (0 if none), even if the cap deleted it."""
        self._check_kind(kind)
        with self._guard("reading sequence numbers"):
            (last,) = self._connection().execute("SELECT last_seq FROM kinds WHERE kind = ?", (kind,)).fetchone()
            return int(last)

    def progress(self, kind: str) -> tuple[int, int, int]:
        """``(last_seq, acked_upto, stored)`` of ``kind``: what a host needs to know how far behind it is."""
        self._check_kind(kind)
        with self._guard("reading sequence numbers"):
            conn = self._connection()
            last, acked_upto = conn.execute("SELECT last_seq, acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
            (stored,) = conn.execute("SELECT COUNT(*) FROM records WHERE kind = ?", (kind,)).fetchone()
            return int(last), int(acked_upto), int(stored)

    def first_unacked(self, kind: str) -> int | None:
        """Sequence number of the oldest stored unacknowledged record of ``kind``, or None."""
        self._check_kind(kind)
        with self._guard("reading sequence numbers"):
            conn = self._connection()
            (acked_upto,) = conn.execute("SELECT acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
            query = "SELECT MIN(seq) FROM records WHERE kind = ? AND seq > ?"
            (first,) = conn.execute(query, (kind, acked_upto)).fetchone()
            return None if first is None else int(first)

    def stats(self) -> dict[str, Any]:
        """Counts and sizes, ready to serialise.

        Returns
        -------
        dict
            One entry per kind (``{"count", "acked", "unacked", "last_seq"}``), plus ``file_bytes``
            (database and WAL files on disk), ``max_bytes``, ``dropped_acked`` and ``dropped_unacked``
            (records the size cap has deleted, ever), ``reclaimed_acked`` (acknowledged records deleted
            to make room on a full disk, ever), ``quarantined`` (damaged records moved out, ever),
            ``full_events`` (writes that met a full disk since opening), ``device_id`` and ``store_id``.
        """
        with self._guard("reading statistics"):
            conn = self._connection()
            out: dict[str, Any] = {}
            for kind, last, acked_upto in conn.execute("SELECT kind, last_seq, acked_upto FROM kinds ORDER BY kind"):
                count, acked = conn.execute(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE seq <= ?) FROM records WHERE kind = ?", (acked_upto, kind)
                ).fetchone()
                out[kind] = {"count": count, "acked": acked, "unacked": count - acked, "last_seq": last}
            wal = self.path.with_name(self.path.name + "-wal")
            out["file_bytes"] = self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
            out["max_bytes"] = self.max_bytes
            out["dropped_acked"] = int(self._meta("dropped_acked"))
            out["dropped_unacked"] = int(self._meta("dropped_unacked"))
            out["reclaimed_acked"] = int(self._meta("reclaimed_acked"))
            out["quarantined"] = int(self._meta("quarantined"))
            out["full_events"] = self.full_events
            out["device_id"] = self._meta("device_id")
            out["store_id"] = self._meta("store_id")
        return out

    def close(self) -> None:
        """Close the store (idempotent); later calls raise StoreError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RecordStore({str(self.path)!r}, max_bytes={self.max_bytes})"

    # -- internals ------------------------------------------------------------------------------

    def _open(self, device_id: str) -> None:
        conn = self._connection()
        # quick_check before anything writes: a file that is not SQLite fails here with "file is not a database".
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            detail = "; ".join(problems[:5]).replace("\n", "; ")
            raise StoreError(f"{self.path}: store is corrupt (PRAGMA quick_check): {detail}")
        if not self._identify():
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect before the first table
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the store to WAL journal mode")
        conn.execute("PRAGMA synchronous = FULL")
        # Checkpoint and trim the WAL at 1/8 of the cap (at most SQLite's default 1000 pages) so that the
        # WAL, which the cap does not count, stays small next to the database.
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        # The WAL also stays within half the reserve: on a full disk, what it holds must fit into the database
        # (a checkpoint) with the reserve's space alone, before anything can be freed.
        wal_pages = max(16, min(1000, self.max_bytes // page_size // 8))
        if self.reserve_bytes:
            wal_pages = max(4, min(wal_pages, self.reserve_bytes // page_size // 2))
        conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
        conn.execute(f"PRAGMA journal_size_limit = {wal_pages * page_size}")
        with self._transaction():
            if not self._identify():  # checked again under the write lock: another process may have created it
                self._create(device_id)
            stored_id = self._meta("device_id")
            if device_id and stored_id and device_id != stored_id:
                raise StoreError(f"{self.path}: store belongs to device {stored_id!r}, not {device_id!r}")
            if device_id and not stored_id:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", (device_id,))
            self._upgrade()

    def _upgrade(self) -> None:
        """Give a store made by older software what this one adds (no schema bump: older software ignores it)."""
        conn = self._connection()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'").fetchone() is None:
            conn.execute(_QUARANTINE)
        defaults = {"reclaimed_acked": "0", "quarantined": "0"}
        if conn.execute("SELECT 1 FROM meta WHERE key = 'store_id'").fetchone() is None:
            defaults |= {"store_id": _new_store_id(), "store_id_origin": "upgrade"}
        for key, value in defaults.items():
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _identify(self) -> bool:
        """True for a forcecast store, False for an empty database; StoreError for anything else."""
        conn = self._connection()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if not tables and app_id == 0:
            return False
        if app_id != APPLICATION_ID or not _TABLES.issubset(tables):
            found = ", ".join(sorted(tables)) or "none"
            raise StoreError(f"{self.path}: SQLite database is not a forcecast store (tables: {found})")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema {version} is newer than this software's {SCHEMA_VERSION}")
        if version < 1:
            raise StoreError(f"{self.path}: store has no schema version; it is damaged or not a forcecast store")
        return True

    def _create(self, device_id: str) -> None:
        conn = self._connection()
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO kinds (kind) VALUES (?)", [(k,) for k in self.KINDS])
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        meta = {
            "device_id": device_id,
            "created_utc": created,
            "dropped_acked": "0",
            "dropped_unacked": "0",
            "store_id": _new_store_id(),
            "store_id_origin": "created",
        }
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _enforce_cap(self, protect_from_id: int) -> None:
        """Delete the oldest records (acknowledged first) until the live pages fit ``max_bytes``.

        Runs inside a transaction. Records with ``id >= protect_from_id`` (the batch just appended)
        are kept. Oldest means first appended (lowest id): unlike the device clock, that order
        survives reboots and clock jumps.
        """
        conn = self._connection()
        dropped = {"dropped_acked": 0, "dropped_unacked": 0}
        while self._live_bytes() > self.max_bytes:
            for counter, condition in _CAP_ORDER:
                deleted = conn.execute(
                    "DELETE FROM records WHERE id IN (SELECT r.id FROM records r JOIN kinds k ON k.kind = r.kind "
                    f"WHERE {condition} AND r.id < ? ORDER BY r.id LIMIT ?)",
                    (protect_from_id, _CAP_BATCH_ROWS),
                ).rowcount
                if deleted:
                    dropped[counter] += deleted
                    break
            else:
                break  # only the protected batch is left
        if any(dropped.values()):
            for key, count in dropped.items():
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?", (count, key))
            conn.execute("PRAGMA incremental_vacuum").fetchall()  # each freed page is one result row; step them all

    def _live_bytes(self) -> int:
        conn = self._connection()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * page_size)

    def _meta(self, key: str) -> str:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: store has no {key!r} entry in its meta table")
        return str(row[0])

    def _check_kind(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(self.KINDS)}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

    def _write(self, action: str, work: Callable[[sqlite3.Connection], _T], essential: bool = False) -> _T:
        """Run ``work`` in a write transaction; on a full disk reclaim space and try once more.

        An append is tried again only if acknowledged records were freed: the reserve's space is kept
        as headroom for what lets the store recover (an acknowledgement, then the deletions it allows),
        which is tried again in any case (``essential``).
        """
        with self._guard(action):
            try:
                with self._transaction() as conn:
                    return work(conn)
            except sqlite3.Error as exc:
                if not _is_full(exc):
                    raise
                self.full_events += 1
            if not self._reclaim() and not essential:
                raise StorageFullError(
                    f"{self.path}: {action} failed: the disk is full and no acknowledged record is left to free"
                )
            try:
                with self._transaction() as conn:
                    result = work(conn)
            except sqlite3.Error as exc:
                if not _is_full(exc):
                    raise
                raise StorageFullError(
                    f"{self.path}: {action} failed: the disk is full, even after freeing acknowledged records ({exc})"
                ) from None
            self._fill_reserve()
            return result

    def _reclaim(self) -> int:
        """Free acknowledged records and the WAL (under the lock); see :meth:`reclaim`."""
        conn = self._connection()
        with contextlib.suppress(FileNotFoundError):
            self.reserve_path.unlink()  # the headroom that lets the deletions below reach the WAL
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # WAL into the database, WAL emptied
        freed, batch = 0, 64
        while True:
            try:
                with self._transaction():
                    deleted = conn.execute(
                        "DELETE FROM records WHERE id IN (SELECT r.id FROM records r JOIN kinds k ON k.kind = r.kind "
                        "WHERE r.seq <= k.acked_upto ORDER BY r.id LIMIT ?)",
                        (batch,),
                    ).rowcount
                    if deleted:
                        conn.execute(
                            "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'reclaimed_acked'",
                            (deleted,),
                        )
                    conn.execute("PRAGMA incremental_vacuum").fetchall()
            except sqlite3.Error as exc:
                if not _is_full(exc) or batch == 1:
                    break  # nothing more can be written; what was freed so far stays freed
                batch //= 2
                continue
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            freed += deleted
            if deleted < batch:
                break
        return freed

    def _short_of_space(self) -> bool:
        """True when the reserve is spent and the disk has less free than it: appends must leave that room."""
        if self.reserve_bytes == 0 or self.reserve_path.exists():
            return False
        try:
            disk = os.statvfs(self.path.parent)
        except OSError:
            return False
        return disk.f_bavail * disk.f_frsize < self.reserve_bytes

    def _fill_reserve(self) -> None:
        """(Re)create the reserve file if it is missing and the disk has room for it and as much again."""
        if self.reserve_bytes == 0 or self._conn is None:
            return
        try:
            if self.reserve_path.exists() and self.reserve_path.stat().st_size >= self.reserve_bytes:
                return
            disk = os.statvfs(self.reserve_path.parent)
            if disk.f_bavail * disk.f_frsize < 2 * self.reserve_bytes:
                return
            partial = self.reserve_path.with_name(self.reserve_path.name + ".part")
            with partial.open("wb") as out:
                try:
                    os.posix_fallocate(out.fileno(), 0, self.reserve_bytes)
                except OSError:
                    out.write(bytes(self.reserve_bytes))
            partial.replace(self.reserve_path)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve_path.with_name(self.reserve_path.name + ".part").unlink()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Hold the lock and turn SQLite errors into StoreError naming the file and the action."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {action} failed: {exc}") from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); commits on success, rolls back on any exception."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back by itself (e.g. after SQLITE_FULL)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
