"""Review with evidence: one decision per reviewer and candidate, explicit reversals, reason codes, the photos
shown only to a record's reviewers and auditors (each showing recorded), a reviewer's own queue."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from audit import REASON_CODES, review_evidence, review_queue, submit_review
from audit.accounts import Forbidden
from audit.errors import ReviewRefused
from audit.session import AuditContext, AuditSession
from audit.trail.log import AuditLog
from audit.trail.store import AuditFilter
from core import EnrollItem, GalleryStore
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import actor_for
from tests.fakes import face_png

SAME = REASON_CODES[0]
DIFFERENT = REASON_CODES[2]


def gate(log: AuditLog, name: str, role: str = "reviewer") -> AuditSession:
    return AuditSession(log, AuditContext(), actor_for(log.db, name, role))


def search(log: AuditLog, faces: tuple[str, ...] = ("f1", "f2"), operator: str = "alice", i: int = 0) -> int:
    fields = record_fields(i, operator=operator)
    fields["candidates"] = [candidate(f"s-{f}", f, 0.1 * r, r) for r, f in enumerate(faces, start=1)]
    return log.append(fields).seq


def refusals(log: AuditLog) -> list[str]:
    return [str(e.record.details.get("reason")) for e in log.list(AuditFilter(action="refused"))]


def test_a_second_review_of_the_same_candidate_by_the_same_reviewer_is_refused_and_recorded(log: AuditLog) -> None:
    q = search(log)
    gate(log, "rev1").review(q, "confirm", face_id="f1", reason=SAME)
    for decision in ("confirm", "reject"):  # the same decision again, or a silent change of mind
        with pytest.raises(ReviewRefused, match="already reviewed candidate f1"):
            gate(log, "Rev1").review(q, decision, face_id="f1", reason=SAME)
    assert len([r for r in refusals(log) if "already reviewed" in r]) == 2
    assert log.match_status(q).candidates[0].confirmations == ("rev1",)
    gate(log, "rev1").review(q, "reject", face_id="f2", reason=DIFFERENT)  # another candidate is another decision


def test_a_reversal_is_explicit_recorded_as_such_and_replaces_the_reviewers_decision(log: AuditLog) -> None:
    q = search(log)
    first = gate(log, "rev1").review(q, "reject", face_id="f1", reason=DIFFERENT)
    assert log.match_status(q).candidates[0].status == "rejected"
    with pytest.raises(ReviewRefused, match="a reversal decides the opposite"):
        gate(log, "rev1").review(q, "reject", face_id="f1", reason=DIFFERENT, reverse=True)
    entry = gate(log, "rev1").review(q, "confirm", face_id="f1", reason=SAME, reverse=True)
    assert entry.record.details["reversal"] == {"reverses_seq": first.seq, "from": "reject"}
    assert entry.record.details["reason_code"] == SAME
    status = log.match_status(q).candidates[0]
    assert status.status == "pending" and status.rejections == () and status.confirmations == ("rev1",)
    with pytest.raises(ReviewRefused, match="no decision on candidate f2"):
        gate(log, "rev2").review(q, "confirm", face_id="f2", reason=SAME, reverse=True)


def test_a_contradicting_review_in_an_old_log_still_vetoes(log: AuditLog) -> None:
    q = search(log)
    actor = gate(log, "rev1")
    actor.review(q, "reject", face_id="f1")
    # a confirm after one's own reject, written before duplicates were refused: not a reversal, so the veto stands
    fields = {**log.get(q + 1).record.to_dict(), "decision": "confirm"}
    fields.pop("seq", None)
    log.append(fields)
    assert log.match_status(q).candidates[0].status == "rejected"


def test_submit_without_a_decision_or_a_reason_is_refused_and_recorded(log: AuditLog) -> None:
    q = search(log)
    with pytest.raises(ReviewRefused, match="choose a decision and a reason"):
        submit_review(gate(log, "rev1"), q, None, None, face_id="f1")
    with pytest.raises(ReviewRefused, match="choose a reason"):
        submit_review(gate(log, "rev1"), q, "confirm", None, face_id="f1")
    with pytest.raises(ReviewRefused, match="not one of the review reason codes"):
        submit_review(gate(log, "rev1"), q, "confirm", "looks like him", face_id="f1")
    with pytest.raises(ReviewRefused, match="needs a note"):
        submit_review(gate(log, "rev1"), q, "confirm", REASON_CODES[-1], note="  ", face_id="f1")
    assert len(refusals(log)) == 4 and log.match_status(q).candidates[0].status == "pending"
    entry = submit_review(gate(log, "rev1"), q, "confirm", SAME, face_id="f1")
    assert entry.record.action == "review" and entry.record.details["reason_code"] == SAME


@pytest.fixture
def photographed(log: AuditLog, fake_engine):
    """Gallery ``g`` with two subjects and their reference photos, and a search naming one face of each."""
    galleries = GalleryStore(log.db)
    galleries.create("g", fake_engine.config)
    photos = {s: face_png(s, 0) for s in ("ann", "bob")}
    galleries.enroll("g", [EnrollItem(s, fake_engine.embed(p), f"{s}.png", photo=p) for s, p in photos.items()])
    faces = {f["subject_id"]: f["face_id"] for f in galleries.faces("g")}
    fields = record_fields(1)
    fields["candidates"] = [candidate(s, faces[s], 0.1 * r, r) for r, s in enumerate(("ann", "bob"), start=1)]
    fields["details"] = {"top_k": 5, "threshold": 0.3,
                         "threshold_policy": {"status": "looser", "threshold": 0.3, "loosest": 0.25}}
    return galleries, log.append(fields).seq, faces, photos


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_a_reviewer_sees_the_reference_photo_of_a_candidate_and_the_showing_is_recorded(log, photographed) -> None:
    galleries, q, faces, photos = photographed
    rev1 = gate(log, "rev1")
    shown = review_evidence(rev1, galleries, q, faces["ann"])
    review_evidence(rev1, galleries, q, faces["ann"])  # the page redrawn: the same sign-in, recorded once
    assert shown.reference is not None and (pixels(shown.reference) == pixels(photos["ann"])).all()
    assert shown.subject_id == "ann" and shown.threshold == 0.3 and shown.looser_than_policy
    assert shown.probe is None and shown.probe_note == "not kept for this query"
    (read,) = log.list(AuditFilter(action="read_evidence"))
    assert read.record.operator == "rev1" and read.record.target_seq == q
    assert read.record.target_face_id == faces["ann"] and read.record.details["reference_photo"] is True
    auditor = review_evidence(gate(log, "audrey", "auditor"), galleries, q, faces["bob"])
    assert auditor.reference is not None and (pixels(auditor.reference) == pixels(photos["bob"])).all()
    review_evidence(gate(log, "rev1"), galleries, q, faces["ann"])  # another sign-in of rev1: recorded again
    assert [e.record.operator for e in log.list(AuditFilter(action="read_evidence"))] == ["rev1", "audrey", "rev1"]


def test_photos_are_refused_to_other_roles_and_for_faces_the_record_does_not_name(log, photographed,
                                                                                   fake_engine) -> None:
    galleries, q, faces, _ = photographed
    for role in ("operator", "admin"):
        with pytest.raises(Forbidden):
            review_evidence(gate(log, f"x{role}", role), galleries, q, faces["ann"])
    galleries.enroll("g", [EnrollItem("cy", fake_engine.embed(face_png("cy", 0)), "cy.png", photo=face_png("cy", 0))])
    other = next(f["face_id"] for f in galleries.faces("g") if f["subject_id"] == "cy")
    with pytest.raises(ReviewRefused, match="names no candidate"):  # a reviewer fishing for someone else's photo
        review_evidence(gate(log, "rev1"), galleries, q, other)
    assert len(list(log.list(AuditFilter(action="refused")))) == 3
    assert list(log.list(AuditFilter(action="read_evidence"))) == []


def test_an_erased_subjects_photo_is_gone_from_the_review(log, photographed) -> None:
    galleries, q, faces, _ = photographed
    galleries.delete_subject("g", "ann")
    shown = review_evidence(gate(log, "rev1"), galleries, q, faces["ann"])
    assert shown.reference is None and "erased" in shown.reference_note


def test_the_queue_is_mine_pending_oldest_first_with_age(log: AuditLog) -> None:
    old = search(log, ("f1", "f2"), i=1)
    mine = search(log, ("f3",), operator="rev1", i=2)  # rev1 ran it: not theirs to review
    new = search(log, ("f4",), i=3)
    gate(log, "rev1").review(old, "confirm", face_id="f1", reason=SAME)
    now = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    queue = review_queue(log, "REV1", now=now)
    assert [(q.seq, q.candidate) for q in queue] == [(old, "f2"), (new, "f4")]
    assert 1.99 < queue[0].age_hours <= 2.0
    assert mine not in [q.seq for q in review_queue(log, "rev1", now=now)]
    assert [(q.seq, q.candidate) for q in review_queue(log, "rev2", now=now)] == [
        (old, "f1"), (old, "f2"), (mine, "f3"), (new, "f4")]


def hist(group: dict[str, str], bins: list[tuple[float, float, int]]) -> list[dict[str, object]]:
    return [{"grouping": ",".join(group) or "overall", "group": group, "group_name": ",".join(group.values()) or "all",
             "bin_lo": lo, "bin_hi": hi, "genuine": 0, "impostor": n} for lo, hi, n in bins]


def save_evaluation(log: AuditLog, key: str, fingerprint: str) -> str:
    from audit.evaluation.report import EvaluationReport
    from audit.evaluation.store import EvaluationStore

    rows = (hist({}, [(0.0, 0.5, 9_990), (0.5, 0.8, 9), (0.8, 0.9, 1)])
            + hist({"sex": "F"}, [(0.0, 0.5, 990), (0.8, 0.9, 10)])
            + hist({"sex": "M"}, [(0.0, 0.5, 5_000)]))
    report = EvaluationReport(run={"run_id": f"run-{key}", "created": "2026-01-01T00:00:00Z", "dataset_fingerprint": fingerprint,
                                   "model_config": {"embedding_key": key}}, rates=(), histogram_rows=tuple(rows))
    return EvaluationStore(log.db).save(report, dataset_name="calib_set")


def designate(log: AuditLog, run_id: str) -> None:
    """Append the threshold policy record an admin writes to designate ``run_id``."""
    from audit.policy import policy_fields

    fields = {**record_fields(90, operator="admin1"), "action": "threshold_policy", "candidates": [],
              **policy_fields(None, None, None, "the board's designated evaluation", run_id)}
    log.append(fields)


def test_the_error_context_comes_from_the_designated_evaluation_overall_and_for_the_candidates_group(
        log: AuditLog, fake_engine) -> None:
    from core import GalleryStore

    galleries = GalleryStore(log.db)
    galleries.create("g", fake_engine.config)
    galleries.enroll("g", [EnrollItem("ann", fake_engine.embed(face_png("ann", 0)), "ann.png", {"sex": "F"},
                                      photo=face_png("ann", 0))])
    (face,) = galleries.faces("g")
    fields = record_fields(1)
    fields["candidates"] = [candidate("ann", face["face_id"], 0.15, 1)]  # similarity 0.85
    key = fake_engine.config.embedding_key
    fields["model_config"] = {"embedding_key": key, "threshold_source": {"dataset": "calib_set",
                                                                         "dataset_fingerprint": "fp-calib"}}
    q = log.append(fields).seq
    shown = review_evidence(gate(log, "rev1"), galleries, q, face["face_id"])
    assert shown.evaluation is None and shown.rates == ()  # no policy designates one: none shown
    other = save_evaluation(log, "another-model", "fp-calib")
    designate(log, other)  # a run of another configuration speaks for nothing this query did
    assert review_evidence(gate(log, "rev1"), galleries, q, face["face_id"]).evaluation is None
    newest = save_evaluation(log, key, "fp-calib")
    assert review_evidence(gate(log, "rev1"), galleries, q, face["face_id"]).evaluation is None  # stored, not designated
    designate(log, newest)
    shown = review_evidence(gate(log, "rev1"), galleries, q, face["face_id"])
    assert shown.evaluation is not None and "calib_set" in shown.evaluation
    assert f"run-{key}" in shown.evaluation
    overall, female = shown.rates  # the candidate is F: the M group is not hers
    assert (overall.group, overall.impostors_at_or_above, overall.impostor_pairs) == ("overall", 1, 10_000)
    assert (female.group, female.rate) == ("sex F", 10 / 1_000)
    assert overall.words() == "1 in 10,000 impostor pairs scored this high (about 1 in 10,000)"
    from audit import RateAtScore
    assert RateAtScore("x", 0, 167_620).words() == "fewer than 1 in 167,620 impostor pairs scored this high"


def test_statuses_of_many_queries_at_once_are_those_of_one_at_a_time(log: AuditLog) -> None:
    from audit.trail.review import match_statuses

    a, b = search(log, i=1), search(log, ("f3",), i=2)
    fields = record_fields(3)
    fields["outcome"] = "no_match"
    fields["candidates"] = []
    c = log.append(fields).seq
    gate(log, "rev1").review(a, "reject", face_id="f1", reason=DIFFERENT)
    gate(log, "rev1").review(a, "confirm", face_id="f1", reason=SAME, reverse=True)
    gate(log, "rev2").review(a, "confirm", face_id="f1", reason=SAME)
    gate(log, "rev2").review(b, "reject", face_id="f3", reason=DIFFERENT)
    targets = [log.get(s).record for s in (a, b, c)]
    assert [m.to_dict() for m in match_statuses(log, targets)] == [log.match_status(s).to_dict() for s in (a, b, c)]
    assert [c.status for c in log.match_status(a).candidates] == ["confirmed", "pending"]
