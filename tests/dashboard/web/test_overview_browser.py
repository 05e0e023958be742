"""In a real browser (headless Chromium): an Overview number opens the Match log with the matching filter in the URL.

Needs ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import pytest

from tests.dashboard.web.browser import WebDriver, chromium_paths, dashboard, exceptions_on_page, settle

pytestmark = pytest.mark.slow


def test_a_reviewer_opens_the_pending_searches_from_the_overview(fake_db: str) -> None:
    found = chromium_paths()
    if found is None:
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    with dashboard(fake_db) as url:
        driver = WebDriver(*found)
        try:
            driver.get(url)
            settle(driver, "facetrail")
            driver.type('input[aria-label="Account"]', "reviewer1")
            driver.type('input[aria-label="Password"]', "reviewer1-demo")
            driver.click_text("button", "Sign in")
            settle(driver, "Overview", 120)
            assert not exceptions_on_page(driver)
            tiles = driver.js("return [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
                              ".map(e => e.innerText);")
            assert any("Searches pending review" in t and "6" in t for t in tiles)
            driver.click_text('a[data-testid="stPageLink-NavLink"]', "Pending", timeout=60)
            settle(driver, "Match log", 120)
            assert "review=pending" in driver.js("return window.location.search;")
            assert driver.js("return window.location.pathname;").endswith("/match_log")
            assert not exceptions_on_page(driver)
        finally:
            driver.quit()
