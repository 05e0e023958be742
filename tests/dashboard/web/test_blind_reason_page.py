"""AppTest of the Blind review page's decision form: a reason code is required, as on the Match log's review.

On the fake scene with an open blind batch (tests/dashboard/web/test_blind_review_page.py's ``batch_db``),
reviewer2 submits without a decision and a reason, then with a decision but no reason: each is refused on
the page, recorded, and the same item stays; with a reason the decision is recorded with its code.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from audit import REASON_CODES, AuditFilter, Runtime
from tests.dashboard.web.test_blind_review_page import batch_db, page_as, shown

__all__ = ["batch_db"]  # the fixture, used by name below

SUBMIT = "FormSubmitter:blind_form-Record decision"


def submit(at: AppTest, decision: str | None, reason: str | None) -> AppTest:
    if decision is not None:
        at.radio(key="blind_decision").set_value(decision)
    if reason is not None:
        at.selectbox(key="blind_reason").set_value(reason)
    return at.button(key=SUBMIT).click().run()


def test_the_decision_form_requires_a_reason_code(batch_db: str) -> None:
    at = page_as("reviewer2", "reviewer")
    reason = at.selectbox(key="blind_reason")
    assert list(reason.options) == list(REASON_CODES) and reason.value is None  # nothing preselected
    submit(at, None, None)
    assert any("choose a decision and a reason" in e.value for e in at.error), [e.value for e in at.error]
    assert "Item 1 of 6" in shown(at)
    submit(at, "confirm", None)
    assert any("choose a reason before" in e.value for e in at.error), [e.value for e in at.error]
    assert "Item 1 of 6" in shown(at)  # still the same item: nothing was decided
    submit(at, "confirm", REASON_CODES[1])
    assert not at.exception, at.exception
    assert "Item 2 of 6" in shown(at) and any("Decision recorded" in s.value for s in at.success)
    rt = Runtime(batch_db)
    try:
        (decided,) = [e.record for e in rt.log.list(AuditFilter(action="blind_review"))]
        refused = [e.record for e in rt.log.list(AuditFilter(action="refused"))
                   if e.record.details.get("attempted") == "blind_review"]
    finally:
        rt.close()
    assert (decided.reviewer, decided.decision, decided.details["reason_code"]) == ("reviewer2", "confirm",
                                                                                     REASON_CODES[1])
    assert [r.operator for r in refused] == ["reviewer2"] * 2  # the refusals name who was refused, and why
    assert [r.details["reason"].split(" before")[0] for r in refused] == ["choose a decision and a reason",
                                                                          "choose a reason"]


def test_other_without_a_note_is_refused_on_the_page(batch_db: str) -> None:
    at = page_as("reviewer2", "reviewer")
    submit(at, "reject", REASON_CODES[-1])
    assert any("needs a note" in e.value for e in at.error), [e.value for e in at.error]
    assert "Item 1 of 6" in shown(at)
    at.text_input(key="blind_note").set_value("the probe shows a printed photo")
    at.button(key=SUBMIT).click().run()
    assert "Item 2 of 6" in shown(at)
    rt = Runtime(batch_db)
    try:
        (decided,) = [e.record for e in rt.log.list(AuditFilter(action="blind_review"))]
    finally:
        rt.close()
    assert (decided.details["reason_code"], decided.note) == (REASON_CODES[-1], "the probe shows a printed photo")
