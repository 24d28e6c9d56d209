"""Typed records: one encoding, round trips, old (v-less) payloads, newer versions and malformed payloads refused."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_fixture import reassembled_wire_v1

from forcecast.edge.records import (
    KIND_LABELS,
    QUALITY_EVENTS,
    REASONS,
    RECORD_TYPES,
    EventRecord,
    EventType,
    RecordError,
    RecordKind,
    StepRecord,
    SummaryRecord,
    decode,
    decode_text,
    dumps,
    encode_text,
    loads,
    version_of,
)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "records"
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe = st.none() | finite
names = st.text(min_size=0, max_size=12)
legs = st.sampled_from(["l", "r"])
per_leg_int = st.dictionaries(legs, st.integers(0, 10**6), max_size=2)
curve = st.lists(finite, min_size=0, max_size=5).map(tuple)
extra_values = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | finite | names


def extras(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(names.filter(lambda k: k not in reserved), extra_values, max_size=3)


def _reserved(cls: type[StepRecord | SummaryRecord | EventRecord]) -> set[str]:
    return {"v", *(f.key for f in cls._FIELDS)}


steps = st.builds(
    StepRecord,
    t_unix=maybe,
    patient_id=st.none() | names,
    leg=st.none() | legs,
    ic_s=maybe,
    peak1_bw=maybe,
    peak2_bw=maybe,
    loading_rate_bw_s=maybe,
    impulse_v_bws=maybe,
    peak_ml_n=maybe,
    waveform_bw=st.none() | st.tuples(curve, curve, curve),
    asymmetry_peak1=maybe,
    flags=st.lists(names, max_size=3).map(tuple),
    calibrated=st.none() | st.booleans(),
    model_version=st.none() | names,
    extra=extras(_reserved(StepRecord)),
)
summaries = st.builds(
    SummaryRecord,
    t_unix=maybe,
    patient_id=st.none() | names,
    start_s=maybe,
    end_s=maybe,
    steps=st.none() | per_leg_int,
    grf_samples=st.none() | per_leg_int,
    mean_v_bw=st.none() | st.dictionaries(legs, maybe, max_size=2),
    max_v_bw=st.none() | st.dictionaries(legs, maybe, max_size=2),
    quality_events=st.none() | st.dictionaries(st.sampled_from([str(e) for e in QUALITY_EVENTS]), st.integers(0, 99)),
    cues=st.none() | st.integers(0, 10**6),
    extra=extras(_reserved(SummaryRecord)),
)
events = st.builds(
    EventRecord,
    event=st.sampled_from(list(EventType)),
    t_unix=maybe,
    detail=st.none() | names,
    start_s=maybe,
    samples=st.none() | st.integers(0, 10**6),
    leg=st.none() | legs,
    force_bw=maybe,
    from_version=st.none() | names,
    to_version=st.none() | names,
    record_kind=st.none() | st.sampled_from(KIND_LABELS),
    seq=st.none() | st.integers(1, 2**32 - 1),
    lost=st.none() | st.dictionaries(st.sampled_from(KIND_LABELS), st.integers(0, 99)),
    profile=st.none()
    | st.dictionaries(names, st.none() | names | st.integers(0, 2**32 - 1) | st.floats(-1e6, 1e6), max_size=6),
    extra=extras(_reserved(EventRecord)),
)


@settings(max_examples=60, deadline=None)
@given(st.one_of(steps, summaries, events))
def test_every_record_type_round_trips_through_its_payload_and_its_json_text(record):
    payload = record.to_payload()
    assert payload["v"] == type(record).SCHEMA_VERSION == (2 if isinstance(record, EventRecord) else 1)
    assert decode(record.KIND, payload) == record
    assert decode(record.KIND.label, json.loads(json.dumps(payload))) == record
    assert decode_text(int(record.KIND), encode_text(record)) == record


def test_the_kind_is_one_enum_with_the_wire_values_and_the_store_labels():
    assert [(int(k), k.label) for k in RecordKind] == [(1, "step"), (2, "summary"), (3, "event")]
    assert KIND_LABELS == ("step", "summary", "event")
    assert RecordKind.parse("event") is RecordKind.parse(3) is RecordKind.parse(RecordKind.EVENT) is RecordKind.EVENT
    for bad in ("steps", 0, 4, True, None, 1.0):
        with pytest.raises(RecordError, match="unknown record kind") as caught:
            RecordKind.parse(bad)
        assert caught.value.reason == "unknown_kind"


def test_a_payload_without_a_version_is_version_1_and_reads_as_before():
    old = {"leg": "r", "peak1_bw": 1.12, "flags": ["dropout"], "asymmetry_peak1": None, "t_unix": 100.5, "i": 7}
    step = decode("step", old)
    assert isinstance(step, StepRecord) and step.leg == "r" and step.peak1_bw == 1.12 and step.flags == ("dropout",)
    assert step.asymmetry_peak1 is None and step.peak2_bw is None and step.extra == {"i": 7}
    assert version_of("step", old) == 1
    again = step.to_payload()
    assert again["v"] == 1 and {k: again[k] for k in old} == old  # nothing lost, the unknown key kept
    quarantined = decode("event", {"event": "record_quarantined", "kind": "step", "seq": 5, "reason": "damaged"})
    assert isinstance(quarantined, EventRecord) and quarantined.event is EventType.RECORD_QUARANTINED
    assert (quarantined.record_kind, quarantined.seq, quarantined.reason) == ("step", 5, "damaged")
    switched = decode("event", {"event": "model_switched", "from": None, "to": "m2"})
    assert switched.from_version is None and switched.to_version == "m2"
    assert switched.to_payload() == {"v": 2, "event": "model_switched", "to": "m2"}  # written back as the newest


def test_event_version_2_added_profile_applied_and_still_reads_every_version_1_event():
    profile = {"version": 3, "feedback_limit_bw": 1.2, "body_mass_kg": 72.5, "height_m": 1.75, "hka_deg": None}
    applied = decode("event", {"v": 2, "event": "profile_applied", "profile": profile, "detail": "limit 1.2 BW"})
    assert isinstance(applied, EventRecord) and applied.event is EventType.PROFILE_APPLIED
    assert applied.profile == profile and applied.to_payload()["profile"] == profile
    for old in ({"v": 1, "event": "cue", "limit_bw": 1.1}, {"event": "dropout", "samples": 3}):
        event = decode("event", old)
        assert isinstance(event, EventRecord) and event.profile is None and event.extra == {}
    with pytest.raises(RecordError, match="'profile'") as caught:
        decode("event", {"v": 2, "event": "profile_applied", "profile": [1, 2]})
    assert caught.value.reason == "bad_field"
    with pytest.raises(RecordError, match=r"'profile'\.version") as caught:
        decode("event", {"v": 2, "event": "profile_applied", "profile": {"version": True}})
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize("kind", KIND_LABELS)
def test_a_newer_version_is_refused_with_a_reason_that_says_so(kind):
    newer = RECORD_TYPES[RecordKind.parse(kind)].SCHEMA_VERSION + 1
    payload = {"v": newer, "event": "cue"}
    message = f"{kind} record: version {newer} is newer than this software reads"
    with pytest.raises(RecordError, match=message) as caught:
        decode(kind, payload)
    assert caught.value.reason == "newer_version"
    with pytest.raises(RecordError) as caught:
        version_of(kind, payload)
    assert caught.value.reason == "newer_version"


@pytest.mark.parametrize(
    ("kind", "payload", "reason", "where"),
    [
        ("step", {"v": 0}, "bad_version", "version 0"),
        ("step", {"v": "1"}, "bad_version", "version '1'"),
        ("step", {"v": True}, "bad_version", "version True"),
        ("step", [1, 2], "not_object", "list"),
        ("step", {"leg": "left"}, "bad_field", "'leg'"),
        ("step", {"peak1_bw": "1.2"}, "bad_field", "'peak1_bw'"),
        ("step", {"peak1_bw": True}, "bad_field", "'peak1_bw'"),
        ("step", {"peak1_bw": math.inf}, "not_finite", "'peak1_bw'"),
        ("step", {"flags": "dropout"}, "bad_field", "'flags'"),
        ("step", {"flags": [1]}, "bad_field", "'flags'[0]"),
        ("step", {"waveform_bw": {"v": [1.0]}}, "bad_field", "'waveform_bw'"),
        ("step", {"waveform_bw": {"v": [1], "ap": [2], "ml": ["x"]}}, "bad_field", "'waveform_bw'.ml[0]"),
        ("step", {"calibrated": 1}, "bad_field", "'calibrated'"),
        ("summary", {"steps": {"l": 1.5}}, "bad_field", "'steps'.l"),
        ("summary", {"mean_v_bw": [1.0]}, "bad_field", "'mean_v_bw'"),
        ("summary", {"cues": -0.5}, "bad_field", "'cues'"),
        ("event", {}, "missing_field", "'event' is missing"),
        ("event", {"event": None}, "missing_field", "'event' is missing"),
        ("event", {"event": "party"}, "unknown_event", "unknown event type 'party'"),
        ("event", {"event": 3}, "bad_field", "'event'"),
        ("event", {"event": "record_quarantined", "seq": "5"}, "bad_field", "'seq'"),
        ("stride", {}, "unknown_kind", "'stride'"),
    ],
)
def test_a_malformed_payload_raises_one_error_type_naming_the_kind_and_field(kind, payload, reason, where):
    with pytest.raises(RecordError) as caught:
        decode(kind, payload)
    assert caught.value.reason == reason and reason in REASONS
    assert where in str(caught.value)
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_loads_accepts_only_json_objects_of_finite_numbers_and_never_raises_anything_else(text):
    try:
        payload = loads(text)
    except RecordError as exc:
        assert exc.reason in {"not_json", "not_finite", "not_object"}
    else:
        assert isinstance(payload, dict)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(KIND_LABELS), st.dictionaries(names, extra_values | st.lists(extra_values), max_size=4))
def test_decoding_any_json_object_gives_a_record_or_a_record_error(kind, payload):
    try:
        record = decode(kind, payload)
    except RecordError as exc:
        assert exc.reason in REASONS
    else:
        assert decode(kind, record.to_payload()) == record


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"v": NaN}', "not_finite"),
        (b'{"peak": -Infinity}', "not_finite"),
        (b'{"peak": 1e999}', "not_finite"),
        (b"[1]", "not_object"),
        (b"{", "not_json"),
        (b"\xff\xfe", "not_json"),
        ("[" * 100_000 + "]" * 100_000, "not_json"),
    ],
)
def test_loads_names_what_is_wrong(text, reason):
    with pytest.raises(RecordError) as caught:
        loads(text)
    assert caught.value.reason == reason


def test_dumps_refuses_what_json_cannot_hold():
    assert dumps({"a": 1.5, "b": [None, True]}) == '{"a":1.5,"b":[null,true]}'
    for payload, reason in (({"a": math.nan}, "not_finite"), ({"a": object()}, "not_json"), ([1], "not_object")):
        with pytest.raises(RecordError) as caught:
            dumps(payload)
        assert caught.value.reason == reason


def test_an_extra_key_may_not_shadow_a_field_and_an_unknown_event_type_is_refused_when_built():
    with pytest.raises(RecordError, match="extra keys"):
        StepRecord(leg="l", extra={"peak1_bw": 2.0})
    with pytest.raises(RecordError, match="extra keys"):
        EventRecord(event=EventType.CUE, extra={"v": 9})
    assert EventRecord(event="dropout").event is EventType.DROPOUT
    with pytest.raises(RecordError) as caught:
        EventRecord(event="party")
    assert caught.value.reason == "unknown_event"


def test_derived_values():
    assert StepRecord(peak1_bw=1.1, peak2_bw=1.3, peak1_n=700.0).peak_bw == 1.3
    assert StepRecord(peak1_n=700.0).peak_n == 700.0 and StepRecord().peak_bw is None
    assert SummaryRecord(start_s=2.0, end_s=12.5).duration_s == 10.5 and SummaryRecord(end_s=1.0).duration_s is None


def test_a_device_store_written_before_records_had_versions_is_read_as_typed_records(tmp_path):
    from forcecast.edge.runtime.store import RecordStore

    source = sqlite3.connect(FIXTURES / "device_store_v1.sqlite")
    assert all("v" not in json.loads(text) for (text,) in source.execute("SELECT payload FROM records"))
    copy = tmp_path / "old.sqlite"  # opening a store may upgrade it in place: read a copy
    source.execute(f"VACUUM INTO '{copy}'")
    source.close()
    with RecordStore(copy, reserve_bytes=0) as store:
        step = store.records("step")[0].record()
        assert isinstance(step, StepRecord) and step.leg == "l" and step.patient_id == "P1"
        assert step.waveform_bw is not None and [len(c) for c in step.waveform_bw] == [101, 101, 101]
        assert step.flags == ("dropout",) and step.asymmetry_peak1 is None and step.peak1_n is not None
        summary = store.records("summary")[0].record()
        assert isinstance(summary, SummaryRecord) and summary.mean_v_bw == {"l": 0.51, "r": None}
        assert summary.quality_events == {"nan": 0, "dropout": 1, "clock_jump": 0, "saturation": 0}
        got = [r.record() for r in store.records("event")]
        assert [e.event for e in got] == [
            EventType.CUE,
            EventType.DROPOUT,
            EventType.CALIBRATION_SKIPPED,
            EventType.MODEL_SWITCHED,
            EventType.MODEL_CONFIRMED,
            EventType.STORAGE_FULL,
            EventType.RECORD_QUARANTINED,
        ]
        assert got[0].force_bw == 1.21 and got[3].from_version == "m-2025" and got[5].lost == {"step": 1}
        assert (got[6].record_kind, got[6].seq) == ("step", 2)


def test_old_wire_notifications_are_reassembled_and_decoded():
    records, rejected = reassembled_wire_v1()
    decoded = []
    for entry, kind, seq, payload in records:
        assert "v" not in payload and (kind.label, seq) == (entry["kind"], entry["seq"])
        decoded.append(decode(kind, payload))
    assert rejected == {}
    assert sorted(type(r).__name__ for r in decoded) == ["EventRecord"] * 7 + ["StepRecord", "SummaryRecord"]
