"""Headless Chromium for PDFs and screenshots of reports (optional; found on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from forcecast.edge.errors import ForcecastRuntimeError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class BrowserError(ForcecastRuntimeError):
    """Chromium is missing or failed; the message says which and how to fix it."""

    reason = "browser_failed"


def find_chromium() -> str:
    """Path of a Chromium/Chrome executable.

    Raises
    ------
    BrowserError
        If none is on PATH.
    """
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        "no Chromium or Chrome on PATH (needed for --pdf); install it, e.g. 'sudo apt install chromium', "
        "or open the HTML report and print it from any browser"
    )


def run_chromium(page: Path | str, *arguments: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Load ``page`` headless with extra ``arguments`` (``--screenshot=F``, ``--print-to-pdf=F``, ``--dump-dom``)."""
    with tempfile.TemporaryDirectory(prefix="forcecast-chromium-") as profile:
        target = page if isinstance(page, str) else page.resolve().as_uri()
        command = [find_chromium(), *QUIET_FLAGS, f"--user-data-dir={profile}", *arguments, target]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise BrowserError(f"chromium exited with {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def print_pdf(page: Path, out: Path) -> Path:
    """Print an HTML file to PDF without browser header or footer.

    The page size is the page's own CSS ``@page size`` (the report's: A4 unless ``--paper letter``); Chromium
    would otherwise pick US Letter.
    """
    run_chromium(page, f"--print-to-pdf={out.resolve()}", "--no-pdf-header-footer")
    if not out.exists() or out.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no PDF to {out}")
    return out


PAPER_MM: dict[str, tuple[int, int]] = {"A4": (210, 297), "letter": (216, 279)}
"""Portrait page sizes, in whole millimetres."""


def pdf_page_mm(pdf: Path) -> list[tuple[int, int]]:
    """Width and height of each distinct page size in a PDF, in whole millimetres (from its ``/MediaBox``es).

    Raises
    ------
    BrowserError
        If the file names no page size (not a PDF Chromium wrote).
    """
    boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf.read_bytes())
    if not boxes:
        raise BrowserError(f"{pdf}: no /MediaBox found (not a PDF?)")
    sizes = {
        (round((float(x1) - float(x0)) * 25.4 / 72), round((float(y1) - float(y0)) * 25.4 / 72))
        for x0, y0, x1, y1 in boxes
    }
    return sorted(sizes)
