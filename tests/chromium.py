"""Debian's Chromium, headless, driven by Selenium through the system chromedriver: for the dashboard's
tests and its first-view benchmark (browser downloads are not possible here)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1800",
)


def missing_reason() -> str | None:
    """Why Chromium cannot be driven here, else None."""
    if not CHROMEDRIVER.exists() or shutil.which("chromium") is None:
        return "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (the test extra)"
    return None


def start_chromium(profile: Path) -> Any:
    """A headless Chromium with a fresh profile folder; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver
