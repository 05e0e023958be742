"""A real browser (headless Chromium) on the review screen of the match log, as a reviewer.

reviewer2 signs in on the running dashboard (fake scene plus a search with both photos kept, run at a
threshold looser than the policy), opens the search from their queue and sees the probe and the
reference photo side by side with the score's error context; nothing is preselected; the controls
are native widgets reached by Tab; a submit without a decision, then without a reason, is refused;
a review is recorded once, and a second review of the same candidate is not offered.
"""

from __future__ import annotations

import time

import pytest

from audit import REASON_CODES, AuditFilter, Runtime
from tests.dashboard.web.browser import (
    WebDriver,
    chromium_or_skip,
    dashboard,
    exceptions_on_page,
    main_text,
    settle,
    sign_in,
    wait_for,
)
from tests.dashboard.web.review_scene import add_review_scene

pytestmark = pytest.mark.slow

TAB, ENTER = "\ue004", "\ue007"


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    return chromium_or_skip()


def wait_until(driver: WebDriver, script: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not driver.js(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not shown within {timeout} s; the page shows: {main_text(driver)[-2500:]}")
        time.sleep(0.3)


def choose(driver: WebDriver, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a combobox: type the option, press Enter)."""
    box = driver.find(f'input[role="combobox"][aria-label="{label}"]')
    driver.cmd("POST", f"/element/{box}/click", {})
    driver.cmd("POST", f"/element/{box}/value", {"text": option})
    time.sleep(0.8)  # let the list filter to the option typed
    driver.cmd("POST", f"/element/{box}/value", {"text": ENTER})


def press_tab(driver: WebDriver) -> None:
    driver.cmd("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": [
        {"type": "keyDown", "value": TAB}, {"type": "keyUp", "value": TAB}]}]})


FOCUSED = ("const e = document.activeElement; return e ? [e.tagName, e.getAttribute('type') || '', "
           "e.getAttribute('aria-label') || e.innerText.trim().slice(0, 40)] : null;")


def test_a_reviewer_reviews_with_evidence_in_a_real_browser(fake_db: str, browser: tuple[str, str],
                                                            fake_engine) -> None:
    scene = add_review_scene(fake_db, fake_engine)
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.cmd("POST", "/window/rect", {"width": 1400, "height": 1600})
            driver.get(url)
            sign_in(driver, "reviewer2")
            driver.click_text('a[data-testid="stSidebarNavLink"]', "Match log")
            settle(driver, "Match log")
            wait_for(driver, "Pending for me")
            time.sleep(1.0)
            choose(driver, "Open from my queue (oldest first)", "rank 1 Ann_Example")
            wait_for(driver, f"Opened from your queue: record #{scene.seq}.")
            wait_for(driver, "How often different people score this high")
            # both photos, really drawn by the browser
            wait_until(driver, "const i = [...document.querySelectorAll('[data-testid=\"stImage\"] img')];"
                               "return i.length === 2 && i.every(x => x.complete && x.naturalWidth > 0);",
                       "two loaded photos")
            text = main_text(driver)
            assert "Threshold used: 0.5000" in text and "looser than the deployment's policy" in text
            assert "sex F" in text and "impostor pairs" in text and "fake_set" in text
            assert driver.js("return document.querySelectorAll('[role=\"radiogroup\"] input:checked').length;") == 0

            # keyboard: from the first decision option, Tab reaches the reason, the note and the submit button
            driver.js("document.querySelector('[role=\"radiogroup\"] input[type=\"radio\"]').focus();")
            assert tuple(driver.js(FOCUSED))[:2] == ("INPUT", "radio")  # a native radio button takes the focus
            reached = []
            for _ in range(8):
                press_tab(driver)
                reached.append(tuple(driver.js(FOCUSED) or ()))
            assert any(t == "INPUT" and lab.startswith("Reason") for t, _, lab in reached), reached
            assert any(t == "INPUT" and lab.startswith("Note") for t, _, lab in reached), reached
            assert any(t == "BUTTON" and lab == "Record review" for t, _, lab in reached), reached

            driver.click_text("button", "Record review")
            wait_for(driver, "choose a decision and a reason")
            driver.click_text('[role="radiogroup"] label', "Same person (confirm)")
            driver.click_text("button", "Record review")
            wait_for(driver, "choose a reason before submitting")
            choose(driver, "Reason", REASON_CODES[0])
            time.sleep(1.0)
            driver.click_text("button", "Record review")
            wait_for(driver, "Review recorded as audit record")
            wait_for(driver, "You already decided 'confirm' on this candidate")
            assert f"Record #{scene.seq}: search" in main_text(driver)  # still the record reviewed
            assert not driver.js("return [...document.querySelectorAll('button')]"
                                 ".some(b => b.innerText.trim() === 'Record review');")
            assert "Reverse my decision (to reject)" in main_text(driver)
            assert not exceptions_on_page(driver)
        finally:
            driver.quit()
    log = Runtime(fake_db).log
    (done,) = [e.record for e in log.list(AuditFilter(action="review", target_seq=scene.seq))]
    assert (done.reviewer, done.decision, done.details["reason_code"]) == ("reviewer2", "confirm", REASON_CODES[0])
    assert done.target_face_id == scene.faces["Ann_Example"]
    refused = [e.record for e in log.list(AuditFilter(action="refused", target_seq=scene.seq))]
    assert len(refused) == 2  # the two incomplete submits, recorded
