"""The dashboard's small parsers and guards, property-tested: periods of the comparison, the login redirect,
CSRF tokens and the CSV export's cells."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forcecast.clinic.dashboard import csrf
from forcecast.clinic.dashboard.auth import is_public, safe_next
from forcecast.clinic.dashboard.queries import StoredRecord
from forcecast.clinic.dashboard.reports import PeriodError, parse_period, steps_csv
from forcecast.edge.records import StepRecord, dumps


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_a_day_is_itself(day: date) -> None:
    period = parse_period(day.isoformat())
    assert period.days == (day,) and period.label == day.isoformat()


@given(st.dates(min_value=date(1900, 1, 8), max_value=date(2200, 12, 20)))
def test_an_iso_week_is_its_seven_days_monday_first(day: date) -> None:
    year, week, _ = day.isocalendar()
    period = parse_period(f"{year}-W{week:02d}")
    assert len(period.days) == 7 and period.first.isoweekday() == 1 and day in period.days
    assert all(b - a == timedelta(days=1) for a, b in zip(period.days, period.days[1:], strict=False))


@given(st.text(max_size=20))
def test_anything_else_is_refused_by_name(text: str) -> None:
    try:
        period = parse_period(text)
    except PeriodError as exc:
        assert repr(text) in str(exc) and exc.reason == "bad_period"
    else:
        assert period.days  # only real days and weeks get here
        assert period.label in (text.strip(), text.strip().upper())


@pytest.mark.parametrize("text", ["2026-W54", "2026-W00", "2026-02-30", "20260301", "2026-3-1", "W10", ""])
def test_impossible_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/patients/3", "/patients/3"),
        ("/audit?action=login", "/audit?action=login"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("patients", "/"),
        (None, "/"),
    ],
)
def test_next_stays_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


@given(st.text(max_size=60))
def test_next_is_always_a_local_path(target: str) -> None:
    chosen = safe_next(target)
    assert chosen.startswith("/") and not chosen.startswith("//") and "\\" not in chosen
    assert chosen in ("/", target)


def test_public_paths_are_few() -> None:
    assert is_public("/login") and is_public("/static/dashboard.css") and is_public("/api/v1/sync/state")
    assert not any(is_public(p) for p in ("/", "/audit", "/patients/1", "/logout", "/loginx", "/apix"))


@given(st.text(max_size=50), st.text(max_size=50))
def test_csrf_tokens_match_only_themselves(given_token: str, expected: str) -> None:
    assert csrf.same(given_token, expected) == (given_token == expected and given_token != "")


def test_new_csrf_tokens_are_well_formed_and_distinct() -> None:
    tokens = {csrf.new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(csrf.well_formed(t) for t in tokens)
    assert not csrf.well_formed("short") and not csrf.well_formed("é" * 43) and not csrf.well_formed("a" * 42 + "=")


def test_csv_cells_never_start_a_formula() -> None:
    record = StepRecord(t_unix=1.0, patient_id="P", leg="l", peak1_bw=1.1, flags=("=HYPERLINK()",), model_version="+m")
    payload = dumps(record.to_payload())
    rows = [
        StoredRecord("@dev", "step", 1_700_000_000.0, payload, None),
        StoredRecord("dev", "summary", 1_700_000_001.0, "{}", None),
        StoredRecord("dev", "step", 1_700_000_002.0, "not json", None),
    ]
    text, count = steps_csv(rows, UTC, "-P1")
    assert count == 1
    table = list(csv.DictReader(io.StringIO(text)))
    assert table[0]["patient"] == "'-P1" and table[0]["device_id"] == "'@dev"
    assert table[0]["flags"] == "'=HYPERLINK()" and table[0]["model_version"] == "'+m"
    assert table[0]["peak1_bw"] == "1.1" and table[0]["peak2_bw"] == ""
