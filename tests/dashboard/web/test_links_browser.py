"""A real browser (headless Chromium): sessions survive a reload, links survive sign-in, sign-out revokes the cookie.

From the user's side: a Match log address naming a record, opened in a browser that
never signed in, shows Sign in first and then that record; a reload keeps the session
and the record. From the attacker's side: the session cookie kept from before a
sign-out (replayed into the browser) no longer signs anyone in, and the session token
never appears in an address.
"""

from __future__ import annotations

import time

import pytest

from audit import AuditFilter
from audit.runtime import Runtime
from tests.dashboard.web.browser import WebDriver, chromium_or_skip, dashboard, main_text, settle, sign_in
from tests.dashboard.web.browser import wait_for as wait_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    return chromium_or_skip()


def text(driver: WebDriver) -> str:
    return main_text(driver, "body")


def wait_for(driver: WebDriver, words: str, timeout: float = 60) -> None:
    wait_in(driver, words, timeout, "body")  # the sign-in page and the sidebar too


def session_cookie(driver: WebDriver) -> str | None:
    for part in str(driver.js("return document.cookie;")).split(";"):
        name, _, value = part.strip().partition("=")
        if name.startswith("facetrail_session_") and value:
            return f"{name}={value}"
    return None


def reload(driver: WebDriver) -> None:
    driver.js("location.reload();")
    time.sleep(1.0)


def test_a_record_link_survives_sign_in_and_reloads_and_sign_out_revokes_the_cookie(
        fake_db: str, browser: tuple[str, str]) -> None:
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.get(f"{url}/match_log?record=3&operator=operator1")  # a fresh browser: never signed in
            wait_for(driver, "Sign in to see what this link shows.")
            assert "Record #3" not in text(driver)
            sign_in(driver, "auditor1")
            settle(driver, "Match log")
            wait_for(driver, "Record #3:")
            address = str(driver.js("return location.href;"))
            assert "record=3" in address and "operator=operator1" in address

            cookie = session_cookie(driver)
            assert cookie is not None, "no session cookie after sign-in"
            assert cookie.split("=", 1)[1] not in address  # the secret is never in the address

            reload(driver)  # a new Streamlit session: the cookie signs it in, the address reopens the record
            settle(driver, "Match log")
            wait_for(driver, "Record #3:")
            assert "Signed in as auditor1" in text(driver).replace("*", "")
            assert not driver.cmd("POST", "/elements", {"using": "css selector",
                                                        "value": 'input[aria-label="Password"]'})

            driver.click_text("button", "Sign out")
            settle(driver, "facetrail")
            time.sleep(1.0)
            assert session_cookie(driver) is None, "the cookie outlived the sign-out"

            driver.js("document.cookie = arguments[0] + '; Path=/; SameSite=Strict';", cookie)  # replayed
            reload(driver)
            settle(driver, "facetrail")
            wait_for(driver, "signed out or revoked")
            assert "Record #3:" not in text(driver)
        finally:
            driver.quit()
    rt = Runtime(fake_db)
    sign_outs = [e.record for e in rt.log.list(AuditFilter(action="sign_out"))]
    assert [(r.operator, r.outcome) for r in sign_outs] == [("auditor1", "ok")]
    rt.db.close()


def test_a_shared_filter_link_opens_in_another_browser_after_sign_in(fake_db: str, browser: tuple[str, str]) -> None:
    with dashboard(fake_db) as url:
        first = WebDriver(*browser)
        try:
            first.get(f"{url}/match_log?operator=operator2&action=any")
            sign_in(first, "reviewer1")
            settle(first, "Match log")
            wait_for(first, "record(s). Times in your time zone")
            shared = str(first.js("return location.href;"))
            shown = text(first).split("record(s). Times in your time zone")[0].rsplit("\n", 1)[-1].strip()
        finally:
            first.quit()
        assert "operator=operator2" in shared and "ft_" not in shared
        second = WebDriver(*browser)  # another person's browser: no cookie, no state
        try:
            second.get(shared)
            sign_in(second, "auditor1")
            settle(second, "Match log")
            wait_for(second, "record(s). Times in your time zone")
            assert text(second).split("record(s). Times in your time zone")[0].rsplit("\n", 1)[-1].strip() == shown
            assert "operator=operator2" in str(second.js("return location.href;"))
        finally:
            second.quit()
