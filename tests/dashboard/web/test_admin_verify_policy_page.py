"""Verify honours the deployment's threshold policy on the page, as Search does (AppTest, fake face models).

Looser than the policy: the page shows the warning and asks for a written reason; without one the
verification is refused and recorded with the warning shown; with one it runs and its record is
flagged. Past the hard limit it is refused whatever the reason.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from audit import Runtime
from tests.dashboard.web.test_threshold_policy_page import REASON, env, page, records, steps, still  # noqa: F401

pytestmark = [pytest.mark.model]

VERIFY = "app_pages/verify.py"


def verify_default() -> float:
    at = page(VERIFY)
    return float(at.slider(key="verify_threshold").value)


def verify(at: AppTest, threshold: float, reason: str | None) -> AppTest:
    at.slider(key="verify_threshold").set_value(threshold).run()
    at.text_input(key="verify_purpose").input("check the badge photo against the still")
    at.text_input(key="verify_case").input("CR-2026-0042")
    if reason is not None:
        at.text_area(key="verify_threshold_reason").input(reason)
    at.file_uploader(key="verify_first").set_value(("a.png", still(), "image/png"))
    at.file_uploader(key="verify_second").set_value(("b.png", still(), "image/png"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_a_looser_verification_needs_a_reason_and_is_flagged(env: tuple[str, float]) -> None:  # noqa: F811
    db, _ = env
    default = verify_default()
    looser = steps(default, 1.15)
    assert default < looser <= default * 1.25
    at = page(VERIFY)
    at.slider(key="verify_threshold").set_value(looser).run()
    (shown,) = [w.value for w in at.warning if "looser than this deployment" in w.value]
    assert f"Threshold {looser:.3f}" in shown and at.text_area(key="verify_threshold_reason") is not None
    at = verify(at, looser, reason=None)
    assert any("needs a written reason" in e.value for e in at.error)
    refusal = records(db)[-1]
    assert (refusal.action, refusal.outcome, refusal.details["attempted"]) == (
        "refused", "threshold_reason_required", "verify")
    assert refusal.details["threshold_policy"]["warning"] == shown
    assert not [r for r in records(db) if r.action == "verify"]
    at = verify(page(VERIFY), looser, REASON)
    (done,) = [r for r in records(db) if r.action == "verify"]
    flag = done.details["threshold_policy"]
    assert (flag["status"], flag["reason"], flag["warning"]) == ("looser", REASON, shown)
    assert any("flagged on the record" in w.value for w in at.warning)


def test_past_the_hard_limit_a_verification_is_refused_whatever_the_reason(env: tuple[str, float]) -> None:  # noqa: F811
    db, _ = env
    beyond = steps(verify_default(), 1.6)
    at = page(VERIFY)
    at.slider(key="verify_threshold").set_value(beyond).run()
    assert any("refused whatever the reason" in e.value for e in at.error)
    assert not at.text_area
    verify(at, beyond, reason=None)
    assert (records(db)[-1].action, records(db)[-1].outcome) == ("refused", "threshold_beyond_limit")
    assert not [r for r in Runtime(db).log.list() if r.record.action == "verify"]


def test_a_looser_verification_is_flagged_in_the_match_log(env: tuple[str, float]) -> None:  # noqa: F811
    db, _ = env
    looser = steps(verify_default(), 1.15)
    verify(page(VERIFY), looser, REASON)
    (done,) = [e for e in Runtime(db).log.list() if e.record.action == "verify"]
    log = page("app_pages/match_log.py", "auditor1", "auditor")
    log.selectbox(key="matchlog_action").set_value("verify")  # the Match log opens on searches
    log.selectbox(key="matchlog_policy").set_value("looser").run()
    assert not log.exception, log.exception
    listed = log.dataframe[0].value
    assert listed["seq"].tolist() == [done.seq] and listed["threshold_policy"].tolist() == ["looser"]
