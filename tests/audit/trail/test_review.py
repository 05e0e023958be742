"""The two-person rule (audit.trail.review): reviews by authenticated reviewer accounts, through the gate."""

from __future__ import annotations

import pytest

from audit.accounts import Forbidden, NotAuthenticated, OperatorMismatch
from audit.errors import RecordNotFound, ReviewRefused
from audit.session import AuditContext, AuditSession
from audit.trail import review as review_module
from audit.trail.log import AuditLog
from audit.trail.store import AuditFilter
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import actor_for


def search_record(operator: str = "alice", faces: tuple[str, ...] = ("f1", "f2")) -> dict[str, object]:
    fields = record_fields(0, operator=operator)
    fields["candidates"] = [candidate(f"s-{f}", f, 0.1 * r, r) for r, f in enumerate(faces, start=1)]
    return fields


def statuses(log: AuditLog, seq: int) -> dict[str | None, str]:
    return {c.face_id: c.status for c in log.match_status(seq).candidates}


def reviewer(log: AuditLog, name: str, role: str = "reviewer", *, claim: str | None = None,
             method: str = "password_session") -> AuditSession:
    """The gate for account ``name`` (signed in) on ``log``."""
    return AuditSession(log, AuditContext(claimed_operator=claim), actor_for(log.db, name, role, method=method))


def test_operator_cannot_confirm_own_match_and_refusal_is_recorded(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(ReviewRefused, match="two-person"):
        reviewer(log, "alice").review(q, "confirm", face_id="f1")  # alice ran q (now a reviewer, say)
    refusal = log.get(q + 1).record
    assert refusal.action == "refused" and refusal.outcome == "review_refused"
    assert refusal.target_seq == q and refusal.reviewer == "alice" and refusal.operator == "alice"
    assert statuses(log, q) == {"f1": "pending", "f2": "pending"}


@pytest.mark.parametrize("spelling", ["operator3 ", "Operator3", " OPERATOR3", "ｏｐｅｒａｔｏｒ３"])
def test_case_and_space_variants_of_the_operator_are_the_operator(log: AuditLog, spelling: str) -> None:
    q = log.append(search_record(operator="operator3")).seq
    with pytest.raises(ReviewRefused, match="two-person"):
        reviewer(log, spelling).review(q, "confirm", face_id="f1")  # the account of that name is operator3
    # naming the operator as --reviewer while signed in as someone else: refused too, and not counted
    with pytest.raises(OperatorMismatch):
        reviewer(log, "rev1", claim=spelling).review(q, "confirm", face_id="f1")
    assert statuses(log, q)["f1"] == "pending"
    assert [e.record.outcome for e in log.list(AuditFilter(action="refused"))] == ["review_refused",
                                                                                   "operator_mismatch"]


def test_one_confirmation_is_not_enough_two_are(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    reviewer(log, "rev1").review(q, "confirm", face_id="f1", note="same scar")
    assert statuses(log, q)["f1"] == "pending"
    reviewer(log, "rev2").review(q, "confirm", face_id="f1")
    assert statuses(log, q) == {"f1": "confirmed", "f2": "pending"}
    status = log.match_status(q).candidates[0]
    assert status.confirmations == ("rev1", "rev2") and status.subject_id == "s-f1"


def test_same_reviewer_twice_counts_once_under_any_spelling(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    reviewer(log, "rev1").review(q, "confirm", face_id="f2")
    with pytest.raises(ReviewRefused, match="already reviewed candidate f2"):  # a second review is refused
        reviewer(log, "REV1 ").review(q, "confirm", face_id="f2")
    assert statuses(log, q)["f2"] == "pending"
    assert log.match_status(q).candidates[1].confirmations == ("rev1",)


def test_a_reject_vetoes(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    reviewer(log, "rev1").review(q, "confirm", face_id="f1")
    reviewer(log, "rev2").review(q, "confirm", face_id="f1")
    reviewer(log, "rev3").review(q, "reject", face_id="f1")
    assert statuses(log, q)["f1"] == "rejected"


def test_only_signed_in_reviewers_review(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(NotAuthenticated, match="not signed in"):
        AuditSession(log, AuditContext()).review(q, "confirm", face_id="f1")
    with pytest.raises(Forbidden, match="'review'"):
        reviewer(log, "op2", "operator").review(q, "confirm", face_id="f1")
    with pytest.raises(ReviewRefused, match="own password"):  # an admin can issue tokens for any account
        reviewer(log, "rev1", method="api_token").review(q, "confirm", face_id="f1")
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [(r.outcome, r.operator) for r in refused] == [("not_authenticated", None), ("forbidden", "op2"),
                                                         ("review_refused", "rev1")]
    assert statuses(log, q)["f1"] == "pending"


def test_free_text_and_token_reviews_in_the_log_do_not_count(log: AuditLog) -> None:
    """Records that claim a review without an authenticated person behind it (appended below the gate)."""
    q = log.append(search_record()).seq
    for name, auth in (("rev1", None), ("rev2", {"method": "api_token", "credential": "tok_x"})):
        details = {} if auth is None else {"auth": auth}
        log.append({"action": "review", "outcome": "ok", "operator": name, "reviewer": name, "target_seq": q,
                    "target_face_id": "f1", "decision": "confirm", "details": details})
    assert statuses(log, q)["f1"] == "pending"
    assert log.match_status(q).candidates[0].confirmations == ()


def test_reviews_target_one_candidate(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    rev1 = reviewer(log, "rev1")
    with pytest.raises(ReviewRefused, match="face_id"):
        rev1.review(q, "confirm")  # two candidates: which one?
    with pytest.raises(ReviewRefused, match="no candidate"):
        rev1.review(q, "confirm", face_id="nope")
    single = log.append(search_record(faces=("f9",))).seq
    entry = rev1.review(single, "confirm")
    assert entry.record.target_face_id == "f9" and entry.record.reviewer == "rev1"
    assert entry.record.details["auth"]["method"] == "password_session"
    with pytest.raises(ValueError):
        rev1.review(single, "maybe")
    with pytest.raises(RecordNotFound):
        rev1.review(999, "confirm")
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [r.outcome for r in refused] == ["review_refused", "review_refused", "record_not_found"]


def test_no_match_and_non_queries_cannot_be_reviewed(log: AuditLog) -> None:
    q = log.append({**search_record(), "candidates": [], "outcome": "no_match"}).seq
    with pytest.raises(ReviewRefused):
        reviewer(log, "rev1").review(q, "confirm")
    assert log.match_status(q).candidates == ()


def test_verify_pair_review(log: AuditLog) -> None:
    q = log.append({**record_fields(0), "action": "verify", "candidates": []}).seq
    reviewer(log, "rev1").review(q, "confirm")
    reviewer(log, "rev2").review(q, "confirm")
    assert statuses(log, q) == {None: "confirmed"}
    assert log.verify().ok


def test_review_functions_are_what_the_session_and_log_methods_run(log: AuditLog) -> None:
    q = log.append(search_record(faces=("f9",))).seq
    entry = review_module.review(reviewer(log, "rev1"), q, "confirm")
    assert entry.record.action == "review" and entry.record.target_face_id == "f9"
    review_module.review(reviewer(log, "rev2"), q, "confirm")
    assert review_module.match_status(log, q) == log.match_status(q)
    assert log.match_status(q).candidates[0].status == "confirmed"
