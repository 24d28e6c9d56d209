"""Make the README's screenshots of the daily report and the live view (headless Chromium under chromedriver).

    python scripts/readme_screenshots.py [--out docs/img] [--package PKG --pubkey KEY]

The report is of a synthetic patient (28 days of :mod:`forcecast.host_app.synthetic_days`, two of them
without data, the last one heavier); the live view is ``forcecast host live --virtual`` running the test
model (tests/data) on the synthetic walker. Prints one JSON object naming the files written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, timedelta
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from forcecast.host_app.analytics import PatientContext
from forcecast.host_app.report import build_report, write_report
from forcecast.host_app.store import HostStore
from forcecast.host_app.synthetic_days import write_day

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 20)


def browser(width: int, height: int) -> webdriver.Chrome:
    """Headless Chromium (Debian's chromium + chromedriver) at a fixed window size."""
    options = webdriver.ChromeOptions()
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None or shutil.which("chromedriver") is None:
        sys.exit("needs chromium and chromedriver on PATH (Debian: apt install chromium chromium-driver)")
    options.binary_location = found
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)


def report_shots(folder: Path, out: Path) -> list[Path]:
    """The report's top (context, flags, cards, stance curves) and its plots, as two PNGs."""
    store = HostStore(folder / "host.sqlite")
    seq = None
    for back in range(27, 0, -1):
        if back in (9, 10):  # two days the device stayed in the drawer
            continue
        seq = write_day(store, DAY - timedelta(days=back), 1100 + 15 * (back % 5), seed=back, first_seq=seq)
    write_day(store, DAY, 1500, seed=42, first_seq=seq, peak_shift=0.12)
    context = PatientContext(
        affected_side="left", hka_deg=6.0, height_m=1.72, feedback_limit_bw=1.3, source="the clinic's patient record"
    )
    html = write_report(build_report(store, "P1", DAY, UTC, context=context), folder / "report.html")
    store.close()
    driver = browser(1200, 900)
    try:
        driver.get(html.as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-plots-ok"))
        height = int(driver.execute_script("return document.body.scrollHeight"))
        driver.set_window_size(1200, height + 40)
        full = folder / "full.png"
        driver.save_screenshot(str(full))
        cut = int(driver.execute_script("return document.getElementById('plot-peak-distribution').offsetTop")) - 50
    finally:
        driver.quit()
    import matplotlib.image

    image = matplotlib.image.imread(full)
    paths = [out / "report.png", out / "report-plots.png"]
    matplotlib.image.imsave(paths[0], image[:cut])
    matplotlib.image.imsave(paths[1], image[cut:])
    return paths


def live_shot(folder: Path, out: Path, package: Path, pubkey: Path) -> Path:
    """The live view of a simulated device, taken while a cue is on screen."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        *(sys.executable, "-m", "forcecast.cli"),
        *("host", "live", "--virtual", "--package", str(package), "--pubkey", str(pubkey)),
        *("--db", str(folder / "live.sqlite"), "--port", str(port), "--duration-s", "240", "--limit-bw", "1.05"),
        *("--affected-side", "left"),
    ]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    path = out / "live.png"
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if line.startswith("live view: "):
                break
        driver = browser(1280, 860)
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(driver, 180, poll_frequency=0.1)
            wait.until(lambda d: d.find_element(By.ID, "walking").text not in ("–", "under 1 min"))
            wait.until(lambda d: d.find_element(By.ID, "cue-list").text != "no cue yet")
            wait.until(lambda d: d.find_element(By.ID, "cue-banner").get_attribute("class") == "on")
            time.sleep(0.5)
            driver.save_screenshot(str(path))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(30)
    return path


def main() -> int:
    """Write the screenshots; print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--package", type=Path, default=ROOT / "tests" / "data" / "grf_int8.fcpkg")
    parser.add_argument("--pubkey", type=Path, default=ROOT / "tests" / "data" / "forcecast-test.pub")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forcecast-shots-") as tmp:
        written = [*report_shots(Path(tmp), args.out), live_shot(Path(tmp), args.out, args.package, args.pubkey)]
    print(json.dumps({"written": [str(p) for p in written]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
