"""A real browser (headless Chromium): a page's address parameters survive navigation, reloads and bookmarks.

From the user's side: the Match log opened on a filter and a record, then another page from the
sidebar, then the Match log again from the sidebar, shows the same record and filters with them
in the address; a reload keeps them; the other page's address does not carry them. Every page's
own address, opened as a bookmark in a browser that never signed in, shows that page after
sign-in.
"""

from __future__ import annotations

import time

import pytest

from tests.dashboard.web.browser import PAGE_TITLES, WebDriver, chromium_or_skip, dashboard, main_text, settle, sign_in
from tests.dashboard.web.browser import wait_for as wait_in

pytestmark = pytest.mark.slow

#: Navigation title -> the page's address (url path) for an auditor.
ADDRESSES = {"Overview": "overview", "Match log": "match_log", "Demographic performance": "demographics",
             "Integrity": "integrity", "Exports": "exports"}


def address(driver: WebDriver) -> str:
    return str(driver.js("return location.pathname + location.search;"))


def nav(driver: WebDriver, page: str) -> None:
    driver.click_text('a[data-testid="stSidebarNavLink"]', page)
    settle(driver, PAGE_TITLES[page])


def records_shown(driver: WebDriver) -> str:
    """The Match log's records table as the grid gives it to assistive technology."""
    return str(driver.js("return document.querySelector('[data-testid=\"stDataFrame\"] table').textContent;"))


def test_the_match_logs_record_and_filters_survive_moving_away_and_back_and_a_reload(fake_db: str) -> None:
    browser = chromium_or_skip()
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.get(f"{url}/match_log?operator=operator2&action=any&record=5")
            sign_in(driver, "auditor1")
            settle(driver, "Match log")
            wait_in(driver, "Record #5:")
            shown = records_shown(driver)
            assert "operator2" in shown and "operator1" not in shown  # the filter holds
            before = address(driver)
            assert "operator=operator2" in before and "record=5" in before

            nav(driver, "Overview")
            assert "operator=" not in address(driver) and "record=" not in address(driver)  # not the Overview's
            nav(driver, "Match log")
            wait_in(driver, "Record #5:")
            assert address(driver) == before
            assert records_shown(driver) == shown

            driver.js("location.reload();")
            time.sleep(1.0)
            settle(driver, "Match log")
            wait_in(driver, "Record #5:")
            assert address(driver) == before and records_shown(driver) == shown
        finally:
            driver.quit()


@pytest.mark.parametrize("page", list(ADDRESSES))
def test_a_bookmark_of_each_page_opens_that_page_after_sign_in(fake_db: str, page: str) -> None:
    browser = chromium_or_skip()
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.get(f"{url}/{ADDRESSES[page]}")  # a fresh browser: never signed in
            sign_in(driver, "auditor1")
            settle(driver, PAGE_TITLES[page])
            # the default page (Overview) is also at "/"
            assert address(driver).startswith(f"/{ADDRESSES[page]}") or (page == "Overview" and address(driver) == "/")
            assert "Traceback" not in main_text(driver)
        finally:
            driver.quit()
