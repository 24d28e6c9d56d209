"""The host log stores each record once and knows where to resume, gaps included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.host_app.store import HostStore, HostStoreError

NOW = "2026-11-21T10:00:00Z"


def test_records_are_stored_once_and_resume_skips_nothing(tmp_path):
    with HostStore(tmp_path / "host.sqlite") as store:
        assert store.resume_point("dev1", "step") == 0
        assert store.add("dev1", "step", 1, {"peak1_bw": 1.1}, NOW)
        assert not store.add("dev1", "step", 1, {"peak1_bw": 9.9}, NOW)  # re-sent: ignored, not overwritten
        store.add("dev1", "step", 2, {}, NOW)
        store.add("dev1", "step", 4, {}, NOW)  # 3 lost in transit
        assert store.resume_point("dev1", "step") == 2
        store.add("dev1", "step", 3, {}, NOW)
        assert store.resume_point("dev1", "step") == 4
        assert store.records("dev1", "step")[0].payload == {"peak1_bw": 1.1}
        assert store.resume_point("dev2", "step") == 0 and store.resume_point("dev1", "summary") == 0
    with HostStore(tmp_path / "host.sqlite") as again:
        assert again.count("dev1", "step") == 4


def test_bad_records_and_foreign_files_are_refused(tmp_path):
    with HostStore(tmp_path / "host.sqlite") as store:
        with pytest.raises(ValueError, match="unknown record kind"):
            store.add("d", "steps", 1, {}, NOW)
        with pytest.raises(ValueError, match="seq must be"):
            store.add("d", "step", 0, {}, NOW)
        with pytest.raises(ValueError):
            store.add("d", "step", 1, {"x": float("nan")}, NOW)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(HostStoreError, match=r"junk\.sqlite"):
        HostStore(junk)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), max_size=60))
def test_resume_point_is_the_end_of_the_contiguous_prefix(tmp_path_factory, seqs):
    with HostStore(tmp_path_factory.mktemp("h") / "h.sqlite") as store:
        for seq in seqs:
            store.add("d", "event", seq, {"seq": seq}, NOW)
        expected = 0
        while expected + 1 in set(seqs):
            expected += 1
        assert store.resume_point("d", "event") == expected
        assert store.count("d", "event") == len(set(seqs))


def test_settled_seqs_let_the_resume_point_pass_records_the_device_no_longer_has(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    assert store.add_many("d", [("step", s, {"s": s}) for s in (1, 2, 7, 8)], "t") == 4
    assert store.add_many("d", [("step", 2, {"s": 2}), ("step", 9, {"s": 9})], "t") == 1  # 2 again: ignored
    assert store.resume_point("d", "step") == 2
    store.settle("d", "step", 6)  # the device's cap deleted 3..6 before they were sent
    assert store.resume_point("d", "step") == 9
    store.settle("d", "step", 4)  # a floor never moves back
    assert store.resume_point("d", "step") == 9
    with pytest.raises(ValueError, match="unknown record kind"):
        store.add_many("d", [("step", 10, {}), ("stride", 11, {})], "t")
    assert store.count("d", "step") == 5  # nothing of a refused batch was stored


def test_a_version_1_store_is_migrated_with_patient_and_time_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE records (device_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, "
        "received_utc TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (device_id, kind, seq)) WITHOUT ROWID;"
        "CREATE TABLE devices (device_id TEXT PRIMARY KEY, address TEXT, info TEXT, clock_offset_ms INTEGER, "
        "last_seen_utc TEXT); PRAGMA user_version = 1;"
    )
    db.execute("INSERT INTO records VALUES ('d', 'step', 1, 't', '{\"patient_id\": \"P9\", \"t_unix\": 100.5}')")
    db.commit()
    db.close()
    store = HostStore(path)
    assert store.patients() == ["P9"]
    assert [(d, t) for d, t, _ in store.patient_records("P9", "step", 100.0, 101.0)] == [("d", 100.5)]
    assert store.resume_point("d", "step") == 1


def test_each_device_store_has_its_own_resume_point_and_the_current_one_is_the_default(tmp_path):
    with HostStore(tmp_path / "h.sqlite") as store:
        store.note_device("d", "AA", {}, 0, NOW, store_id="old")
        assert store.add_many("d", [("step", s, {"s": s}) for s in range(1, 61)], NOW) == 60
        assert store.resume_point("d", "step") == 60 and store.current_store("d") == "old"
        store.note_device("d", "AA", {}, 0, NOW, store_id="new")  # the device's store was replaced
        assert store.resume_point("d", "step") == 0  # fetched from its start, not from 60
        assert store.add_many("d", [("step", s, {"new": s}) for s in range(1, 61)], NOW) == 60  # none ignored
        assert store.resume_point("d", "step") == 60 and store.count("d", "step") == 60
        assert store.count("d", "step", store_id="old") == 60 and store.resume_point("d", "step", "old") == 60
        assert store.records("d", "step")[0].payload == {"new": 1} and store.records("d", "step")[0].store_id == "new"
        store.note_device("d", "AA", {}, 5, NOW)  # no store id given: the current one stays
        assert store.devices()[0]["store_id"] == "new" and store.devices()[0]["clock_offset_ms"] == 5


def test_a_gap_the_device_reported_lets_the_resume_point_pass_it_and_nothing_else(tmp_path):
    with HostStore(tmp_path / "h.sqlite") as store:
        store.add_many("d", [("step", s, {}) for s in range(1, 101) if s not in (50, 90)], NOW)
        assert store.resume_point("d", "step") == 49
        assert store.mark_gap("d", "step", 90, "damaged payload: NaN", NOW)
        assert not store.mark_gap("d", "step", 90, "again", NOW)
        assert store.resume_point("d", "step") == 49  # 50 is still missing: asked for again
        store.add("d", "step", 50, {}, NOW)
        assert store.resume_point("d", "step") == 100
        assert store.gaps("d") == [{"kind": "step", "seq": 90, "reason": "damaged payload: NaN", "received_utc": NOW}]
        store.mark_gap("d", "event", 1, "x", NOW)
        assert store.resume_point("d", "event") == 1
        with pytest.raises(ValueError, match="unknown record kind"):
            store.mark_gap("d", "stride", 1, "x", NOW)
        with pytest.raises(ValueError, match="seq must be"):
            store.mark_gap("d", "step", 0, "x", NOW)


def test_a_version_2_store_is_migrated_to_store_ids_keeping_records_and_floors(tmp_path):
    import sqlite3

    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE records (device_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, "
        "received_utc TEXT NOT NULL, payload TEXT NOT NULL, patient_id TEXT, t_host REAL, brief TEXT, waveform BLOB, "
        "PRIMARY KEY (device_id, kind, seq)) WITHOUT ROWID;"
        "CREATE INDEX records_by_patient_time ON records (patient_id, kind, t_host);"
        "CREATE TABLE floors (device_id TEXT NOT NULL, kind TEXT NOT NULL, upto INTEGER NOT NULL, "
        "PRIMARY KEY (device_id, kind)) WITHOUT ROWID;"
        "CREATE TABLE devices (device_id TEXT PRIMARY KEY, address TEXT, info TEXT, clock_offset_ms INTEGER, "
        "last_seen_utc TEXT); PRAGMA user_version = 2;"
        "INSERT INTO records VALUES ('d', 'step', 7, 't', '{\"patient_id\": \"P1\"}', 'P1', 100.0, '{}', NULL);"
        "INSERT INTO floors VALUES ('d', 'step', 6);"
        "INSERT INTO devices VALUES ('d', 'AA', '{}', 0, 't');"
    )
    db.commit()
    db.close()
    with HostStore(path) as store:
        assert store.resume_point("d", "step") == 7 and store.current_store("d") == ""
        assert [(d, t) for d, t, _ in store.patient_records("P1", "step", 99.0, 101.0)] == [("d", 100.0)]
        assert store.adopt_legacy("d", "abc") == 1  # the firmware upgrade gave the same store an id
        assert store.resume_point("d", "step", "abc") == 7 and store.resume_point("d", "step", "") == 0
        assert store.adopt_legacy("d", "abc") == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (4,)  # migrated to the newest schema (4: + clinic marks)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
