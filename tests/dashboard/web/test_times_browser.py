"""A real browser (headless Chromium) in another time zone: times read local, with the UTC time on hover.

The browser runs in Asia/Tokyo (UTC+9, no daylight saving). The dashboard reads that zone from
the browser once, into the session: the Match log table's times and heading, the record chooser
and the opened record's start time are in Tokyo time; hovering the start time's tooltip shows the
UTC time the log recorded.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from audit.runtime import Runtime
from tests.dashboard.web.browser import WebDriver, chromium_or_skip, dashboard, main_text, settle, sign_in
from tests.dashboard.web.browser import wait_for as wait_in

pytestmark = pytest.mark.slow

ZONE = "Asia/Tokyo"


def hover(driver: WebDriver, css: str) -> None:
    """Move the mouse onto the middle of the first element matching ``css`` (a real pointer move, as a user's)."""
    driver.find(css)
    x, y = driver.js("const e = document.querySelector(arguments[0]); e.scrollIntoView({block: 'center'});"
                     "const r = e.getBoundingClientRect();"
                     "return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)];", css)
    driver.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                                                 "actions": [{"type": "pointerMove", "duration": 100,
                                                              "origin": "viewport", "x": x, "y": y}]}]})


def grid(driver: WebDriver, index: int) -> str:
    """The text of the ``index``-th table on the page (the grid's accessible table: headings and cells)."""
    return str(driver.js("return document.querySelectorAll('[data-testid=\"stDataFrame\"] table')[arguments[0]]"
                         ".textContent;", index))


def tooltip(driver: WebDriver, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = driver.js("const t = document.querySelector('[data-testid=\"stTooltipContent\"]');"
                          "return t ? t.innerText : null;")
        if shown:
            return str(shown)
        if time.monotonic() > deadline:
            raise AssertionError("no tooltip shown on hover")
        time.sleep(0.2)


def test_times_read_in_the_browsers_zone_with_utc_on_hover(fake_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = chromium_or_skip()
    rt = Runtime(fake_db)
    started = rt.log.get(3).record.started_at
    rt.db.close()
    stamp = pd.Timestamp(started)
    local = stamp.tz_convert(ZONE).strftime("%Y-%m-%d %H:%M:%S")
    utc = stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    assert local != utc
    monkeypatch.setenv("TZ", ZONE)  # chromedriver and the Chromium it starts run in Tokyo; the server does not care
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            assert driver.js("return Intl.DateTimeFormat().resolvedOptions().timeZone;") == ZONE
            driver.get(f"{url}/match_log?record=3&action=any")
            sign_in(driver, "auditor1")
            settle(driver, "Match log")
            wait_in(driver, "Record #3:")
            text = main_text(driver)
            assert f"Times in your time zone, {ZONE}." in text
            table = grid(driver, 0)  # the records table, as the grid gives it to assistive technology
            assert f"Time ({ZONE})" in table  # the heading names the zone
            assert local in table and utc not in table  # the cells: local, not UTC
            assert f"Started: {local} JST" in text
            chooser = driver.js("return document.querySelector('input[aria-label=\"Open record\"]').value;")
            assert chooser.startswith("#3 · search · ") and chooser.endswith(f"{local} JST")
            hover(driver, '[data-testid="stText"] [data-testid="stTooltipHoverTarget"]')
            assert tooltip(driver).strip() == f"{utc} UTC (as recorded)"
        finally:
            driver.quit()


def test_the_admins_account_times_read_in_the_browsers_zone(fake_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = chromium_or_skip()
    monkeypatch.setenv("TZ", ZONE)
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.get(f"{url}/admin")
            sign_in(driver, "admin1")
            settle(driver, "Administration")
            accounts = grid(driver, 0)
            assert f"Last sign-in ({ZONE})" in accounts and f"Created ({ZONE})" in accounts
            assert "JST" in accounts and "Z" not in accounts.replace("Zone", "")  # no raw ISO UTC left
        finally:
            driver.quit()
