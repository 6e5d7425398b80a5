"""Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by `make browser`) via selenium."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_installed() -> bool:
    return shutil.which("chromium") is not None and shutil.which("chromedriver") is not None


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium that is always quit, even when the test fails."""
    if not browser_installed():
        pytest.skip("headless Chromium is not installed: run `make browser`")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def member_rows(driver: webdriver.Chrome, keys: Callable[[str], Any] = int) -> dict[Any, dict[str, str]]:
    """The members table as the page shows it: member id (`keys` of its text) -> its data-* attributes."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#members tbody tr')].map(r => Object.assign({}, r.dataset));")
    return {keys(r["member"]): r for r in rows}
