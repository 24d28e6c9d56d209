"""Keep the runtime going while its storage fails (a full disk, an I/O error): hold records, retry, report.

The pipeline commits every record through a :class:`StorageGuard`. While the store's writes fail
(:class:`~forcecast.edge.runtime.store.StoreError`, e.g.
:class:`~forcecast.edge.runtime.store.StorageFullError` after the
store has already freed what the host acknowledged), records are held in memory as JSON text (a step
with its waveform is about 2.5 kB, so the default bound of 5000 records is about 13 MB), in order, up to
a bound (the oldest go first beyond it, counted), and the write is tried again every ``retry_s``; the
pipeline goes on detecting steps and cueing meanwhile. When a write succeeds again, the held records
are committed first and :meth:`StorageGuard.take_outage` hands the pipeline one summary to record as
a ``storage_full`` (or ``storage_error``) event: when it started and ended, how many records were
held and committed late, how many were lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from forcecast.edge.records import EventRecord, EventType, Record, dumps, loads
from forcecast.edge.runtime.store import StorageFullError, StoreError

Entry = tuple[float, Record | dict[str, Any]]
"""``(device_time_s, record)``: a typed record, or a payload dict stored as it is."""
FLUSH_BATCH = 16
"""Held records committed per transaction when storage is back (small: a transaction's WAL must fit the room)."""


class Sink(Protocol):
    """Where records are committed (:class:`~forcecast.edge.runtime.store.RecordStore`)."""

    def append(self, kind: str, records: Sequence[Entry]) -> list[int]:
        """Commit records of one kind; their sequence numbers."""
        ...


@dataclass
class Outage:
    """One stretch of failing storage, as the ``storage_full`` / ``storage_error`` event reports it."""

    full: bool
    start_s: float
    end_s: float
    detail: str
    held: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    attempts: int = 0

    def event(self) -> EventRecord:
        """The ``storage_full`` (or ``storage_error``) event record."""
        return EventRecord(
            event=EventType.STORAGE_FULL if self.full else EventType.STORAGE_ERROR,
            start_s=round(self.start_s, 3),
            end_s=round(self.end_s, 3),
            held=self.held,
            lost=dict(self.lost),
            attempts=self.attempts,
            detail=self.detail[:300],
        )

    def payload(self) -> dict[str, Any]:
        """The event's payload (its record's encoding)."""
        return self.event().to_payload()


class StorageGuard:
    """Commit records to ``sink``; never raise for failing storage.

    Parameters
    ----------
    sink
        The record store.
    retry_s
        Least device time (the records' clock, which the pipeline keeps increasing) between two tries
        while storage fails.
    max_held
        Records held in memory at most; beyond it the oldest held record is dropped (and counted).
    """

    def __init__(
        self,
        sink: Sink,
        retry_s: float = 2.0,
        max_held: int = 5000,
    ) -> None:
        if retry_s < 0 or max_held < 1:
            raise ValueError(f"retry_s must be ≥ 0 and max_held ≥ 1, got {retry_s} and {max_held}")
        self.sink = sink
        self.retry_s = retry_s
        self.max_held = max_held
        self._now = float("-inf")
        self._held: deque[tuple[str, float, str]] = deque()
        self._outage: Outage | None = None
        self._recovered: Outage | None = None
        self._next_try = float("-inf")
        self.outages = 0
        self.lost_total = 0

    @property
    def failing(self) -> bool:
        """Whether storage is failing now (records are being held)."""
        return self._outage is not None

    @property
    def held(self) -> int:
        """Records waiting in memory for storage to come back."""
        return len(self._held)

    def append(self, kind: str, records: Sequence[Entry]) -> list[int | None]:
        """Commit ``records`` of ``kind`` (or hold them); their seqs, None for each record held.

        Raises
        ------
        ValueError
            For records the sink refuses as such (unknown kind, a payload that is not finite JSON): a
            bug, not storage. Nothing of the batch is held then.
        """
        if not records:
            return []
        self._now = max(self._now, records[0][0])
        waiting = self._outage is not None and self._now < self._next_try
        if waiting or (self._outage is not None and not self._flush(records[0][0])):
            self._hold(kind, records)
            return [None] * len(records)
        try:
            seqs: list[int | None] = list(self.sink.append(kind, records))
        except StoreError as exc:
            self._failed(exc, records[0][0])
            self._hold(kind, records)
            return [None] * len(records)
        return seqs

    def retry_now(self) -> None:
        """Let the next append try storage again at once (at the end of a run: a last chance to commit)."""
        self._next_try = float("-inf")

    def take_outage(self) -> Outage | None:
        """The outage that has just ended (once), for the pipeline to record as an event."""
        outage, self._recovered = self._recovered, None
        return outage

    def stats(self) -> dict[str, Any]:
        """JSON-ready counters for the run report."""
        return {
            "failing": self.failing,
            "held": self.held,
            "outages": self.outages,
            "lost": self.lost_total,
            "detail": self._outage.detail[:300] if self._outage is not None else None,
        }

    def _failed(self, exc: StoreError, at_s: float) -> None:
        if self._outage is None:
            self._outage = Outage(isinstance(exc, StorageFullError), at_s, at_s, str(exc))
            self.outages += 1
        self._outage.full = self._outage.full or isinstance(exc, StorageFullError)
        self._outage.attempts += 1
        self._next_try = self._now + self.retry_s

    def _hold(self, kind: str, records: Sequence[Entry]) -> None:
        assert self._outage is not None
        texts = []
        for i, (_, record) in enumerate(records):
            try:
                texts.append(dumps(record.to_payload() if isinstance(record, Record) else record))
            except ValueError as exc:
                raise ValueError(f"{kind} record {i}: payload is not JSON-serialisable: {exc}") from None
        for (t, _), text in zip(records, texts, strict=True):
            self._held.append((kind, t, text))
            self._outage.end_s = max(self._outage.end_s, t)
        while len(self._held) > self.max_held:
            lost_kind, _, _ = self._held.popleft()
            self._outage.lost[lost_kind] = self._outage.lost.get(lost_kind, 0) + 1
            self.lost_total += 1

    def _flush(self, now_s: float) -> bool:
        """Commit what is held, oldest first (per kind, in batches); True once nothing is held.

        ``now_s`` is the device time of the records that found storage back: the outage's end.
        """
        assert self._outage is not None
        while self._held:
            kind = self._held[0][0]
            batch: list[Entry] = []
            for held_kind, t, text in self._held:
                if held_kind == kind:
                    batch.append((t, loads(text)))
                    if len(batch) == FLUSH_BATCH:
                        break
            try:
                self.sink.append(kind, batch)
            except StoreError as exc:
                self._failed(exc, batch[0][0])
                return False
            self._remove(kind, len(batch))
            self._outage.held += len(batch)
        self._outage.end_s = max(self._outage.end_s, now_s)
        self._recovered, self._outage = self._outage, None
        return True

    def _remove(self, kind: str, count: int) -> None:
        """Drop the first ``count`` held records of ``kind`` (those just committed), keeping the rest in order."""
        kept: deque[tuple[str, float, str]] = deque()
        for item in self._held:
            if item[0] == kind and count > 0:
                count -= 1
            else:
                kept.append(item)
        self._held = kept
