"""The dashboard's options come from the ``[dashboard]`` table of the server's TOML file: the clinic's time zone
(where a patient's day starts), login throttling and the patient list's thresholds; bad values are refused by name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from forcecast.clinic.app import create_app
from forcecast.clinic.config import ClinicSettings
from forcecast.clinic.dashboard import DASHBOARD, DashboardOptions, load_options
from forcecast.edge.config import ConfigError

CLINIC = '[clinic]\ndatabase_url = "sqlite:///x.db"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text(CLINIC + text, encoding="utf-8")
    return path


def test_the_table_sets_time_zone_throttling_and_attention(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[dashboard]\ntimezone = "Australia/Sydney"\nlogin_failures = 3\nlogin_window_s = 600\n'
        "[dashboard.attention]\nwindow_days = 14\nwear_target_h = 6.5\n"
        "[dashboard.attention.analytics]\nbaseline_days = 21\n",
    )
    options = load_options(path)
    assert (options.timezone, options.login_failures, options.login_window_s) == ("Australia/Sydney", 3, 600.0)
    assert (options.attention.window_days, options.attention.wear_target_h) == (14, 6.5)
    assert options.attention.analytics.baseline_days == 21
    app = create_app(ClinicSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}"), options=options)
    dashboard = app[DASHBOARD]
    assert dashboard.options == options
    # the clinic's clock, not the server's: 2026-01-14 13:30 UTC is already the 15th in Sydney (AEDT, UTC+11)
    dashboard.clock = lambda: 1768397400.0
    assert dashboard.today() == date(2026, 1, 15) and dashboard.local_time(1768397400.0) == "2026-01-15 00:30"


def test_without_a_file_or_a_table_the_defaults(tmp_path: Path) -> None:
    assert load_options(None) == DashboardOptions()
    assert load_options(write(tmp_path, "")) == DashboardOptions()


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('timezone = "Europe/Nowhere"', "[dashboard]: timezone: 'Europe/Nowhere' is not an IANA time zone"),
        ('timezone = "../../etc/passwd"', "is not an IANA time zone"),
        ("login_failures = 0", "login_failures must be ≥ 1"),
        ("login_window_s = -5", "login_window_s > 0"),
        ("login_failure = 3", "unknown key 'login_failure' (did you mean 'login_failures'?)"),
        ('login_failures = "five"', "login_failures"),
        ("[dashboard.attention]\nwindow_days = 0", "window_days ≥ 1"),
        ("[dashboard.attention]\nwear_hours = 8", "unknown key 'wear_hours'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_file_and_key(tmp_path: Path, table: str, named: str) -> None:
    path = write(tmp_path, "[dashboard]\n" + table + "\n")
    with pytest.raises(ConfigError) as refused:
        load_options(path)
    assert str(path) in str(refused.value) and named in str(refused.value)
