"""A blind decision's reason code (audit.blind.decide / submit_decision), from the reviewer's side.

The blind review screen asks for a reason code as the Match log's review does: the code is recorded
in the decision's ``details.reason_code``; a reason that is not a code, or "other" without a note, is
refused and recorded; a submission without a decision or a reason is refused and recorded and leaves
the item to decide. Queries, galleries and accounts as in tests/audit/test_blind_review.py.
"""

from __future__ import annotations

import pytest

from audit import (
    REASON_CODES,
    AuditContext,
    AuditLog,
    AuditSession,
    BlindItem,
    BlindReviewRefused,
    blind_batches,
    blind_decide,
    blind_next,
    blind_submit,
    open_batch,
    reveal,
)
from audit.trail.store import AuditFilter
from core import Database, EnrollItem, GalleryStore
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png

OTHER = REASON_CODES[-1]


@pytest.fixture
def served(db: Database, log: AuditLog, fake_engine) -> tuple[AuditSession, BlindItem]:
    """An open batch over two searches of alice (fillers from gallery ``fillers``); rev1 and their first item."""
    store = GalleryStore(db)
    store.create("fillers", make_config())
    store.enroll("fillers", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in
                             (f"filler{i}" for i in range(6))])
    seqs = []
    for i in (1, 2):
        fields = record_fields(i, operator="alice")
        fields["candidates"] = [candidate(f"s{i}-0", f"f{i}-0", 0.05, 1)]
        seqs.append(log.append(fields).seq)
    carol = AuditSession(log, AuditContext(purpose="reviewer audit"), actor_for(db, "carol", "auditor"))
    open_batch(carol, store, seqs, "fillers")
    rev1 = AuditSession(log, AuditContext(purpose="reviewer audit"), actor_for(db, "rev1", "reviewer"))
    item = blind_next(rev1)
    assert item is not None
    return rev1, item


def decisions(log: AuditLog) -> list:
    return [e.record for e in log.list(AuditFilter(action="blind_review"))]


def refusals(log: AuditLog) -> list:
    return [e.record for e in log.list(AuditFilter(action="refused"))]


def test_the_reason_code_is_recorded_with_the_decision(log: AuditLog, served) -> None:
    rev1, item = served
    entry = blind_submit(rev1, item.ticket, "reject", REASON_CODES[2])
    assert entry.record.details["reason_code"] == REASON_CODES[2]
    (decided,) = decisions(log)
    assert (decided.decision, decided.details["reason_code"], decided.details["mode"]) == ("reject", REASON_CODES[2],
                                                                                          "blind")
    assert not refusals(log)


def test_a_submission_without_a_reason_or_a_decision_is_refused_recorded_and_the_item_stays(log: AuditLog,
                                                                                            served) -> None:
    rev1, item = served
    with pytest.raises(BlindReviewRefused, match="choose a reason before"):
        blind_submit(rev1, item.ticket, "confirm", None)
    with pytest.raises(BlindReviewRefused, match="choose a decision and a reason"):
        blind_submit(rev1, item.ticket, None, None)
    with pytest.raises(BlindReviewRefused, match="choose a decision before"):
        blind_submit(rev1, item.ticket, None, REASON_CODES[0])
    assert not decisions(log)  # nothing decided: the item is still to decide
    assert [(r.details["attempted"], r.outcome) for r in refusals(log)] == [("blind_review", "blind_review_refused")] * 3
    again = blind_next(rev1)
    assert again is not None and again.ticket == item.ticket  # served again, same ticket: the clock was not reset
    blind_submit(rev1, item.ticket, "confirm", REASON_CODES[0])
    assert [d.details["reason_code"] for d in decisions(log)] == [REASON_CODES[0]]


def test_a_made_up_reason_is_refused_and_recorded(log: AuditLog, served) -> None:
    rev1, item = served
    with pytest.raises(BlindReviewRefused, match="not one of the review reason codes"):
        blind_decide(rev1, item.ticket, "confirm", reason="looks like the suspect to me")
    (refused,) = refusals(log)
    assert refused.details["attempted"] == "blind_review"
    assert refused.details["reason_code"] == "looks like the suspect to me"  # what was asked, recorded as asked
    assert not decisions(log)


def test_other_needs_a_note(log: AuditLog, served) -> None:
    rev1, item = served
    for note in (None, "   "):
        with pytest.raises(BlindReviewRefused, match="needs a note"):
            blind_submit(rev1, item.ticket, "reject", OTHER, note=note)
    assert not decisions(log) and len(refusals(log)) == 2
    blind_submit(rev1, item.ticket, "reject", OTHER, note="the probe is a photo of a poster")
    (decided,) = decisions(log)
    assert (decided.details["reason_code"], decided.note) == (OTHER, "the probe is a photo of a poster")


def test_the_reason_survives_the_reveal_and_a_decision_without_one_still_counts(log: AuditLog, served,
                                                                                db: Database) -> None:
    rev1, item = served
    blind_decide(rev1, item.ticket, "confirm")  # the CLI's decide: no reason (it keeps working)
    second = blind_next(rev1)
    assert second is not None
    blind_submit(rev1, second.ticket, "reject", REASON_CODES[3])
    carol = AuditSession(log, AuditContext(purpose="reviewer audit"), actor_for(db, "carol", "auditor"))
    reveal(carol, blind_batches(log)[0].batch_id)
    assert [d.details.get("reason_code") for d in decisions(log)] == [None, REASON_CODES[3]]
