"""In a real browser (headless Chromium): an Overview number opens the Match log with the matching filter in the URL.

Needs ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import pytest

from tests.dashboard.web.browser import WebDriver, chromium_or_skip, dashboard, exceptions_on_page, settle, sign_in

pytestmark = pytest.mark.slow


def test_a_reviewer_opens_the_pending_searches_from_the_overview(fake_db: str) -> None:
    with dashboard(fake_db) as url:
        driver = WebDriver(*chromium_or_skip())
        try:
            driver.get(url)
            sign_in(driver, "reviewer1")
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
