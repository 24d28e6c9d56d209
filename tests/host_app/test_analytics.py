"""Daily analytics against values worked out by hand on small fixture days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forcecast.edge.records import EventRecord, StepRecord, SummaryRecord
from forcecast.host_app.analytics import (
    AnalyticsConfig,
    GaitPhases,
    InMemoryRecords,
    PatientContext,
    add_trend_flags,
    context_from_day,
    daily_table,
    day_bounds,
    day_metrics,
    find_bouts,
    gait_phases,
    load_day,
)
from forcecast.host_app.store import DatedRecord, HostStore

DAY = date(2026, 3, 10)


def at(day: date, hh: int, mm: int, ss: float = 0.0) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC).timestamp() + ss


def step(t: float, leg: str, peak1: float, peak2: float, patient: str = "P1") -> dict:
    wave = [peak1 * (k / 100) * (1 - k / 100) * 4 for k in range(101)]
    return {
        "t_unix": t,
        "patient_id": patient,
        "leg": leg,
        "stance_s": 0.6,
        "peak1_bw": peak1,
        "peak2_bw": peak2,
        "peak1_n": peak1 * 700,
        "peak2_n": peak2 * 700,
        "loading_rate_bw_s": 10.0 if leg == "r" else 8.0,
        "impulse_v_bws": 0.5,
        "peak_ml_bw": 0.05,
        "peak_ml_n": 35.0,
        "waveform_bw": {"v": wave, "ap": [0.0] * 101, "ml": [0.01] * 101},
        "flags": ["dropout"] if leg == "l" and t == at(DAY, 8, 0, 0.5) else [],
        "model_version": "m1",
    }


def fixture_day(store: HostStore, day: date = DAY, device: str = "dev-A") -> None:
    records = []
    for k in range(5):  # bout 1: right every 1.0 s, left in between
        records.append(("step", step(at(day, 8, 0, k * 1.0), "r", 1.2, 1.1)))
    for k in range(4):
        records.append(("step", step(at(day, 8, 0, 0.5 + k * 1.0), "l", 1.0, 1.05)))
    for k in range(4):  # bout 2: right only, stride 1.2 s
        records.append(("step", step(at(day, 9, 0, k * 1.2), "r", 1.2, 1.1)))
    records.append(("step", step(at(day, 10, 0), "r", 1.2, 1.1)))  # a lone step: no bout
    records.append(("step", step(at(day, 0, 0) - 30.0, "r", 3.0, 3.0)))  # the evening before: not this day
    records.append(("step", step(at(day, 8, 30), "r", 9.0, 9.0, patient="P2")))  # another patient
    for k in range(60):  # worn 08:00-08:10 and 09:00-09:05: 15 min, one gap
        records.append(
            ("summary", {"t_unix": at(day, 8, 0, 10.0 * k), "start_s": 0.0, "end_s": 10.0, "patient_id": "P1"})
        )
    for k in range(30):
        records.append(
            ("summary", {"t_unix": at(day, 9, 0, 10.0 * k), "start_s": 0.0, "end_s": 10.0, "patient_id": "P1"})
        )
    records.append(("event", {"t_unix": at(day, 8, 0, 0.4), "event": "dropout", "patient_id": "P1"}))
    records += [("event", {"t_unix": at(day, 9, 0, k), "event": "cue", "patient_id": "P1"}) for k in (1, 2)]
    seqs: dict[str, int] = {}
    batch = []
    for kind, payload in records:
        seqs[kind] = seqs.get(kind, store.count(device, kind)) + 1
        batch.append((kind, seqs[kind], payload))
    store.add_many(device, batch, "2026-03-10T12:00:00Z")


def test_a_fixture_day_matches_the_hand_computed_figures(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    fixture_day(store)
    data = load_day(store, "P1", DAY, UTC)
    m = day_metrics(data)
    assert m.steps == 14 and m.steps_by_leg == {"l": 4, "r": 10}
    assert m.bouts == 2  # 9 steps over 4.6 s and 4 steps over 4.2 s; the lone step is not a bout
    assert m.walking_min == pytest.approx((4.6 + 4.2) / 60, abs=0.005)
    assert m.longest_bout_min == pytest.approx(4.6 / 60, abs=0.005)
    assert m.cadence_spm == 120.0  # strides: seven of 1.0 s, three of 1.2 s → median 1.0 s
    assert m.peak_bw_mean == pytest.approx((10 * 1.2 + 4 * 1.05) / 14, abs=0.001)
    assert m.peak_n_mean == pytest.approx((10 * 1.2 + 4 * 1.05) / 14 * 700, abs=0.1)
    assert m.loading_rate_bw_s_mean == pytest.approx((10 * 10 + 4 * 8) / 14, abs=0.01)
    assert m.load_bws == 7.0 and m.peak_ml_bw_mean == 0.05
    assert m.asymmetry == pytest.approx((1.2 - 1.0) / 1.2, abs=1e-4)
    assert m.wear_min == 15.0
    assert m.gaps == [(at(DAY, 8, 10), at(DAY, 9, 0))]
    assert m.quality["dropout"] == 1 and m.flagged_steps == 1 and m.cues == 2
    assert m.devices == ["dev-A"] and m.model_versions == ["m1"]
    assert data.waveforms["v"].shape == (14, 101)


def test_a_day_without_data_and_a_patient_without_baseline(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    fixture_day(store)
    empty = day_metrics(load_day(store, "P1", DAY + timedelta(days=1), UTC))
    assert empty.steps == 0 and empty.walking_min == 0 and empty.cadence_spm is None and empty.asymmetry is None
    assert empty.peak_bw_mean is None and empty.wear_min == 0
    assert any("no data" in f.message for f in empty.flags)
    table = daily_table(store, "P1", DAY, 14, UTC)
    assert list(table.index[table["has_data"]]) == [DAY - timedelta(days=1), DAY]  # the late step of the 9th
    metrics = day_metrics(load_day(store, "P1", DAY, UTC))
    assert add_trend_flags(metrics, table) == {}
    assert any("no baseline yet: 1 earlier day(s) with data, 5 needed" in f.message for f in metrics.flags)


def test_one_leg_gives_no_asymmetry(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    store.add_many("d", [("step", k + 1, step(at(DAY, 8, 0, k), "r", 1.1, 1.0)) for k in range(6)], "t")
    m = day_metrics(load_day(store, "P1", DAY, UTC))
    assert m.asymmetry is None and m.steps_by_leg == {"r": 6} and m.cadence_spm == 120.0


def test_a_day_outside_the_patients_band_is_flagged(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    seq = 0
    for back in range(1, 8):  # a week of 40 steps a day at 1.0 BW
        day = DAY - timedelta(days=back)
        batch = []
        for k in range(40):
            seq += 1
            batch.append(("step", seq, step(at(day, 8, 0, k * 1.0 + (0.01 * back)), "r", 1.0, 0.95)))
        store.add_many("d", batch, "t")
    for k in range(40):  # today: same steps, heavier
        seq += 1
        store.add_many("d", [("step", seq, step(at(DAY, 8, 0, k * 1.0), "r", 1.4, 1.3))], "t")
    table = daily_table(store, "P1", DAY, 28, UTC)
    metrics = day_metrics(load_day(store, "P1", DAY, UTC))
    found = add_trend_flags(metrics, table, AnalyticsConfig())
    assert found["peak_bw_mean"].days == 7 and found["peak_bw_mean"].median == pytest.approx(1.0)
    alerts = [f.message for f in metrics.flags if f.level == "alert"]
    assert any(
        a.startswith("more force through the leg per step than usual: ")
        and "highest vertical peak per step, day mean (BW) 1.4 is above the usual range" in a
        for a in alerts
    )
    assert not any("walking than usual" in f.message for f in metrics.flags)  # 40 steps, as usual


def test_days_are_cut_in_the_patients_time_zone(tmp_path):
    from zoneinfo import ZoneInfo

    store = HostStore(tmp_path / "h.sqlite")
    late = at(DAY, 23, 30)  # 23:30 UTC is 00:30 the next day in Berlin (UTC+1 in March)
    store.add_many("d", [("step", 1, step(late, "r", 1.0, 1.0))], "t")
    assert day_metrics(load_day(store, "P1", DAY, UTC)).steps == 1
    berlin = ZoneInfo("Europe/Berlin")
    assert day_metrics(load_day(store, "P1", DAY, berlin)).steps == 0
    assert day_metrics(load_day(store, "P1", DAY + timedelta(days=1), berlin)).steps == 1


def in_memory_copy(store: HostStore, patients: tuple[str, ...] = ("P1", "P2")) -> InMemoryRecords:
    """Every record of the store as an InMemoryRecords (as the clinic server builds one from its database)."""
    pairs: list[tuple[str, DatedRecord[Any]]] = []
    for patient in patients:
        pairs += [(patient, d) for d in store.dated_records(patient, StepRecord, 0.0, 4e9, True)]
        pairs += [(patient, d) for d in store.dated_records(patient, SummaryRecord, 0.0, 4e9, True)]
        pairs += [(patient, d) for d in store.dated_records(patient, EventRecord, 0.0, 4e9, True)]
    return InMemoryRecords(reversed(pairs), store.devices())


def test_in_memory_records_give_the_same_day_as_the_host_store(tmp_path):
    store = HostStore(tmp_path / "h.sqlite")
    fixture_day(store)
    store.note_device("dev-A", "AA:BB", {"firmware": "1.2"}, 5, "2026-03-10T12:00:00Z")
    memory = in_memory_copy(store)
    from_store, from_memory = load_day(store, "P1", DAY, UTC), load_day(memory, "P1", DAY, UTC)
    assert len(from_memory.steps) == 14
    pd.testing.assert_frame_equal(from_store.steps, from_memory.steps)
    pd.testing.assert_frame_equal(from_store.summaries, from_memory.summaries)
    np.testing.assert_array_equal(from_store.waveforms["v"], from_memory.waveforms["v"])
    assert day_metrics(from_store) == day_metrics(from_memory)
    assert memory.devices()[0]["info"] == {"firmware": "1.2"}
    start, end = day_bounds(DAY, UTC)
    assert all(d.waveform is None for d in memory.dated_records("P1", StepRecord, start, end))
    assert memory.dated_records("nobody", StepRecord, start, end) == []
    table = daily_table(memory, "P1", DAY, 3, UTC)
    assert table["has_data"].tolist() == [False, True, True]  # the evening-before step counts for its day
    given = daily_table(memory, "P1", DAY, 3, UTC, known={DAY: day_metrics(from_memory)})
    pd.testing.assert_frame_equal(table, given)  # a day already worked out is not read again, and agrees


def test_patient_context_checks_its_fields_and_fills_gaps_from_the_records(tmp_path):
    with pytest.raises(ValueError, match="affected_side"):
        PatientContext(affected_side="both")
    with pytest.raises(ValueError, match="body_mass_kg"):
        PatientContext(body_mass_kg=-3.0)
    with pytest.raises(ValueError, match="hka_deg"):
        PatientContext(hka_deg=45.0)
    store = HostStore(tmp_path / "h.sqlite")
    fixture_day(store)
    store.add("dev-A", "event", 99, {"t_unix": at(DAY, 9, 1), "event": "cue", "patient_id": "P1", "limit_bw": 1.3}, "x")
    found = context_from_day(load_day(store, "P1", DAY, UTC))
    assert found.body_mass_kg == pytest.approx(700 / 9.80665, abs=0.05) and found.feedback_limit_bw == 1.3
    assert found.affected_side is None and found.source == "the device's records"
    given = PatientContext(affected_side="left", hka_deg=4.0, feedback_limit_bw=1.2, source="the clinic")
    merged = given.merged(found)
    assert (merged.affected_leg, merged.hka_deg, merged.feedback_limit_bw) == ("l", 4.0, 1.2)
    assert merged.body_mass_kg == found.body_mass_kg and merged.source == "the clinic; the device's records"
    nothing = context_from_day(load_day(store, "P1", DAY + timedelta(days=1), UTC))
    assert nothing == PatientContext()


def contacts(leg: str, first: float, count: int, stride: float = 1.0, stance: float = 0.6) -> pd.DataFrame:
    return pd.DataFrame({"t": first + stride * np.arange(count), "leg": leg, "stance_s": stance})


def test_gait_phases_from_both_legs_contact_times():
    # left contacts every 1.0 s, right half a cycle later, 0.6 s stance: 60 % stance, 40 % swing, and each stance
    # overlaps the other leg's for 0.1 s at its start and its end: 20 % double support
    steps = pd.concat([contacts("l", 0.0, 12), contacts("r", 0.5, 12)], ignore_index=True)
    bouts = find_bouts(steps, AnalyticsConfig())
    phases = gait_phases(steps, bouts)
    assert (phases.stance_pct, phases.swing_pct, phases.double_support_pct) == (60.0, 40.0, 20.0)
    assert phases.cycles == 22  # 11 per leg
    one_leg = steps[steps["leg"] == "r"]
    alone = gait_phases(one_leg, find_bouts(one_leg, AnalyticsConfig()))
    assert (alone.stance_pct, alone.double_support_pct) == (60.0, None)  # double support needs both legs
    # a pause longer than a stride is not a gait cycle, and nothing at all gives nothing
    paused = pd.concat([contacts("l", 0.0, 2, stride=3.0), contacts("r", 0.5, 2, stride=3.0)], ignore_index=True)
    assert gait_phases(paused, find_bouts(paused, AnalyticsConfig(min_bout_steps=1))).cycles == 0
    empty = steps.iloc[:0]
    assert gait_phases(empty, find_bouts(empty, AnalyticsConfig())) == GaitPhases(None, None, None, 0)
