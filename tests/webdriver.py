"""Debian's Chromium driven through its WebDriver (chromedriver) for the browser tests.

Use :func:`chromium_session` in a fixture. Without Chromium or chromedriver the test is skipped, unless
``FORCECAST_REQUIRE_BROWSER`` is set (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium_session(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium under WebDriver, closed afterwards (no network: the driver is the system's)."""
    browser = _find(BROWSERS)
    driver_path = _find(("chromedriver",))
    if browser is None or driver_path is None:
        what = "chromium" if browser is None else "chromedriver (Debian: chromium-driver)"
        if os.environ.get("FORCECAST_REQUIRE_BROWSER"):
            pytest.fail(f"FORCECAST_REQUIRE_BROWSER is set (CI) but {what} is not installed")
        pytest.skip(f"{what} is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, timeout_s: float = 20.0) -> WebDriverWait[webdriver.Chrome]:
    """A ``WebDriverWait`` with the suite's patience (a loaded 2-core machine)."""
    return WebDriverWait(driver, timeout_s)


def click_and_load(driver: WebDriver, element: WebElement, timeout_s: float = 20.0) -> None:
    """Click a link or submit button and wait until the browser has left the page it was on.

    Waiting for an element of the next page is not enough when the page it leaves has one of the same id: the
    old one would be found, then go stale mid-assertion.
    """
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout_s).until(ec.staleness_of(page))


def save_screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """Save the page as a PNG (for the README's screenshots) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
