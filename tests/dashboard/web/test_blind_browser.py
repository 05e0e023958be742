"""A real browser (headless Chromium) on the Blind review page: what the reviewer's screen shows.

reviewer2 signs in on the running dashboard (fake scene, with a blind batch over three searches
and three fillers), opens Blind review, and decides the first item (refused until a reason code is chosen). The whole text of the page
is read from the browser: no score, rank, candidate, case or earlier verdict is on it.
"""

from __future__ import annotations

import re
import time

import pytest

from audit import REASON_CODES, AuditContext, AuditFilter, Runtime, open_batch
from core import EnrollItem
from tests.auth import actor_for
from tests.conftest import make_config
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
from tests.fakes import face_png

pytestmark = pytest.mark.slow

HIDDEN = ("0.950000", "0.050000", "0.95", "face0", "Person_", "reviewer1", "confirmed", "rejected", "pending",
          "operator1", "operator3", "CR-", "arrest_photos", "vol")


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    return chromium_or_skip()


def test_the_reviewers_screen_in_a_real_browser(fake_db: str, browser: tuple[str, str], fake_engine) -> None:
    rt = Runtime(fake_db)
    try:
        rt.galleries.create("volunteers", make_config())
        rt.galleries.enroll("volunteers", [EnrollItem(f"vol{k}", fake_engine.embed(face_png(f"vol{k}")), f"v{k}.png")
                                           for k in range(6)])
        open_batch(rt.session(AuditContext(), actor_for(rt.db, "auditor1", "auditor")), rt.galleries, [1, 3, 4],
                   "volunteers", filler_share=0.5)
    finally:
        rt.close()
    with dashboard(fake_db) as url:
        driver = WebDriver(*browser)
        try:
            driver.get(url)
            sign_in(driver, "reviewer2")
            driver.click_text('a[data-testid="stSidebarNavLink"]', "Blind review")
            settle(driver, "Blind review")
            wait_for(driver, "Item 1 of 6")
            text = main_text(driver)
            for hidden in HIDDEN:
                assert hidden not in text, hidden
            assert not re.search(r"rank\W*\d|similarity\W*\d|distance\W*\d", text, re.IGNORECASE)
            assert "No probe photo: not kept" in text and "No reference photo: not kept at enrolment" in text
            assert not driver.js("return document.querySelectorAll('[data-testid=\"stDataFrame\"]').length;")
            driver.click_text('[role="radiogroup"] label', "reject")
            driver.click_text("button", "Record decision")
            wait_for(driver, "choose a reason before")  # a reason code is required, as on the Match log's review
            assert "Item 1 of 6" in main_text(driver)
            box = driver.find('input[role="combobox"][aria-label="Reason"]')
            driver.cmd("POST", f"/element/{box}/click", {})
            driver.cmd("POST", f"/element/{box}/value", {"text": REASON_CODES[2]})
            time.sleep(0.8)  # let the list filter to the option typed
            driver.cmd("POST", f"/element/{box}/value", {"text": "\ue007"})  # Enter
            time.sleep(1.0)
            driver.click_text("button", "Record decision")
            wait_for(driver, "Item 2 of 6")
            assert "Decision recorded as audit record" in main_text(driver)
            assert not exceptions_on_page(driver)
        except TimeoutError as err:  # not the dashboard's start-up timeout: say what the page showed
            raise AssertionError(f"{err}; the page shows: {main_text(driver)[:1500]}") from None
        finally:
            driver.quit()
    rt = Runtime(fake_db)
    try:
        (decision,) = rt.log.list(AuditFilter(action="blind_review"))
        assert decision.record.reviewer == "reviewer2" and decision.record.decision == "reject"
        assert decision.record.details["reason_code"] == REASON_CODES[2]
        assert decision.record.details["auth"]["method"] == "dashboard_session"
    finally:
        rt.close()
