"""The patient list's attention order: flags, then missing days, then adherence; reasons in words."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forcecast.clinic.dashboard.attention import Attention, AttentionConfig, DayFigures, assess, rank
from forcecast.host_app.analytics import TREND_METRICS

TODAY = date(2026, 3, 20)


def regular(days: int = 35, steps: int = 6000, wear_min: float = 600.0, peak: float = 1.15) -> list[DayFigures]:
    """A steady patient: the same figures (a little spread) on each of the last ``days`` days."""
    out = []
    for k in range(days, 0, -1):
        jitter = (k % 5 - 2) * 0.004
        out.append(
            DayFigures(
                TODAY - timedelta(days=k),
                steps=steps + (k % 7) * 40,
                wear_min=wear_min,
                peak_bw_mean=peak + jitter,
                loading_rate_bw_s_mean=9.0 + jitter,
                load_bws=0.55 * steps,
            )
        )
    return out


def test_a_steady_patient_needs_nothing() -> None:
    found = assess(1, regular(), TODAY)
    assert found.flags == () and found.missing_days == () and not found.low_adherence
    assert found.reasons == []
    assert found.wear_h_per_day == pytest.approx(10.0)


def test_yesterday_outside_the_usual_range_is_flagged_in_words() -> None:
    days = regular()
    days[-1] = DayFigures(days[-1].day, steps=1500, wear_min=600.0, peak_bw_mean=1.6, loading_rate_bw_s_mean=9.0)
    found = assess(1, days, TODAY)
    text = " | ".join(found.flags)
    assert "steps 1.5e+03 below" in text or "steps 1,500 below" in text
    assert f"{TREND_METRICS['peak_bw_mean']} 1.6 above" in text
    assert found.reasons[: len(found.flags)] == list(found.flags)


def test_no_baseline_no_flags() -> None:
    days = regular(days=3)
    days[-1] = DayFigures(days[-1].day, steps=100, wear_min=600.0, peak_bw_mean=2.0)
    assert assess(1, days, TODAY).flags == ()


def test_missing_days_and_adherence_in_words() -> None:
    days = [d for d in regular() if d.day not in {TODAY - timedelta(days=2), TODAY - timedelta(days=5)}]
    days = [DayFigures(d.day, d.steps, 150.0, d.peak_bw_mean, d.loading_rate_bw_s_mean, d.load_bws) for d in days]
    found = assess(3, days, TODAY)
    assert found.missing_days == (TODAY - timedelta(days=5), TODAY - timedelta(days=2))
    assert found.low_adherence and found.wear_h_per_day == pytest.approx(2.5)
    assert found.reasons == [
        f"no data on 2 of the last days: {TODAY - timedelta(days=5):%a %d %b}, {TODAY - timedelta(days=2):%a %d %b}",
        "worn 2.5 h per day with data",
    ]


def test_never_worn() -> None:
    found = assess(4, [], TODAY)
    assert len(found.missing_days) == 7 and found.days_with_data == 0
    assert found.reasons[-1] == "never worn in the last days"


def test_today_does_not_count_and_quality_is_a_note_only() -> None:
    days = regular()
    days.append(DayFigures(TODAY, steps=0))
    days[-2] = DayFigures(
        days[-2].day, days[-2].steps, 600.0, days[-2].peak_bw_mean, 9.0, 3300.0, cues=2, quality_events=3
    )
    found = assess(1, days, TODAY)
    assert found.missing_days == ()
    assert found.notes == ("3 sensor quality event(s) in the last 7 days", "2 biofeedback cue(s) in the last 7 days")
    assert found.reasons == []


def test_rank_flags_then_missing_days_then_adherence() -> None:
    flagged = regular()
    flagged[-1] = DayFigures(flagged[-1].day, steps=900, wear_min=600.0, peak_bw_mean=1.15)
    missing = [d for d in regular() if d.day < TODAY - timedelta(days=3)]
    low_wear = [DayFigures(d.day, d.steps, 120.0, d.peak_bw_mean) for d in regular()]
    fine = regular()
    order = rank(
        [assess(1, fine, TODAY), assess(2, low_wear, TODAY), assess(3, missing, TODAY), assess(4, flagged, TODAY)]
    )
    assert [a.patient_id for a in order] == [4, 3, 2, 1]


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="window_days"):
        AttentionConfig(window_days=0)


figures = st.builds(
    DayFigures,
    day=st.integers(1, 40).map(lambda k: TODAY - timedelta(days=k)),
    steps=st.integers(0, 20000),
    wear_min=st.floats(0, 1440),
    peak_bw_mean=st.none() | st.floats(0.5, 3.0),
    loading_rate_bw_s_mean=st.none() | st.floats(1, 30),
    load_bws=st.floats(0, 1e4),
)


@given(st.lists(st.lists(figures, max_size=40, unique_by=lambda d: d.day), min_size=1, max_size=6))
def test_rank_is_a_total_order_consistent_with_its_rules(patients: list[list[DayFigures]]) -> None:
    order = rank([assess(k, days, TODAY) for k, days in enumerate(patients)])
    assert sorted(a.patient_id for a in order) == list(range(len(patients)))
    for first, second in itertools.pairwise(order):
        assert len(first.flags) >= len(second.flags)
        if len(first.flags) == len(second.flags):
            assert len(first.missing_days) >= len(second.missing_days)
            if len(first.missing_days) == len(second.missing_days):
                assert first.wear_h_per_day <= second.wear_h_per_day
    for attention in order:
        assert isinstance(attention, Attention)
        assert attention.low_adherence == (attention.wear_h_per_day < 8.0)
        assert bool(attention.reasons) == bool(attention.flags or attention.missing_days or attention.low_adherence)
