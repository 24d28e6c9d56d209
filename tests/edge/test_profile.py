"""The patient profile: its two encodings, their refusals, and the device's atomic ``profile.json``."""

from __future__ import annotations

import json
import logging
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.ble.profile import ProfileHandler
from forcecast.edge.link import DeviceLink
from forcecast.edge.profile import (
    HKA_UNKNOWN,
    JSON_KEYS,
    MAX_VERSION,
    REASONS,
    SIDES,
    WIRE,
    WIRE_BYTES,
    PatientProfile,
    ProfileError,
    ProfileFile,
    StaleProfileError,
    decode_profile,
    encode_profile,
    profile_path,
)
from forcecast.edge.protocol import (
    MIN_MTU,
    PROFILE_REPLY,
    Opcode,
    Status,
    decode_reply,
    decode_request,
    encode_request,
    payload_size,
    request_arguments,
)
from forcecast.edge.records import EventType
from forcecast.edge.runtime.config import PatientConfig
from forcecast.edge.runtime.feedback import FeedbackGate
from forcecast.edge.runtime.patient_state import PatientState, start_patient
from forcecast.edge.runtime.store import RecordStore

versions = st.integers(1, MAX_VERSION)
profiles = st.builds(
    PatientProfile,
    version=versions,
    feedback_limit_bw=st.none() | st.floats(0.001, 5.0),
    body_mass_kg=st.floats(20.0, 300.0),
    height_m=st.floats(0.9, 2.5),
    hka_deg=st.none() | st.floats(-30.0, 30.0),
    affected_side=st.sampled_from(SIDES),
)
RESOLUTION = {"feedback_limit_bw": 0.0005, "body_mass_kg": 0.005, "height_m": 0.0005, "hka_deg": 0.005}


def sample(version: int = 3, **changes: object) -> PatientProfile:
    values: dict[str, object] = {
        "version": version,
        "feedback_limit_bw": 1.25,
        "body_mass_kg": 72.5,
        "height_m": 1.76,
        "hka_deg": 4.5,
        "affected_side": "left",
    }
    return PatientProfile(**(values | changes))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(profiles)
def test_the_wire_form_round_trips_within_its_resolution_and_is_stable(profile):
    wire = encode_profile(profile)
    assert len(wire) == WIRE_BYTES == 13
    back = decode_profile(wire)
    assert (back.version, back.affected_side) == (profile.version, profile.affected_side)
    for name, half_step in RESOLUTION.items():
        sent, got = getattr(profile, name), getattr(back, name)
        assert (sent is None) == (got is None), name
        if sent is not None:
            assert abs(sent - got) <= half_step + 1e-12, name
    assert encode_profile(back) == wire  # the device's copy encodes to exactly what it received
    assert PatientProfile.from_json(json.loads(json.dumps(back.to_json()))) == back


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_garbage_on_the_wire_is_refused_with_a_reason_never_another_exception(data):
    try:
        profile = decode_profile(data)
    except ProfileError as exc:
        assert exc.reason in REASONS and str(exc)
        return
    assert len(data) == WIRE_BYTES and encode_profile(profile) == data


@pytest.mark.parametrize(
    ("fields", "reason", "names"),
    [
        ((0, 1200, 7250, 1760, 450, 1), "out_of_range", "version: 0 is outside"),
        ((3, 5001, 7250, 1760, 450, 1), "out_of_range", "feedback_limit_bw: 5.001 is out of range (allowed: 0..5"),
        ((3, 1200, 1999, 1760, 450, 1), "out_of_range", "body_mass_kg: 19.99 is out of range (allowed: 20..300 kg)"),
        ((3, 1200, 7250, 2501, 450, 1), "out_of_range", "height_m: 2.501 is out of range"),
        ((3, 1200, 7250, 1760, -3001, 1), "out_of_range", "hka_deg: -30.01 is out of range"),
        ((3, 1200, 7250, 1760, 450, 3), "bad_field", "affected_side byte 3"),
    ],
)
def test_a_value_outside_the_device_configs_range_is_refused_by_name(fields, reason, names):
    with pytest.raises(ProfileError) as caught:
        decode_profile(WIRE.pack(*fields))
    assert caught.value.reason == reason and names in str(caught.value)


def test_the_ranges_are_the_device_configs_own():
    # One range per value, kept in PatientConfig: a value the config refuses, the profile refuses too.
    for name, config_name, value in [
        ("body_mass_kg", "body_mass_kg", 301.0),
        ("height_m", "height_m", 0.89),
        ("hka_deg", "hka_deg", 30.5),
        ("feedback_limit_bw", "peak_limit_bw", 5.5),
    ]:
        with pytest.raises(ValueError, match=config_name):
            PatientConfig(**{config_name: value})
        with pytest.raises(ProfileError, match=name):
            sample(**{name: value})


def test_special_values_on_the_wire():
    profile = sample(feedback_limit_bw=None, hka_deg=None, affected_side="none")
    version, limit, _mass, _height, hka, side = WIRE.unpack(encode_profile(profile))
    assert (version, limit, hka, side) == (3, 0, HKA_UNKNOWN, 0)
    assert decode_profile(encode_profile(profile)) == profile
    assert sample(feedback_limit_bw=0.0).feedback_limit_bw is None  # 0 = no cue, as in device.toml
    with pytest.raises(ProfileError, match="below the wire's resolution") as caught:
        encode_profile(sample(feedback_limit_bw=0.0002))
    assert caught.value.reason == "out_of_range"


@pytest.mark.parametrize(
    ("changes", "reason", "names"),
    [
        ({"version": 0}, "out_of_range", "version"),
        ({"version": MAX_VERSION + 1}, "out_of_range", "version"),
        ({"version": True}, "bad_field", "version"),
        ({"version": 3.0}, "bad_field", "version"),
        ({"body_mass_kg": math.nan}, "not_finite", "body_mass_kg"),
        ({"height_m": math.inf}, "not_finite", "height_m"),
        ({"feedback_limit_bw": -0.5}, "out_of_range", "feedback_limit_bw"),
        ({"hka_deg": "4.5"}, "bad_field", "hka_deg"),
        ({"affected_side": "both"}, "bad_field", "affected_side"),
    ],
)
def test_the_constructor_refuses_bad_values_by_name(changes, reason, names):
    with pytest.raises(ProfileError, match=names) as caught:
        sample(**changes)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("data", "reason", "names"),
    [
        ([1, 2], "bad_field", "expected a JSON object"),
        ({k: v for k, v in sample().to_json().items() if k != "height_m"}, "missing_key", "height_m"),
        (sample().to_json() | {"patient_id": "P9"}, "unknown_key", "patient_id"),
        (sample().to_json() | {"affected_side": 1}, "bad_field", "affected_side"),
        (sample().to_json() | {"body_mass_kg": None}, "bad_field", "body_mass_kg"),
    ],
)
def test_the_json_form_is_strict(data, reason, names):
    with pytest.raises(ProfileError, match=names) as caught:
        PatientProfile.from_json(data, "profile.json")
    assert caught.value.reason == reason and "profile.json" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*JSON_KEYS, "x"]), st.none() | st.integers() | st.floats() | st.text()))
def test_garbage_json_forms_are_refused_with_a_reason(data):
    try:
        profile = PatientProfile.from_json(data)
    except ProfileError as exc:
        assert exc.reason in REASONS
        return
    assert profile.to_json() == {k: (None if k == "feedback_limit_bw" and v == 0 else v) for k, v in data.items()}


def test_the_request_fits_one_write_at_the_minimum_mtu_and_decodes_to_the_profile():
    wire = encode_profile(sample())
    request = encode_request(Opcode.PROFILE, 9, wire)
    assert len(request) <= payload_size(MIN_MTU)
    decoded = decode_request(request)
    assert decoded.opcode is Opcode.PROFILE and decode_profile(request_arguments(decoded)[0]) == decode_profile(wire)


def test_applying_a_profile_changes_the_limit_and_static_features_but_not_whose_device_it_is():
    patient = PatientConfig(patient_id="P042", body_mass_kg=80.0, height_m=1.8, peak_limit_bw=0.0)
    applied = sample().apply_to(patient)
    assert applied.patient_id == "P042"
    assert (applied.peak_limit_bw, applied.body_mass_kg, applied.height_m) == (1.25, 72.5, 1.76)
    assert (applied.hka_deg, applied.affected_side) == (4.5, "left")
    assert sample(feedback_limit_bw=None).apply_to(patient).peak_limit_bw == 0.0


def test_a_stale_profile_error_names_both_versions():
    error = StaleProfileError(3, 5)
    assert error.reason == "profile_stale" and (error.version, error.current_version) == (3, 5)
    assert "version 3" in str(error) and "version 5" in str(error)


# ---------------------------------------------------------------- profile.json on the device


def test_the_profile_file_round_trips_and_is_absent_until_written(tmp_path):
    stored = ProfileFile(profile_path(tmp_path / "state"))
    assert stored.path == tmp_path / "state" / "profile.json" and stored.load() is None
    stored.save(sample(version=4))
    assert stored.load() == sample(version=4)
    assert json.loads(stored.path.read_text()) == sample(version=4).to_json()
    assert not stored.temporary.exists()


def test_a_crash_between_write_and_rename_leaves_the_old_profile(tmp_path, monkeypatch):
    stored = ProfileFile(tmp_path / "profile.json")
    stored.save(sample(version=4))

    class PowerCut(BaseException):
        pass

    def cut(self: Path, target: Path) -> Path:
        raise PowerCut

    # The new profile is written and fsynced, then the power goes before the rename.
    monkeypatch.setattr(Path, "replace", cut)
    with pytest.raises(PowerCut):
        stored.save(sample(version=5, feedback_limit_bw=2.0))
    monkeypatch.undo()
    assert stored.load() == sample(version=4)
    # A real power cut leaves the temporary file behind, half written: it is never read, and the next save
    # replaces it.
    stored.temporary.write_text('{"version": 5, "feedback_limi')
    assert stored.load() == sample(version=4)
    stored.save(sample(version=6))
    assert stored.load() == sample(version=6) and not stored.temporary.exists()


def test_a_damaged_profile_file_is_refused_by_name(tmp_path):
    stored = ProfileFile(tmp_path / "profile.json")
    for text, reason in [
        ("{not json", "unreadable"),
        ('{"version": NaN}', "unreadable"),
        (json.dumps(sample().to_json() | {"height_m": 9.0}), "out_of_range"),
    ]:
        stored.path.write_text(text)
        with pytest.raises(ProfileError) as caught:
            stored.load()
        assert caught.value.reason == reason and str(stored.path) in str(caught.value)
    stored.path.write_bytes(b"\xff\xfe")
    with pytest.raises(ProfileError, match="cannot be read"):
        stored.load()


def test_a_write_that_fails_keeps_the_old_profile_and_no_temporary_file(tmp_path, monkeypatch):
    stored = ProfileFile(tmp_path / "profile.json")
    stored.save(sample(version=4))

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("forcecast.edge.profile.os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        stored.save(sample(version=5))
    monkeypatch.undo()
    assert stored.load() == sample(version=4) and not stored.temporary.exists()


def test_the_wire_layout_is_as_documented():
    assert WIRE.format == "<IHHHhB" and struct.calcsize(WIRE.format) == 13
    assert encode_profile(sample(version=0x01020304)) == WIRE.pack(0x01020304, 1250, 7250, 1760, 450, 1)


# ---------------------------------------------------------------- the device side: state, handler, control point


def state_and_handler(folder: Path, limit_bw: float = 0.0) -> tuple[PatientState, ProfileHandler]:
    state = PatientState(PatientConfig(patient_id="P042", body_mass_kg=80.0, height_m=1.8, peak_limit_bw=limit_bw))
    return state, ProfileHandler(ProfileFile(folder / "profile.json"), state)


def test_the_handler_stores_then_applies_and_queues_one_event(tmp_path):
    state, handler = state_and_handler(tmp_path)
    gate = FeedbackGate(state.feedback_limit_bw, None)
    assert (state.version, state.generation, gate.limit_bw) == (0, 0, 0.0)
    assert handler.write(encode_profile(sample(version=7))) == 7
    assert handler.stored.load() == sample(version=7)
    assert (state.version, state.generation, gate.limit_bw) == (7, 1, 1.25)  # the limit holds at once
    generation, patient, events = state.take()
    assert generation == 1 and patient == sample(version=7).apply_to(state_and_handler(tmp_path)[0].patient)
    assert [e.event for e in events] == [EventType.PROFILE_APPLIED] and events[0].profile == sample(version=7).to_json()
    assert "version 7: cue limit 1.25 BW" in (events[0].detail or "") and state.take()[2] == []


@pytest.mark.parametrize("version", [7, 6, 1])
def test_a_version_not_newer_is_refused_and_changes_nothing(tmp_path, version):
    state, handler = state_and_handler(tmp_path)
    handler.write(encode_profile(sample(version=7)))
    state.take()
    with pytest.raises(StaleProfileError) as caught:
        handler.write(encode_profile(sample(version=version, feedback_limit_bw=3.0)))
    assert (caught.value.version, caught.value.current_version) == (version, 7)
    assert handler.stored.load() == sample(version=7) and state.patient.peak_limit_bw == 1.25
    assert state.generation == 1 and state.take()[2] == []


def test_an_invalid_or_unstorable_profile_changes_nothing(tmp_path, monkeypatch):
    state, handler = state_and_handler(tmp_path, limit_bw=1.0)
    with pytest.raises(ProfileError) as caught:
        handler.write(WIRE.pack(7, 1200, 99, 1760, 0, 0))
    assert caught.value.reason == "out_of_range" and "body_mass_kg" in str(caught.value)

    def full(self: ProfileFile, profile: PatientProfile) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ProfileFile, "save", full)
    with pytest.raises(OSError):
        handler.write(encode_profile(sample(version=7)))
    assert (state.version, state.generation, state.patient.peak_limit_bw) == (0, 0, 1.0)
    assert not handler.stored.path.exists()


def test_a_start_puts_the_stored_profile_over_device_toml_and_survives_a_damaged_one(tmp_path, caplog):
    patient = PatientConfig(patient_id="P042", body_mass_kg=80.0, height_m=1.8, peak_limit_bw=0.8)
    stored = ProfileFile(tmp_path / "profile.json")
    assert start_patient(patient, stored).version == 0 and start_patient(patient, stored).patient == patient
    stored.save(sample(version=5, feedback_limit_bw=None))
    state = start_patient(patient, stored)
    assert state.version == 5 and state.patient == sample(version=5, feedback_limit_bw=None).apply_to(patient)
    assert state.feedback_limit_bw() == 0.0 and state.patient.patient_id == "P042"
    stored.path.write_text("{damaged")
    with caplog.at_level(logging.ERROR):
        state = start_patient(patient, stored)
    assert state.version == 0 and state.patient == patient and "not valid JSON" in caplog.text
    assert not stored.path.exists() and stored.path.with_name("profile.json.damaged").exists()


def control(link: DeviceLink, request_id: int, payload: bytes) -> tuple[Status, bytes]:
    reply = decode_reply(link.handle_control(encode_request(Opcode.PROFILE, request_id, payload)))
    assert reply.request_id == request_id and reply.opcode == Opcode.PROFILE
    return reply.status, reply.payload


def test_the_control_point_answers_ok_stale_bad_argument_and_refuses_an_unencrypted_host(tmp_path):
    state, handler = state_and_handler(tmp_path)
    link = DeviceLink(RecordStore(tmp_path / "s.sqlite", device_id="dev-1"), {}, profiles=handler)
    link.connected(mtu=23, encrypted=False)
    assert control(link, 1, encode_profile(sample(version=7)))[0] is Status.NOT_ENCRYPTED and state.version == 0
    link.connected(mtu=23, encrypted=True)
    assert control(link, 2, encode_profile(sample(version=7))) == (Status.OK, PROFILE_REPLY.pack(7))
    status, payload = control(link, 3, encode_profile(sample(version=7)))  # a retry after a lost reply
    assert status is Status.STALE and PROFILE_REPLY.unpack_from(payload) == (7,)
    status, payload = control(link, 4, WIRE.pack(8, 1200, 7250, 1760, 450, 9))
    assert status is Status.BAD_ARGUMENT and payload.startswith(b"bad_field: ") and state.version == 7
    longer = encode_request(Opcode.PROFILE, 5, encode_profile(sample(version=8))) + b"\x00"
    assert decode_reply(link.handle_control(longer)).status is Status.BAD_LENGTH and state.version == 7
    assert link.rejected == {"NOT_ENCRYPTED": 1, "STALE": 1, "BAD_ARGUMENT": 1, "BAD_LENGTH": 1}
    plain = DeviceLink(RecordStore(tmp_path / "t.sqlite", device_id="dev-2"), {})
    plain.connected(mtu=23, encrypted=True)
    status, payload = control(plain, 6, encode_profile(sample(version=9)))
    assert status is Status.REFUSED and payload.startswith(b"profiles_off")
