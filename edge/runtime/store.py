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

Threading: one connection opened with ``check_same_thread=False`` and guarded by a lock, so the
runtime may append from one thread while the BLE server reads and acknowledges from another. Each
public method is one critical section.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SCHEMA_VERSION = 1
APPLICATION_ID = 0x46434153  # "FCAS" in the SQLite header marks a forcecast store
_CAP_BATCH_ROWS = 32
_CAP_ORDER = (("dropped_acked", "r.seq <= k.acked_upto"), ("dropped_unacked", "r.seq > k.acked_upto"))
_TABLES = {"meta", "kinds", "records"}
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


class StoreError(RuntimeError):
    """The store file is unreadable, corrupt, not a forcecast store or failed a write; the message names the file."""


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

    Raises
    ------
    StoreError
        The file is not SQLite, is corrupt, is another program's SQLite database, was written by a
        newer schema, or belongs to another device.
    """

    KINDS = ("step", "summary", "event")

    def __init__(self, path: Path | str, max_bytes: int = 256 * 1024 * 1024, device_id: str = "") -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
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

    # -- public API -----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        """The device id recorded in the store (empty if none)."""
        with self._guard("reading meta"):
            return self._meta("device_id")

    def append(self, kind: str, records: list[tuple[float, dict[str, Any]]]) -> list[int]:
        """Store a batch of records of one kind in one transaction.

        Parameters
        ----------
        kind
            One of ``KINDS``.
        records
            ``(device_time_s, payload)`` pairs; each payload a JSON-serialisable dict.

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
        self._check_kind(kind)
        rows = []
        for i, (device_time_s, payload) in enumerate(records):
            if not isinstance(payload, dict):
                raise ValueError(f"{kind} record {i}: payload must be a dict, got {type(payload).__name__}")
            try:
                text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{kind} record {i}: payload is not JSON-serialisable: {exc}") from None
            if not isinstance(device_time_s, int | float) or not math.isfinite(device_time_s):
                raise ValueError(f"{kind} record {i}: device_time_s must be a finite number, got {device_time_s!r}")
            rows.append((float(device_time_s), text))
        if not rows:
            return []
        # The cap runs in the same transaction: a returned append has both, a failed one changed nothing.
        with self._guard(f"appending {len(rows)} {kind} record(s)"), self._transaction() as conn:
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

    def records(self, kind: str, after_seq: int = 0, limit: int = 1000) -> list[StoredRecord]:
        """Records of ``kind`` with ``seq > after_seq``, oldest first, at most ``limit``."""
        self._check_kind(kind)
        if limit < 0:
            raise ValueError(f"limit must be ≥ 0, got {limit}")
        with self._guard(f"reading {kind} records"):
            conn = self._connection()
            (acked_upto,) = conn.execute("SELECT acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
            rows = conn.execute(
                "SELECT seq, device_time_s, payload FROM records WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
                (kind, after_seq, limit),
            ).fetchall()
        out = []
        for seq, t, text in rows:
            try:
                payload = json.loads(text)
            except ValueError as exc:
                raise StoreError(f"{self.path}: {kind} record {seq} has a damaged payload: {exc}") from None
            out.append(StoredRecord(kind, seq, t, payload, seq <= acked_upto))
        return out

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
        with self._guard(f"acknowledging {kind} records"), self._transaction() as conn:
            last, acked_upto = conn.execute("SELECT last_seq, acked_upto FROM kinds WHERE kind = ?", (kind,)).fetchone()
            if upto_seq > last:
                raise ValueError(f"{self.path}: cannot acknowledge {kind} records up to {upto_seq}: last seq is {last}")
            if upto_seq <= acked_upto:
                return 0
            (newly,) = conn.execute(
                "SELECT COUNT(*) FROM records WHERE kind = ? AND seq > ? AND seq <= ?", (kind, acked_upto, upto_seq)
            ).fetchone()
            conn.execute("UPDATE kinds SET acked_upto = ? WHERE kind = ?", (upto_seq, kind))
            return newly

    def last_seq(self, kind: str) -> int:
        """Highest sequence number ever assigned to ``kind`` (0 if none), even if the cap deleted it."""
        self._check_kind(kind)
        with self._guard("reading sequence numbers"):
            return self._connection().execute("SELECT last_seq FROM kinds WHERE kind = ?", (kind,)).fetchone()[0]

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
            return conn.execute(query, (kind, acked_upto)).fetchone()[0]

    def stats(self) -> dict[str, Any]:
        """Counts and sizes, ready to serialise.

        Returns
        -------
        dict
            One entry per kind (``{"count", "acked", "unacked", "last_seq"}``), plus ``file_bytes``
            (database and WAL files on disk), ``max_bytes``, ``dropped_acked`` and ``dropped_unacked``
            (records the size cap has deleted, ever) and ``device_id``.
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
            out["device_id"] = self._meta("device_id")
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
        wal_pages = max(16, min(1000, self.max_bytes // page_size // 8))
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
        meta = {"device_id": device_id, "created_utc": created, "dropped_acked": "0", "dropped_unacked": "0"}
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
        return (pages - free) * page_size

    def _meta(self, key: str) -> str:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: store has no {key!r} entry in its meta table")
        return row[0]

    def _check_kind(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(self.KINDS)}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

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
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
