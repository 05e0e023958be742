"""The two-person rule (audit.trail.review), through AuditLog.review / match_status."""

from __future__ import annotations

import pytest

from audit.errors import MissingContext, RecordNotFound, ReviewRefused
from audit.trail import review as review_module
from audit.trail.log import AuditLog
from audit.trail.store import AuditFilter
from tests.audit.trail._helpers import candidate, record_fields


def search_record(operator: str = "alice", faces: tuple[str, ...] = ("f1", "f2")) -> dict[str, object]:
    fields = record_fields(0, operator=operator)
    fields["candidates"] = [candidate(f"s-{f}", f, 0.1 * r, r) for r, f in enumerate(faces, start=1)]
    return fields


def statuses(log: AuditLog, seq: int) -> dict[str | None, str]:
    return {c.face_id: c.status for c in log.match_status(seq).candidates}


def test_operator_cannot_confirm_own_match_and_refusal_is_recorded(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(ReviewRefused, match="two-person"):
        log.review(q, "alice", "confirm", face_id="f1")
    refusal = log.get(q + 1).record
    assert refusal.action == "refused" and refusal.outcome == "review_refused"
    assert refusal.target_seq == q and refusal.reviewer == "alice"
    assert statuses(log, q) == {"f1": "pending", "f2": "pending"}


def test_one_confirmation_is_not_enough_two_are(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f1", note="same scar")
    assert statuses(log, q)["f1"] == "pending"
    log.review(q, "rev2", "confirm", face_id="f1")
    assert statuses(log, q) == {"f1": "confirmed", "f2": "pending"}
    status = log.match_status(q).candidates[0]
    assert status.confirmations == ("rev1", "rev2") and status.subject_id == "s-f1"


def test_same_reviewer_twice_counts_once(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f2")
    log.review(q, "rev1", "confirm", face_id="f2")
    assert statuses(log, q)["f2"] == "pending"
    assert log.match_status(q).candidates[1].confirmations == ("rev1",)


def test_a_reject_vetoes(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f1")
    log.review(q, "rev2", "confirm", face_id="f1")
    log.review(q, "rev3", "reject", face_id="f1")
    assert statuses(log, q)["f1"] == "rejected"


def test_reviews_target_one_candidate(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(ReviewRefused, match="face_id"):
        log.review(q, "rev1", "confirm")  # two candidates: which one?
    with pytest.raises(ReviewRefused, match="no candidate"):
        log.review(q, "rev1", "confirm", face_id="nope")
    single = log.append(search_record(faces=("f9",))).seq
    entry = log.review(single, "rev1", "confirm")
    assert entry.record.target_face_id == "f9"
    with pytest.raises(ValueError):
        log.review(single, "rev1", "maybe")
    with pytest.raises(RecordNotFound):
        log.review(999, "rev1", "confirm")
    with pytest.raises(MissingContext):
        log.review(single, "", "confirm")
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [r.outcome for r in refused] == ["review_refused", "review_refused", "record_not_found",
                                           "missing_context"]


def test_no_match_and_non_queries_cannot_be_reviewed(log: AuditLog) -> None:
    q = log.append({**search_record(), "candidates": [], "outcome": "no_match"}).seq
    with pytest.raises(ReviewRefused):
        log.review(q, "rev1", "confirm")
    assert log.match_status(q).candidates == ()


def test_verify_pair_review(log: AuditLog) -> None:
    q = log.append({**record_fields(0), "action": "verify", "candidates": []}).seq
    log.review(q, "rev1", "confirm")
    log.review(q, "rev2", "confirm")
    assert statuses(log, q) == {None: "confirmed"}
    assert log.verify().ok


def test_review_functions_are_what_the_log_methods_run(log: AuditLog) -> None:
    q = log.append(search_record(faces=("f9",))).seq
    entry = review_module.review(log, q, "rev1", "confirm")
    assert entry.record.action == "review" and entry.record.target_face_id == "f9"
    review_module.review(log, q, "rev2", "confirm")
    assert review_module.match_status(log, q) == log.match_status(q)
    assert log.match_status(q).candidates[0].status == "confirmed"
