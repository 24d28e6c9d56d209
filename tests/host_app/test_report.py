"""The daily report: content, speed, and how it renders in headless Chromium (installed by .ci/run)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, date, timedelta

import numpy as np
import pandas as pd
import pytest

from forcecast.cli import main
from forcecast.host_app.analytics import PatientContext
from forcecast.host_app.browser import PAPER_MM, pdf_page_mm, run_chromium
from forcecast.host_app.report import build_report, write_report
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

DAY = date(2026, 11, 20)
PLOTS = ["stance-curves", "peak-distribution", "gait-phases", "load-over-day", "trend", "asymmetry"]
CARDS = ["steps", "walking", "cadence", "peak", "loading", "stance", "phases", "ml", "asymmetry", "wear"]
WINDOW = (1200, 4600)


def chromium_or_skip() -> None:
    if shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"):
        return
    if os.environ.get("FORCECAST_REQUIRE_BROWSER"):
        pytest.fail("FORCECAST_REQUIRE_BROWSER is set (CI) but no Chromium is installed")
    pytest.skip("no Chromium on PATH (.ci/run installs it)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = HostStore(tmp_path_factory.mktemp("report") / "host.sqlite")
    seq = None
    for back in range(8, 0, -1):
        seq = write_day(store, DAY - timedelta(days=back), 900, seed=back, first_seq=seq)
    write_day(store, DAY, 1200, seed=42, first_seq=seq, peak_shift=0.15)
    return store


def test_the_report_has_every_section_and_flags_the_heavier_day(store, tmp_path):
    report = build_report(store, "P1", DAY, UTC)
    assert report.plots == PLOTS and report.cards == CARDS
    page = report.html
    assert page.count('<img alt="') == len(PLOTS) and "http://" not in page and "https://" not in page
    for card in CARDS:
        assert f'id="card-{card}"' in page
    assert "highest vertical peak per step, day mean (BW)" in page and "above the usual range" in page
    assert report.metrics.steps == 1200 and report.metrics.bouts >= 3
    heavier = [f for f in report.metrics.flags if "highest vertical peak" in f.message]
    assert [f.level for f in heavier] == ["alert"] and heavier[0].message.startswith("more force through the leg")
    assert "Peak vertical force" not in page and "mean peak" not in page  # one name per quantity
    assert "@page { size: A4;" in page and "28 days to 2026-11-20 (data on 9 of them)" in page
    # a worn day of the synthetic walker: 14 h recorded, not the minutes of its bouts
    assert report.metrics.wear_min == 14 * 60 and "14.0 h" in page and "07:00–21:00" in page


def test_good_news_is_green_and_concerns_are_red(store):
    from forcecast.host_app.analytics import FLAG_LEVELS, DayMetrics, add_trend_flags

    report = build_report(store, "P1", DAY, UTC)
    table = pd.DataFrame(
        {"has_data": [True] * 6, "steps": [900.0] * 6, "walking_min": [20.0] * 6, "asymmetry": [0.05] * 6}
        | {k: [1.0] * 6 for k in ("peak_bw_mean", "loading_rate_bw_s_mean", "load_bws")},
        index=[DAY - timedelta(days=k) for k in range(6, 0, -1)],
    )
    more = DayMetrics(**(report.metrics.__dict__ | {"steps": 2000, "asymmetry": 0.01, "flags": []}))
    add_trend_flags(more, table)
    levels = {f.message.split(":")[0]: f.level for f in more.flags}
    assert levels["more walking than usual"] == "good" and levels["legs loaded more evenly than usual"] == "good"
    assert levels["more force through the leg per step than usual"] == "alert"
    fewer = DayMetrics(**(report.metrics.__dict__ | {"steps": 100, "asymmetry": 0.2, "flags": []}))
    add_trend_flags(fewer, table)
    levels = {f.message.split(":")[0]: f.level for f in fewer.flags}
    assert levels["less walking than usual"] == "alert" and levels["legs loaded less evenly than usual"] == "alert"
    page = report.html
    for level, meaning in FLAG_LEVELS.items():
        assert f'<span class="{level}">{meaning}</span>' in page


def test_patient_context_and_walking_norms_are_on_the_page(store):
    context = PatientContext(affected_side="left", hka_deg=-4.0, height_m=1.8, feedback_limit_bw=1.3, source="clinic")
    report = build_report(store, "P1", DAY, UTC, context=context)
    page = report.html
    for text in ("left", "4.0° valgus", "1.80 m", "1.30 BW", "Patient context from clinic; the device&#39;s records"):
        assert text in page, text
    assert report.context.body_mass_kg == pytest.approx(700 / 9.80665, abs=0.05)  # from the steps' N/BW
    m = report.metrics
    # synthetic steps: a contact every 0.55 s alternating legs, stance 0.62 s: a 1.1 s cycle
    assert m.stance_s_mean == pytest.approx(0.62, abs=0.01)
    assert m.stance_pct == pytest.approx(56.4, abs=1.5) and m.swing_pct == pytest.approx(100 - m.stance_pct)
    assert m.double_support_pct == pytest.approx(2 * (0.62 - 0.55) / 1.1 * 100, abs=1.5)
    assert "Kirtley et al. 1985" in page and "Keller et al. 1996" in page
    assert "left (affected)" in page
    with pytest.raises(ValueError, match="paper"):
        build_report(store, "P1", DAY, UTC, paper="A3")
    assert "@page { size: letter;" in build_report(store, "P1", DAY, UTC, paper="letter").html


def test_the_report_renders_in_headless_chromium_with_every_plot_and_card(store, tmp_path):
    chromium_or_skip()
    out = write_report(build_report(store, "P1", DAY, UTC), tmp_path / "report.html")
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    dom = run_chromium(out, size, "--dump-dom", "--enable-logging=stderr", "--v=0")
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attributes["plots-ok"] == str(len(PLOTS)) and attributes["cards"] == str(len(CARDS))
    boxes = {
        name: tuple(int(v) for v in box.split(","))
        for name, box in (item.split(":") for item in attributes["boxes"].split(";"))
    }
    assert set(boxes) == {f"plot-{p}" for p in PLOTS} | {f"card-{c}" for c in CARDS}
    shot = tmp_path / "report.png"
    run_chromium(out, size, f"--screenshot={shot}")
    import matplotlib.image

    image = matplotlib.image.imread(shot)[..., :3]
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    for name, (x, y, w, h) in boxes.items():
        assert w > 100 and h > 40 and y + h <= WINDOW[1], f"{name} is off the page: {(x, y, w, h)}"
        region = image[y : y + h, x : x + w]
        inked = float((region.std(axis=2) > 0.05).mean() + (region.mean(axis=2) < 0.5).mean())
        assert inked > 0.01, f"{name} looks blank in the screenshot"


def test_a_day_of_15000_steps_reports_every_step(tmp_path):
    # how long it takes is measured by `forcecast host bench --report-steps 15000 --json`, not here
    store = HostStore(tmp_path / "big.sqlite")
    write_day(store, DAY, 15_000, seed=1)
    report = build_report(store, "P1", DAY, UTC)
    assert report.metrics.steps == 15_000 and report.seconds > 0
    assert np.isfinite(report.metrics.peak_bw_mean)


def test_report_and_export_commands(store, tmp_path, capsys):
    db = str(store.path)
    out = tmp_path / "r.html"
    assert (
        main(
            [
                "host",
                "report",
                "--db",
                db,
                "--patient",
                "P1",
                "--day",
                "2026-11-20",
                "--tz",
                "UTC",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["steps"] == 1200 and out.exists() and figures["html"] == str(out)
    assert main(["host", "report", "--db", db, "--patient", "NOBODY", "--day", "2026-11-20"]) == 2
    assert "no records of patient 'NOBODY'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["host", "report", "--db", db, "--patient", "P1", "--day", "20-11-2026"])
    assert "not a date written YYYY-MM-DD" in capsys.readouterr().err
    folder = tmp_path / "export"
    export = ["host", "export", "--db", db, "--patient", "P1", "--out", str(folder)]
    assert main([*export, "--from", "2026-11-19", "--to", "2026-11-20", "--tz", "UTC"]) == 0
    days = pd.read_csv(folder / "days.csv")
    assert list(days["steps"]) == [900, 1200]
    steps = pd.read_parquet(folder / "steps.parquet")
    assert len(steps) == 2100 and len(steps["waveform_v_bw"].iloc[0]) == 101
    assert "waveform_v_bw" not in pd.read_csv(folder / "steps.csv", nrows=1).columns
    assert main([*export, "--from", "2026-11-20", "--to", "2026-11-19"]) == 2
    given = ["host", "report", "--db", db, "--patient", "P1", "--day", "2026-11-20", "--tz", "UTC", "--out", str(out)]
    assert main([*given, "--affected-side", "right", "--limit-bw", "1.2", "--paper", "letter"]) == 0
    page = out.read_text()
    assert "right (affected)" in page and "1.20 BW" in page and "size: letter" in page
    assert main([*given, "--limit-bw", "-1"]) == 2
    assert "--limit-bw: -1.0 must be a positive number" in capsys.readouterr().err


def test_every_value_on_the_page_is_escaped_by_the_template_engine(tmp_path):
    from html.parser import HTMLParser

    hostile_patient = 'P<1>&"x"'
    hostile_device = "fc-<b>dev</b>"
    firmware = "<script>alert('fw')</script>"
    store = HostStore(tmp_path / "h.sqlite")
    write_day(store, DAY, 300, patient=hostile_patient, device=hostile_device, seed=3)
    store.note_device(hostile_device, "AA:BB", {"firmware": firmware}, 12, "2026-11-20T23:00:00Z")
    page = build_report(store, hostile_patient, DAY, UTC, source="</p><script>alert('src')</script>").html

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.text: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

        def handle_data(self, data):
            self.text.append(data)

    parsed = Cells()
    parsed.feed(page)
    assert parsed.tags.count("script") == 1 and "b" in parsed.tags  # only the report's own script and <b>patient
    assert parsed.tags.count("b") == 1  # the device's "<b>" stayed text
    text = "".join(parsed.text)
    for value in (hostile_patient, hostile_device, firmware, "</p><script>alert('src')</script>"):
        assert value in text, f"{value!r} is not shown as text"
    assert "alert('fw')</script>" not in page and "&lt;script&gt;alert(&#39;fw&#39;)" in page
    assert "<title>forcecast daily report P&lt;1&gt;&amp;&#34;x&#34; 2026-11-20</title>" in page


@pytest.mark.parametrize("paper", ["A4", "letter"])
def test_the_pdf_comes_out_in_the_asked_paper_size(store, tmp_path, paper):
    chromium_or_skip()
    out = tmp_path / "r.html"
    day = ["--day", "2026-11-20", "--tz", "UTC", "--out", str(out), "--pdf"]
    assert main(["host", "report", "--db", str(store.path), "--patient", "P1", *day, "--paper", paper]) == 0
    assert pdf_page_mm(out.with_suffix(".pdf")) == [PAPER_MM[paper]]
