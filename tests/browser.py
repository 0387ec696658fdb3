"""A real browser for the tests of pages a person looks at: Debian's chromium, driven by Playwright for Python (which
cannot download its own browser here). Tests that need it are skipped, with a message saying what to install, only
where chromium or Playwright is missing; `scripts/test` installs both.

Screenshots go to `LLMTAP_SCREENSHOTS` (a directory) when it is set, else next to the test's temporary files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps dialling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_missing() -> str | None:
    """Why no browser test can run here, or None when one can."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        return "needs Debian's chromium (apt-get install chromium; scripts/test installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs Playwright for Python (pip install playwright; scripts/test installs it)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for a test module (skipped with the reason when there is none)."""
    if reason := chromium_missing():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshot(tmp_path, request) -> Any:
    """`screenshot(page, name)`: save the page as PNG (whole page) and return the file's path."""
    directory = Path(os.environ.get("LLMTAP_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take
