"""Erasing a subject after a blind batch ran to its reveal (audit.blind, audit.trail.sealed), from the outside.

The attacker has every file facetrail wrote (the database, its write-ahead log, the key store,
the audit key and the blind key file, whose batch key the reveal publishes anyway) and knows
the erased subjects' ids and face ids from before. One erased subject was a candidate the
batch reviewed, the other a filler's. Real engine code, gallery store and audit trail; only
the face models are fake.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audit import (
    AuditContext,
    AuditedEngine,
    AuditLog,
    AuditSession,
    BlindReviewRefused,
    blind_batches,
    blind_decide,
    blind_face_image,
    blind_next,
    open_batch,
    reveal,
    verify_reveal,
)
from audit.evaluation.reviewers import reviewer_rates
from audit.trail.sealed import ERASED
from audit.trail.store import AuditFilter
from core import Database, EnrollItem, GalleryStore
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="blind erasure test", case_ref="DSAR-9", legal_basis="GDPR art. 17")
WHY = AuditContext(purpose="data subject request DSAR-9", case_ref="DSAR-9")
SUBJECTS = [f"Jane_Roe_{i:02d}" for i in range(4)]
FILLERS = [f"Filler_Doe_{i:02d}" for i in range(8)]


def files_written(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def gate(log: AuditLog, name: str, role: str, context: AuditContext = CTX) -> AuditSession:
    return AuditSession(log, context, actor_for(log.db, name, role))


def opened(root: Path, fake_engine) -> tuple[Database, AuditLog, GalleryStore, AuditedEngine, dict[str, int], str]:
    """Galleries ``g`` (searched) and ``fillers`` (photos kept); four searches of two candidates; a batch opened."""
    db = Database(root / "ft.duckdb")
    log = AuditLog(db, key_path=root / "ft.duckdb.audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(gate(log, "root", "admin"), fake_engine, galleries)
    for name, subjects in (("g", SUBJECTS), ("fillers", FILLERS)):
        admin.create_gallery(name, fake_engine.config)
        admin.enroll(name, [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png", photo=face_png(s))
                            for s in subjects])
    operator = AuditedEngine(gate(log, "olga", "operator"), fake_engine, galleries)
    seqs = {s: operator.search("g", face_png(s, 3), top_k=2).seq for s in SUBJECTS}
    batch_id = open_batch(gate(log, "audrey", "auditor"), galleries, list(seqs.values()), "fillers",
                          filler_share=0.5).record.details["batch_id"]
    return db, log, galleries, admin, seqs, batch_id


def decide_all(log: AuditLog, name: str) -> None:
    """Reviewer ``name`` decides every item left: rita rejects fillers and names each item's subject in a note."""
    batch = blind_batches(log)[0]
    session = gate(log, name, "reviewer")
    while (item := blind_next(session)) is not None:
        p = next(i for i in batch.items if batch.item_id(name, i.index) == item.item_id)
        decision = "reject" if name == "rita" and p.filler else "confirm"
        blind_decide(session, item.ticket, decision, note=f"looks like {p.subject_id}" if name == "rita" else None)


@pytest.fixture
def revealed(tmp_path: Path, fake_engine):
    """:func:`opened`, every item decided by rita and ravi (:func:`decide_all`), then revealed."""
    db, log, galleries, admin, seqs, batch_id = opened(tmp_path, fake_engine)
    plan = {i.index: i for i in blind_batches(log)[0].items}
    decide_all(log, "rita")
    decide_all(log, "ravi")
    reveal_seq = reveal(gate(log, "audrey", "auditor"), batch_id).seq
    return tmp_path, db, log, galleries, admin, seqs, batch_id, plan, reveal_seq


def test_an_erased_subject_of_a_revealed_blind_batch_leaves_no_id_in_any_file(revealed, fake_engine) -> None:
    root, db, log, galleries, admin, seqs, batch_id, plan, reveal_seq = revealed
    victim = SUBJECTS[1]  # a candidate of its own search, reviewed in the batch
    filler = next(i for i in plan.values() if i.filler)  # a filler's subject, erased from the filler gallery
    victims = {("g", victim), ("fillers", filler.subject_id)}
    faces = {i.face_id for i in plan.values() if (i.gallery, i.subject_id) in victims}
    assert victim in {i.subject_id for i in plan.values() if not i.filler} and len(faces) >= 2
    # before: the auditor reads the revealed plan and its decisions in clear (so this test can fail) ...
    shown = log.get(reveal_seq).record.details
    assert [(i["face_id"], i["subject_id"]) for i in shown["plan"]["items"]] == [
        (plan[k].face_id, plan[k].subject_id) for k in sorted(plan)]
    assert {d["face_id"] for d in shown["decisions"]} == {i.face_id for i in plan.values()}
    notes = [e.record.note for e in log.list(AuditFilter(action="blind_review")) if e.record.note]
    assert f"looks like {victim}" in notes
    rates = reviewer_rates(log).to_dict()
    rita = next(r for r in rates["reviewers"] if r["reviewer"] == "rita")
    assert rita["false_confirms"] == 0 and rita["filler_decisions"] == sum(i.filler for i in plan.values())
    statuses = {s: log.match_status(seq) for s, seq in seqs.items()}
    assert {c.status for st in statuses.values() for c in st.candidates} == {"confirmed"}
    # ... while the signed bytes hold none of them: the plan's tokens are what the commitment and the reveal cover
    signed = b"".join(e.canonical for e in log.list())
    for value in {victim, filler.subject_id} | faces:
        assert value.encode() not in signed
    assert verify_reveal(log, batch_id) == len(shown["decisions"])

    erasures = {}
    for gallery, subject in sorted(victims):
        eraser = AuditedEngine(gate(log, "dora", "admin", WHY), admin.engine, galleries)
        erasures[subject] = eraser.delete_subject(gallery, subject).seq
    vectors = [fake_engine.embed(face_png(s)).vector.tobytes() for _, s in victims]
    assert log.verify().ok
    db.close()

    clues = {victim.encode(), filler.subject_id.encode(), *vectors, *(base64.b64encode(v) for v in vectors)}
    for path, data in files_written(root).items():
        for clue in clues:
            assert clue not in data, f"{clue[:24]!r} of an erased subject is in {path.name}"
    reopened = Database(root / "ft.duckdb")
    log2 = AuditLog(reopened, key_path=root / "ft.duckdb.audit-key")
    assert log2.verify().ok
    # a reader without the blind key file checks the reveal from the records alone, as before the erasure
    outsider = AuditLog(reopened, key_path=root / "elsewhere" / "key")
    assert verify_reveal(outsider, batch_id) == len(shown["decisions"])
    # the revealed plan, its decisions and the notes read "erased" for the erased subjects, with the erasure
    entry = log2.get(reveal_seq)
    items = entry.record.details["plan"]["items"]
    for i in items:
        known = plan[i["index"]]
        gone = (known.gallery, known.subject_id) in victims
        assert (i["face_id"], i["subject_id"]) == ((ERASED, ERASED) if gone else (known.face_id, known.subject_id))
    by = {e.path: e.erasure for e in entry.erased}
    erased_items = [k for k, i in enumerate(items) if i["subject_id"] == ERASED]
    assert {f"$.details.plan.items[{k}].subject_id" for k in erased_items} <= set(by)
    assert {e.seq for e in by.values() if e} == set(erasures.values())
    assert {d["face_id"] for d in entry.record.details["decisions"]} == (
        {i.face_id for i in plan.values()} - faces) | {ERASED}
    notes = [e.record.note for e in log2.list(AuditFilter(action="blind_review")) if e.record.note]
    assert ERASED in notes and not any(victim in n or filler.subject_id in n for n in notes)
    kept = {f"looks like {i.subject_id}" for i in plan.values() if (i.gallery, i.subject_id) not in victims}
    assert kept and kept <= set(notes)  # the other subjects' notes read in clear
    # the batch as the service reads it: the erased items read "erased", the others in clear
    batch = blind_batches(log2)[0]
    assert {i.subject_id for i in batch.items} == {i.subject_id for i in plan.values()
                                                   if (i.gallery, i.subject_id) not in victims} | {ERASED}
    # the reviewers' error rates and the two-person rule count as before
    assert reviewer_rates(log2).to_dict() == rates
    for s, seq in seqs.items():
        assert [c.status for c in log2.match_status(seq).candidates] == [c.status for c in statuses[s].candidates]
    # and an excerpt of the log's records made now holds no id of theirs either
    dumped = json.dumps([e.record.to_dict() for e in log2.list()])
    assert victim not in dumped and filler.subject_id not in dumped


def test_a_batch_over_a_search_whose_candidate_was_erased_is_refused(revealed) -> None:
    _, db, log, galleries, admin, seqs, _, _, _ = revealed
    AuditedEngine(gate(log, "dora", "admin", WHY), admin.engine, galleries).delete_subject("g", SUBJECTS[2])
    hit = next(seq for seq in seqs.values()
               if any(c.subject_id == ERASED for c in log.get(seq).record.candidates))
    with pytest.raises(BlindReviewRefused, match="erased"):
        open_batch(gate(log, "audrey", "auditor"), galleries, [hit], "fillers")
    refused = log.list(AuditFilter(action="refused"))[-1].record
    assert refused.outcome == "blind_review_refused" and f"record {hit} has candidates" in json.dumps(refused.to_dict())
    assert len(log.list(AuditFilter(action="blind_batch"))) == 1  # the revealed one only


def test_a_subject_erased_while_the_batch_is_open_is_erased_from_the_reveal_too(tmp_path: Path, fake_engine) -> None:
    db, log, galleries, admin, seqs, batch_id = opened(tmp_path, fake_engine)
    victim = SUBJECTS[0]
    batch = blind_batches(log)[0]
    mine = [i for i in batch.items if i.subject_id == victim]
    assert mine and all(not i.filler for i in mine)
    decide_all(log, "rita")  # one reviewer done; the subject is erased before the other starts
    AuditedEngine(gate(log, "dora", "admin", WHY), admin.engine, galleries).delete_subject("g", victim)
    ravi = gate(log, "ravi", "reviewer")
    photos = {}
    while (item := blind_next(ravi)) is not None:
        p = next(i for i in batch.items if batch.item_id("ravi", i.index) == item.item_id)
        photos[p.index] = blind_face_image(ravi, galleries, item.ticket)
        blind_decide(ravi, item.ticket, "confirm")
    assert len(photos) == len(batch.items)
    # the erased subject's faces are no longer shown (their photos went with the rows and the key); others are
    assert [photos[i.index] for i in mine] == [None] * len(mine)
    assert all(photos[i.index] is not None for i in batch.items if i.subject_id != victim)
    entry = reveal(gate(log, "audrey", "auditor"), batch_id)
    assert [(i["face_id"], i["subject_id"]) for i in entry.record.details["plan"]["items"]
            if i["index"] in {m.index for m in mine}] == [(ERASED, ERASED)] * len(mine)
    assert verify_reveal(AuditLog(log.db, key_path=tmp_path / "elsewhere" / "key"), batch_id) == 2 * len(batch.items)
    assert log.verify().ok
    db.close()
    for path, data in files_written(tmp_path).items():
        assert victim.encode() not in data, f"the erased subject's id is in {path.name}"
