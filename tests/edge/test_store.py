"""The on-device record store: sequence numbers, acknowledgement, size cap, bad files, and kill -9."""

from __future__ import annotations

import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_writer import payload_for, time_for

from forcecast.edge.runtime.store import RecordStore, StorageFullError, StoredRecord, StoreError

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).parents[1] / "store_writer.py"


def step(i: int, pad: int = 0) -> tuple[float, dict]:
    return (float(i), {"i": i, "peak_bw": 1.0 + i / 10, "pad": "x" * pad})


def sql(path: Path, statement: str) -> list[tuple]:
    """Run one statement on its own connection, commit and close (no connection is left open)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(statement).fetchall()


def live_bytes(path: Path) -> int:
    pages, free, size = (sql(path, f"PRAGMA {p}")[0][0] for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


# -- happy path -------------------------------------------------------------------------------------


def test_append_read_ack_and_reopen(tmp_path):
    path = tmp_path / "deep" / "dir" / "store.sqlite"
    with RecordStore(path, device_id="dev-1") as store:
        assert store.append("step", [step(1), step(2), step(3)]) == [1, 2, 3]
        assert store.append("summary", [(5.0, {"mean_bw": 1.1})]) == [1]
        assert store.append("step", [step(4)]) == [4]
        assert store.append("event", []) == []
        assert [r.seq for r in store.records("step")] == [1, 2, 3, 4]
        assert [r.seq for r in store.records("step", after_seq=1, limit=2)] == [2, 3]
        assert store.records("step")[0] == StoredRecord("step", 1, 1.0, {"i": 1, "peak_bw": 1.1, "pad": ""}, False)
        assert store.first_unacked("step") == 1
        assert store.first_unacked("event") is None

        assert store.ack("step", 2) == 2
        assert store.ack("step", 2) == 0
        assert store.ack("step", 1) == 0  # acknowledging less never un-acknowledges
        assert [r.acked for r in store.records("step")] == [True, True, False, False]
        assert store.first_unacked("step") == 3
        assert store.last_seq("step") == 4
        assert store.last_seq("event") == 0

        stats = store.stats()
        assert stats["step"] == {"count": 4, "acked": 2, "unacked": 2, "last_seq": 4}
        assert stats["summary"] == {"count": 1, "acked": 0, "unacked": 1, "last_seq": 1}
        assert stats["event"] == {"count": 0, "acked": 0, "unacked": 0, "last_seq": 0}
        assert stats["dropped_acked"] == stats["dropped_unacked"] == 0
        assert stats["device_id"] == "dev-1"
        assert stats["file_bytes"] > 0

    assert sql(path, "PRAGMA journal_mode") == [("wal",)]
    assert sql(path, "PRAGMA auto_vacuum") == [(2,)]  # incremental
    assert sql(path, "PRAGMA user_version") == [(1,)]

    with RecordStore(path, device_id="dev-1") as store:
        assert [r.payload["i"] for r in store.records("step")] == [1, 2, 3, 4]
        assert store.first_unacked("step") == 3
        assert store.append("step", [step(5)]) == [5]
        assert store.records("summary")[0].payload == {"mean_bw": 1.1}


def test_device_id_is_checked_adopted_or_ignored(tmp_path):
    path = tmp_path / "s.sqlite"
    RecordStore(path).close()
    with RecordStore(path, device_id="dev-1") as store:  # a store made without an id adopts the first one
        assert store.device_id == "dev-1"
    with RecordStore(path) as store:  # an empty id accepts any store
        assert store.device_id == "dev-1"
    with pytest.raises(StoreError, match=r"belongs to device 'dev-1', not 'dev-2'") as err:
        RecordStore(path, device_id="dev-2")
    assert str(path) in str(err.value)


def test_threads_append_and_ack_concurrently(tmp_path):
    store = RecordStore(tmp_path / "s.sqlite")
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                got = store.records("step")
                if got:
                    store.ack("step", got[-1].seq)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(100):
        store.append("step", [step(i)])
    thread.join()
    assert not errors
    assert [r.seq for r in store.records("step")] == list(range(1, 101))
    store.close()


# -- bad input and bad files ------------------------------------------------------------------------


def test_unknown_kind_and_bad_payloads_store_nothing(tmp_path):
    with RecordStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(ValueError, match="unknown record kind 'stride'"):
            store.append("stride", [step(1)])
        with pytest.raises(ValueError, match="unknown record kind"):
            store.records("bogus")
        with pytest.raises(ValueError, match=r"step record 2: payload is not JSON-serialisable"):
            store.append("step", [step(1), step(2), (3.0, {"when": object()})])
        with pytest.raises(ValueError, match=r"step record 1: payload is not JSON-serialisable"):
            store.append("step", [step(1), (2.0, {"peak_bw": math.nan})])
        with pytest.raises(ValueError, match=r"step record 0: payload must be a dict"):
            store.append("step", [(1.0, [1, 2])])
        with pytest.raises(ValueError, match=r"step record 0: device_time_s must be a finite number"):
            store.append("step", [(math.inf, {})])
        assert store.records("step") == []
        assert store.last_seq("step") == 0
        assert store.append("step", [step(1)]) == [1]  # nothing was consumed by the failures
        with pytest.raises(ValueError, match="cannot acknowledge step records up to 5: last seq is 1"):
            store.ack("step", 5)
    with pytest.raises(StoreError, match="store is closed"):
        store.records("step")


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.sqlite"
    path.write_bytes(random.Random(1).randbytes(8192))
    with pytest.raises(StoreError, match="file is not a database") as err:
        RecordStore(path)
    assert str(path) in str(err.value)


def test_other_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.db"
    sql(path, "CREATE TABLE patients (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not a forcecast store \(tables: patients\)") as err:
        RecordStore(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before  # not switched to WAL or otherwise touched


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    RecordStore(path).close()
    sql(path, "PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema 99 is newer"):
        RecordStore(path)


def test_corrupt_store_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    with RecordStore(path) as store:
        for i in range(40):
            store.append("step", [step(i * 10 + j, pad=100) for j in range(10)])
    data = path.read_bytes()
    page = 4096

    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"malformed|corrupt") as err:
        RecordStore(truncated)
    assert str(truncated) in str(err.value)

    scrambled = tmp_path / "scrambled.sqlite"  # page 2 is the pointer map of an auto-vacuum database
    scrambled.write_bytes(data[:page] + random.Random(2).randbytes(page) + data[2 * page :])
    with pytest.raises(StoreError, match="corrupt") as err:
        RecordStore(scrambled)
    assert str(scrambled) in str(err.value)


# -- size cap ---------------------------------------------------------------------------------------


def test_cap_drops_acknowledged_first_then_oldest_unacknowledged(tmp_path):
    path = tmp_path / "s.sqlite"
    cap = 64 * 1024
    store = RecordStore(path, max_bytes=cap)
    store.append("summary", [(0.0, {"old": True, "pad": "s" * 300})])
    store.ack("summary", 1)
    seq = 0
    while store.stats()["dropped_acked"] == 0:
        seq += 1
        store.append("step", [step(seq, pad=300)])
        if seq == 40:
            store.ack("step", 30)
    # the oldest acknowledged record (a summary) went first; unacknowledged ones are all kept
    assert store.records("summary") == []
    assert store.stats()["dropped_unacked"] == 0
    assert store.first_unacked("step") == 31

    while store.stats()["dropped_unacked"] == 0:
        seq += 1
        store.append("step", [step(seq, pad=300)])
    stats = store.stats()
    assert stats["step"]["acked"] == 0  # every acknowledged record went before any unacknowledged one
    assert stats["dropped_acked"] == 31  # 30 steps + 1 summary
    kept = [r.seq for r in store.records("step")]
    assert kept == list(range(kept[0], seq + 1))  # the oldest unacknowledged went first
    assert kept[0] > 31
    assert stats["step"]["count"] + stats["dropped_acked"] + stats["dropped_unacked"] == seq + 1
    assert live_bytes(path) <= cap
    store.close()

    with RecordStore(path, max_bytes=cap) as store:  # seqs are never reused, even after deletion
        assert store.last_seq("step") == seq
        assert store.append("step", [step(0)]) == [seq + 1]
        assert store.stats()["dropped_unacked"] >= stats["dropped_unacked"]


def test_cap_never_deletes_the_batch_just_appended(tmp_path):
    path = tmp_path / "s.sqlite"
    with RecordStore(path, max_bytes=64 * 1024) as store:
        store.append("event", [(0.0, {"boot": 1})])
        seqs = store.append("step", [step(i, pad=400) for i in range(300)])  # far more than the cap
        assert [r.seq for r in store.records("step")] == seqs
        assert store.records("event") == []
        assert store.stats()["dropped_unacked"] == 1


# -- model-based --------------------------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from(RecordStore.KINDS), st.integers(0, 6)),
        st.tuples(st.just("ack"), st.sampled_from(RecordStore.KINDS), st.floats(0, 1)),
        st.tuples(st.just("reopen"), st.just(""), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(ops=OPS)
def test_store_matches_a_simple_model(ops):
    model: dict[str, list[dict]] = {k: [] for k in RecordStore.KINDS}
    acked = dict.fromkeys(RecordStore.KINDS, 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sqlite"
        store = RecordStore(path)
        try:
            for op, kind, arg in ops:
                if op == "append":
                    batch = [(float(len(model[kind]) + j), {"n": len(model[kind]) + j}) for j in range(arg)]
                    first = len(model[kind]) + 1
                    assert store.append(kind, batch) == list(range(first, first + arg))
                    model[kind] += [p for _, p in batch]
                elif op == "ack":
                    upto = int(arg * len(model[kind]))
                    assert store.ack(kind, upto) == max(0, upto - acked[kind])
                    acked[kind] = max(acked[kind], upto)
                else:
                    store.close()
                    store = RecordStore(path)
            for kind in RecordStore.KINDS:
                got = store.records(kind, limit=10_000)
                assert [r.payload for r in got] == model[kind]
                assert [r.acked for r in got] == [i < acked[kind] for i in range(len(model[kind]))]
                assert store.last_seq(kind) == len(model[kind])
                unacked = len(model[kind]) - acked[kind]
                assert store.first_unacked(kind) == (acked[kind] + 1 if unacked else None)
                assert store.stats()[kind]["unacked"] == unacked
        finally:
            store.close()


# -- kill -9 ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_committed_record(tmp_path):
    """24 kill -9s of a writer appending to one store: 18 mid-append, 6 while it starts and opens the store."""
    path = tmp_path / "store.sqlite"
    rng = random.Random(20240611)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rounds, mid_write, last_seq = 24, 0, 0
    for round_ in range(rounds):
        during_open = round_ % 4 == 3
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if during_open else subprocess.PIPE,
            text=True,
            env=env,
        )
        watchdog = threading.Timer(30.0, child.kill)  # a hung child fails the test instead of hanging it
        watchdog.start()
        assert child.stdout is not None
        lines: list[str] = []
        if during_open:
            delay = rng.uniform(0.020, 0.250)  # from spawn: interpreter start, WAL recovery, schema checks
        else:
            delay = rng.uniform(0.020, 0.300)  # from "ready": mid-append
            ready = child.stdout.readline()
            assert ready == "ready\n", child.stderr.read() if child.stderr else ready
        reader = threading.Thread(target=lines.extend, args=(child.stdout,))
        reader.start()
        time.sleep(delay)
        mid_write += child.poll() is None and not during_open
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reader.join()
        watchdog.cancel()
        stderr = child.stderr.read() if child.stderr else ""
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
        assert child.returncode == -signal.SIGKILL, stderr

        complete = [line.split() for line in lines if line.endswith("\n")]
        committed = [int(s) for words in complete if words[0] == "s" for s in words[1:]]
        acked = max((int(words[1]) for words in complete if words[0] == "a"), default=0)
        assert sql(path, "PRAGMA integrity_check") == [("ok",)], f"round {round_}"
        with RecordStore(path, device_id="crash-test") as store:
            stored = store.records("step", limit=1_000_000)
            assert [r.seq for r in stored] == list(range(1, store.last_seq("step") + 1)), f"round {round_}"
            by_seq = {r.seq: r for r in stored}
            missing = [s for s in committed if s not in by_seq]
            assert not missing, f"round {round_}: committed seqs lost: {missing[:10]}"
            for s in committed:
                assert by_seq[s].payload == payload_for(s)
                assert by_seq[s].device_time_s == time_for(s)
            first_unacked = store.first_unacked("step") or store.last_seq("step") + 1
            assert first_unacked > acked, f"round {round_}: acknowledgement up to {acked} lost"
            assert store.last_seq("step") >= last_seq, f"round {round_}: records of earlier rounds lost"
            last_seq = store.last_seq("step")
    assert mid_write == rounds - rounds // 4  # every mid-append kill hit a running writer
    assert last_seq > rounds


# -- identity, damaged records, full disk -----------------------------------------------------------


def test_each_store_has_its_own_persistent_id_and_an_old_store_gets_one(tmp_path):
    path = tmp_path / "s.sqlite"
    with RecordStore(path) as store:
        first = store.store_id
        assert len(first) == 16 and int(first, 16) != 0 and store.store_id_origin == "created"
    with RecordStore(path) as store:
        assert store.store_id == first and store.stats()["store_id"] == first
    with RecordStore(tmp_path / "other.sqlite") as other:
        assert other.store_id != first  # a replaced store is never mistaken for the old one
    sql(path, "DELETE FROM meta WHERE key IN ('store_id', 'store_id_origin', 'quarantined', 'reclaimed_acked')")
    sql(path, "DROP TABLE quarantine")  # what older software wrote
    with RecordStore(path) as store:
        upgraded = store.store_id
        assert upgraded != first and store.store_id_origin == "upgrade"
        assert [r.seq for r in store.records("step")] == []
    with RecordStore(path) as store:
        assert store.store_id == upgraded


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ('\'{"i": 5, "x": NaN}\'', "non-finite number NaN"),
        ("'{\"i\": 5'", "damaged payload"),
        ("'[5]'", "not an object"),
    ],
)
def test_a_damaged_record_is_quarantined_with_an_event_and_readers_go_past_it(tmp_path, damage, reason):
    with RecordStore(tmp_path / "s.sqlite") as store:
        store.append("step", [step(i) for i in range(1, 11)])
        sql(store.path, f"UPDATE records SET payload = {damage} WHERE kind = 'step' AND seq = 5")
        assert [r.seq for r in store.records("step", after_seq=2, limit=4)] == [3, 4, 6, 7]
        assert [r.seq for r in store.records("step")] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
        (event,) = store.records("event")
        assert event.payload["event"] == "record_quarantined"
        assert event.payload["kind"] == "step" and event.payload["seq"] == 5 and reason in event.payload["reason"]
        (kept,) = store.quarantined()
        assert kept["seq"] == 5 and reason in kept["reason"]
        assert store.stats()["quarantined"] == 1 and store.last_seq("step") == 10
        assert store.quarantine("step", 5, "again") is None  # already out of the queue: nothing happens
        assert store.stats()["event"]["count"] == 1


def test_records_of_a_batch_of_damaged_rows_are_all_skipped(tmp_path):
    with RecordStore(tmp_path / "s.sqlite") as store:
        store.append("step", [step(i) for i in range(1, 21)])
        sql(store.path, "UPDATE records SET payload = 'garbage' WHERE kind = 'step' AND seq BETWEEN 2 AND 12")
        assert [r.seq for r in store.records("step", limit=3)] == [1, 13, 14]
        assert store.stats()["quarantined"] == 11


def fill_until_full(store: RecordStore, pad: int = 1000) -> int:
    """Append steps until the store refuses one for lack of space; the last seq stored."""
    for i in range(1, 100_000):
        try:
            store.append("step", [step(i, pad=pad)])
        except StorageFullError:
            return store.last_seq("step")
    raise AssertionError("the store never filled up")


def test_a_full_store_frees_acknowledged_records_and_loses_nothing_else(tmp_path):
    """No mount needed: SQLite's max_page_count makes the database full (SQLITE_FULL), as ENOSPC would."""
    with RecordStore(tmp_path / "s.sqlite", reserve_bytes=0) as store:
        store._connection().execute("PRAGMA max_page_count = 48")
        last = fill_until_full(store)
        assert last > 20 and store.stats()["full_events"] >= 1
        assert [r.seq for r in store.records("step", limit=10_000)] == list(range(1, last + 1))  # none lost
        assert store.last_seq("step") == last  # the refused batch consumed no seq
        with pytest.raises(StorageFullError, match=r"s\.sqlite: appending 1 step record\(s\) failed: the disk is full"):
            store.append("step", [step(0, pad=1000)])
        assert store.ack("step", 20) == 20  # acknowledgements still go through
        appended = fill_until_full(store) - last
        stats = store.stats()
        assert appended >= 10 and stats["reclaimed_acked"] == 20  # only acknowledged records were freed
        kept = [r.seq for r in store.records("step", limit=10_000)]
        assert kept == list(range(21, store.last_seq("step") + 1))
        assert stats["dropped_unacked"] == 0


def test_other_write_errors_are_not_taken_for_a_full_disk(tmp_path):
    with RecordStore(tmp_path / "s.sqlite", reserve_bytes=0) as store:
        store._connection().execute("PRAGMA query_only = 1")
        with pytest.raises(StoreError, match="appending 1 step record") as err:
            store.append("step", [step(1)])
        assert not isinstance(err.value, StorageFullError) and store.stats()["full_events"] == 0


def test_the_reserve_file_is_made_and_given_back_on_a_full_disk(tmp_path):
    with RecordStore(tmp_path / "s.sqlite", reserve_bytes=64 * 1024) as store:
        assert store.reserve_path.stat().st_size == 64 * 1024
        assert store.reclaim() == 0 and not store.reserve_path.exists()  # reclaiming gives the reserve back first
        store.append("step", [step(1)])  # plenty of room here: the reserve is made again
        assert store.reserve_path.stat().st_size == 64 * 1024
    with pytest.raises(ValueError, match="reserve_bytes"):
        RecordStore(tmp_path / "t.sqlite", reserve_bytes=-1)
