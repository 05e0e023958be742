"""Blind review with fillers (audit.blind), from the reviewer's and the auditor's side.

Queries are search records of operator alice on gallery ``g``; the filler gallery ``fillers``
holds faces of other people. Reviewers rev1 and rev2 decide items one at a time; auditor
carol opens and reveals batches.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image

from audit import (
    AuditContext,
    AuditLog,
    AuditSession,
    BlindRevealMismatch,
    BlindReviewRefused,
    Forbidden,
    blind_batches,
    blind_decide,
    blind_next,
    open_batch,
    reveal,
    verify_reveal,
)
from audit.blind import probe_image as blind_probe_image
from audit.evidence import EvidenceStore
from audit.trail.store import AuditFilter
from core import Database, EnrollItem, GalleryStore
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png

FILLER_SUBJECTS = [f"filler{i}" for i in range(8)] + ["s1-0"]  # s1-0 is also a candidate of query 1


@pytest.fixture
def galleries(db: Database, fake_engine) -> GalleryStore:
    store = GalleryStore(db)
    store.create("fillers", make_config())
    store.enroll("fillers", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in FILLER_SUBJECTS])
    return store


def gate(log: AuditLog, name: str, role: str, *, method: str = "password_session") -> AuditSession:
    return AuditSession(log, AuditContext(purpose="reviewer audit"), actor_for(log.db, name, role, method=method))


def queries(log: AuditLog, n: int = 3, per: int = 2, operator: str = "alice") -> list[int]:
    """``n`` search records with ``per`` candidates each (subjects s<i>-<r>, faces f<i>-<r>)."""
    seqs = []
    for i in range(1, n + 1):
        fields = record_fields(i, operator=operator)
        fields["candidates"] = [candidate(f"s{i}-{r}", f"f{i}-{r}", 0.05 * (r + 1), r + 1) for r in range(per)]
        seqs.append(log.append(fields).seq)
    return seqs


def drain(log: AuditLog, name: str, decide=lambda item: "confirm") -> list[int]:
    """Let reviewer ``name`` decide every item of their queue; return the plan indices in the order served."""
    batch = blind_batches(log)[0]
    session = gate(log, name, "reviewer")
    served = []
    while (item := blind_next(session)) is not None:
        plan = next(i for i in batch.items if batch.item_id(name, i.index) == item.item_id)
        served.append(plan.index)
        blind_decide(session, item.ticket, decide(plan))
    return served


def test_the_reviewer_sees_no_score_rank_query_face_or_earlier_verdict(log: AuditLog, galleries) -> None:
    seqs = queries(log)
    open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.25)
    drain(log, "rev1")  # an earlier verdict on every item
    item = blind_next(gate(log, "rev2", "reviewer"))
    assert item is not None
    shown = item.to_dict()
    assert set(shown) == {"mode", "batch_id", "item", "ticket", "position", "total", "photos"}
    assert shown["mode"] == "blind" and shown["position"] == 1 and shown["total"] == 8 and shown["photos"] is None
    text = json.dumps(shown)
    batch = blind_batches(log)[0]
    for plan in batch.items:
        assert plan.face_id not in text and plan.subject_id not in text
    for seq in seqs:
        for c in log.get(seq).record.candidates:
            assert c.distance not in text and c.similarity not in text
    assert "confirm" not in text and "rev1" not in text


def test_filler_share_and_fillers_are_known_non_matches(log: AuditLog, galleries) -> None:
    seqs = queries(log)  # 6 real candidates
    open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.5)
    batch = blind_batches(log)[0]
    fillers = [i for i in batch.items if i.filler]
    assert len(fillers) == 6 and len(batch.items) == 12
    assert {(i.seq, i.face_id) for i in batch.items if not i.filler} == {
        (s, c.face_id) for s in seqs for c in log.get(s).record.candidates}
    for f in fillers:
        assert f.gallery == "fillers"
        assert f.subject_id not in {c.subject_id for c in log.get(f.seq).record.candidates}
    assert len({(f.seq, f.face_id) for f in fillers}) == 6  # never the same filler twice for one probe


def test_order_differs_per_reviewer_and_is_fixed_for_each(log: AuditLog, galleries) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log, n=4, per=3), "fillers", filler_share=0.25)
    batch = blind_batches(log)[0]
    first = blind_next(gate(log, "rev1", "reviewer"))
    again = blind_next(gate(log, "rev1", "reviewer"))
    assert first is not None and again is not None and first.item_id == again.item_id  # nothing decided: same item
    order1, order2 = drain(log, "rev1"), drain(log, "rev2")
    assert order1 == [i.index for i in batch.queue("rev1")] and order2 == [i.index for i in batch.queue("rev2")]
    assert sorted(order1) == sorted(order2) == list(range(16)) and order1 != order2


def test_nothing_in_the_log_tells_fillers_apart_until_the_reveal(log: AuditLog, galleries) -> None:
    seqs = queries(log)
    open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.4)
    drain(log, "rev1")
    batch = blind_batches(log)[0]
    filler_faces = {i.face_id for i in batch.items if i.filler}
    reviews = log.list(AuditFilter(action="blind_review"))
    written = b"".join(e.record.canonical() for e in log.list())
    for face in filler_faces:
        assert face.encode() not in written
    for e in reviews:  # same fields for every item: the seal is all that differs, and it needs the key
        assert e.record.target_seq is None and e.record.target_face_id is None and e.record.case_ref is None
        assert set(e.record.details) == {"mode", "batch_id", "item", "filler_seal", "auth"}
    assert b'"filler":' not in written
    revealed = reveal(gate(log, "carol", "auditor"), batch.batch_id).record
    key = bytes.fromhex(revealed.details["key"])
    assert key == batch.key
    by_item = {d["item"]: d for d in revealed.details["decisions"]}
    assert len(by_item) == len(batch.items)
    for e in reviews:  # anyone can now check each seal against the published key
        d = by_item[e.record.details["item"]]
        assert batch.filler_seal(d["item"], d["filler"]) == e.record.details["filler_seal"]
        assert batch.filler_seal(d["item"], not d["filler"]) != e.record.details["filler_seal"]


def test_fillers_never_become_matches_and_blind_confirmations_count_after_the_reveal(log: AuditLog,
                                                                                     galleries) -> None:
    seqs = queries(log)
    open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.5)
    batch = blind_batches(log)[0]
    drain(log, "rev1")  # both confirm everything, fillers included
    drain(log, "rev2")
    assert {c.status for s in seqs for c in log.match_status(s).candidates} == {"pending"}  # sealed: not yet
    reveal(gate(log, "carol", "auditor"), batch.batch_id)
    filler_faces = {i.face_id for i in batch.items if i.filler}
    for s in seqs:
        status = log.match_status(s)
        assert [c.face_id for c in status.candidates] == [c.face_id for c in log.get(s).record.candidates]
        assert not filler_faces & {c.face_id for c in status.candidates}
        assert {c.status for c in status.candidates} == {"confirmed"}
        assert {c.confirmations for c in status.candidates} == {("rev1", "rev2")}


def test_a_blind_reject_vetoes_and_one_blind_confirmation_is_not_enough(log: AuditLog, galleries) -> None:
    seqs = queries(log, n=1, per=2)
    open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.0)
    batch = blind_batches(log)[0]
    drain(log, "rev1")
    drain(log, "rev2", decide=lambda plan: "reject" if plan.face_id == "f1-0" else "confirm")
    reveal(gate(log, "carol", "auditor"), batch.batch_id)
    assert {c.face_id: c.status for c in log.match_status(seqs[0]).candidates} == {"f1-0": "rejected",
                                                                                   "f1-1": "confirmed"}


def test_the_queries_operator_gets_none_of_its_items(log: AuditLog, galleries) -> None:
    mine = queries(log, n=1, per=2, operator="rev3")
    others = queries(log, n=1, per=2)
    open_batch(gate(log, "carol", "auditor"), galleries, mine + others, "fillers", filler_share=0.0)
    batch = blind_batches(log)[0]
    assert {i.seq for i in batch.queue("rev3")} == set(others)
    served = drain(log, "rev3")
    assert {batch.items[i].seq for i in served} == set(others)


def test_refused_decisions_are_recorded(log: AuditLog, galleries) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log), "fillers")
    rev1, rev2 = gate(log, "rev1", "reviewer"), gate(log, "rev2", "reviewer")
    item = blind_next(rev1)
    assert item is not None
    with pytest.raises(BlindReviewRefused, match="not served to rev2"):
        blind_decide(rev2, item.ticket, "confirm")  # another reviewer's ticket
    batch_id, item_id, served, mac = item.ticket.split(".")
    with pytest.raises(BlindReviewRefused, match="not served"):
        blind_decide(rev1, f"{batch_id}.{item_id}.{int(served) - 60000}.{mac}", "confirm")  # a forged time
    with pytest.raises(BlindReviewRefused, match="not a blind review ticket"):
        blind_decide(rev1, "garbage", "confirm")
    blind_decide(rev1, item.ticket, "reject")
    with pytest.raises(BlindReviewRefused, match="already decided"):
        blind_decide(rev1, item.ticket, "confirm")
    with pytest.raises(BlindReviewRefused, match="password"):
        blind_next(gate(log, "rev4", "reviewer", method="api_token"))
    with pytest.raises(Forbidden):
        blind_next(gate(log, "carol", "auditor"))
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [r.details["attempted"] for r in refused] == ["blind_review"] * 6
    assert [r.outcome for r in refused] == ["blind_review_refused"] * 5 + ["forbidden"]
    reveal(gate(log, "carol", "auditor"), blind_batches(log)[0].batch_id)
    second = blind_next(rev2)
    assert second is None  # the only batch is closed
    with pytest.raises(BlindReviewRefused, match="closed"):
        blind_decide(rev1, item.ticket, "confirm")


def test_bad_batches_are_refused_and_recorded(log: AuditLog, galleries, fake_engine) -> None:
    seqs = queries(log)
    carol = gate(log, "carol", "auditor")
    galleries.create("g", make_config())
    verify = log.append({**record_fields(9), "action": "verify", "candidates": []}).seq
    cases = [
        (dict(queries=seqs, filler_gallery="g"), "is a gallery the queries searched"),
        (dict(queries=seqs, filler_gallery="fillers", filler_share=1.0), "below 1"),
        (dict(queries=seqs, filler_gallery="fillers", filler_share=-0.1), "at least 0"),
        (dict(queries=[*seqs, verify], filler_gallery="fillers"), "search results with candidates"),
        (dict(queries=[seqs[0], seqs[0]], filler_gallery="fillers"), "twice"),
        (dict(queries=[], filler_gallery="fillers"), "at least one query"),
        (dict(queries=seqs, filler_gallery="nowhere"), "unknown filler gallery"),
        (dict(queries=seqs, filler_gallery="fillers", filler_share=0.9), "too few faces"),
    ]
    for kwargs, message in cases:
        with pytest.raises(BlindReviewRefused, match=message):
            open_batch(carol, galleries, **kwargs)
    refused = log.list(AuditFilter(action="refused"))
    assert [e.record.outcome for e in refused] == ["blind_review_refused"] * len(cases)
    assert not log.list(AuditFilter(action="blind_batch"))
    with pytest.raises(Forbidden):
        open_batch(gate(log, "rev1", "reviewer"), galleries, seqs, "fillers")
    with pytest.raises(Forbidden):
        open_batch(gate(log, "root", "admin"), galleries, seqs, "fillers")


def test_a_plan_needs_this_installations_key(log: AuditLog, galleries, db: Database, tmp_path: Path) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log), "fillers")
    elsewhere = AuditLog(db, key_path=tmp_path / "other-key")
    with pytest.raises(BlindReviewRefused, match="cannot be opened"):
        blind_batches(elsewhere)


def test_a_non_blind_review_says_its_mode(log: AuditLog) -> None:
    seq = queries(log, n=1, per=1)[0]
    entry = gate(log, "rev1", "reviewer").review(seq, "confirm", face_id="f1-0")
    assert entry.record.action == "review" and entry.record.details["mode"] == "non_blind"


def test_anyone_checks_a_reveal_from_the_records_alone(log: AuditLog, galleries, db: Database,
                                                       tmp_path: Path) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log), "fillers", filler_share=0.5)
    batch = blind_batches(log)[0]
    drain(log, "rev1")
    drain(log, "rev2")
    reveal(gate(log, "carol", "auditor"), batch.batch_id)
    elsewhere = AuditLog(db, key_path=tmp_path / "no-blind-key-here")  # a reader without the key file
    assert verify_reveal(elsewhere, batch.batch_id) == 24  # 12 items, each decided by two reviewers
    assert not (tmp_path / "no-blind-key-here.blind").exists()


@pytest.mark.parametrize("forgery", ["filler_as_candidate", "other_face", "dropped", "wrong_key", "other_plan"])
def test_a_forged_reveal_is_caught(log: AuditLog, galleries, forgery: str) -> None:
    """A reveal that maps a decision on a filler to a real candidate (to push a match through), and others."""
    carol = gate(log, "carol", "auditor")
    open_batch(carol, galleries, queries(log), "fillers", filler_share=0.5)
    batch = blind_batches(log)[0]
    drain(log, "rev1")
    # what reveal() would write, written by hand with one change
    decisions = []
    for e in log.list(AuditFilter(action="blind_review")):
        item = next(i for i in batch.items if batch.item_id("rev1", i.index) == e.record.details["item"])
        decisions.append({"review_seq": e.seq, "reviewer": "rev1", "item": e.record.details["item"],
                          "index": item.index, "seq": item.seq, "face_id": item.face_id, "filler": item.filler})
    filler = next(d for d in decisions if d["filler"])
    real = next(d for d in decisions if not d["filler"])
    if forgery == "filler_as_candidate":
        filler.update(filler=False, face_id=real["face_id"], seq=real["seq"])
    elif forgery == "other_face":
        real["face_id"] = "f9-9"
    elif forgery == "dropped":
        decisions.remove(real)
    key = batch.key.hex() if forgery != "wrong_key" else "00" * 32
    blob = base64.b64decode(log.get(batch.seq).record.details["sealed_plan"])
    plan = json.loads(AESGCM(batch.key).decrypt(blob[:12], blob[12:], batch.batch_id.encode()))
    if forgery == "other_plan":
        plan["items"][0]["filler"] = not plan["items"][0]["filler"]
    carol.with_context(AuditContext(purpose="audit")).record("blind_reveal", {"outcome": "ok", "details": {
        "batch_id": batch.batch_id, "batch_seq": batch.seq, "queries": list(batch.queries), "key": key,
        "plan": plan, "decisions": decisions}})
    with pytest.raises(BlindRevealMismatch):
        verify_reveal(log, batch.batch_id)


def test_two_sessions_deciding_one_item_at_once_leave_one_decision(log: AuditLog, galleries) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log), "fillers")
    item = blind_next(gate(log, "rev1", "reviewer"))
    assert item is not None
    sessions = [gate(log, "rev1", "reviewer") for _ in range(4)]  # four tabs of one reviewer
    barrier = threading.Barrier(len(sessions))

    def attempt(session: AuditSession) -> str:
        barrier.wait()
        try:
            blind_decide(session, item.ticket, "confirm")
        except BlindReviewRefused:
            return "refused"
        return "recorded"

    with ThreadPoolExecutor(len(sessions)) as pool:
        outcomes = sorted(pool.map(attempt, sessions))
    assert outcomes == ["recorded", "refused", "refused", "refused"]
    assert len(log.list(AuditFilter(action="blind_review"))) == 1
    assert len(log.list(AuditFilter(action="refused"))) == 3


def test_the_open_batch_names_none_of_its_queries_nor_its_share_of_fillers(log: AuditLog, galleries) -> None:
    seqs = queries(log, n=3, per=1)
    opened = open_batch(gate(log, "carol", "auditor"), galleries, seqs, "fillers", filler_share=0.5).record
    assert opened.details["n_queries"] == 3 and opened.details["items"] == 6
    assert not {"queries", "fillers", "filler_share"} & set(opened.details)
    assert opened.target_seq is None and opened.case_ref is None
    assert sum(i.filler for i in blind_batches(log)[0].items) == 3
    assert blind_batches(log)[0].queries == tuple(seqs)  # in the sealed plan


def test_the_next_item_comes_from_the_oldest_open_batch(log: AuditLog, galleries) -> None:
    carol = gate(log, "carol", "auditor")
    first = open_batch(carol, galleries, queries(log, n=1, per=1), "fillers", filler_share=0.0).record
    second = open_batch(carol, galleries, queries(log, n=1, per=1), "fillers", filler_share=0.0).record
    rev1 = gate(log, "rev1", "reviewer")
    item = blind_next(rev1)
    assert item is not None and item.batch_id == first.details["batch_id"]
    reveal(carol, first.details["batch_id"])
    item = blind_next(rev1)
    assert item is not None and item.batch_id == second.details["batch_id"]
    assert [b.batch_id for b in blind_batches(log, open_only=True)] == [second.details["batch_id"]]
    with pytest.raises(BlindReviewRefused, match="closed"):
        blind_next(rev1, first.details["batch_id"])


def test_fillers_can_be_matched_to_the_candidates_metadata(log: AuditLog, db: Database, fake_engine) -> None:
    store = GalleryStore(db)
    store.create("g", make_config())
    store.create("volunteers", make_config())
    made = {}
    for subject, sex in (("a1", "F"), ("a2", "F"), ("b1", "M"), ("b2", "M")):
        made[subject] = store.enroll("g", [EnrollItem(subject, fake_engine.embed(face_png(subject)), f"{subject}.png",
                                                      {"sex": sex})])[0][0]
    sex_of = {}
    for k in range(10):
        sex_of[f"v{k}"] = "F" if k % 2 else "M"
        store.enroll("volunteers", [EnrollItem(f"v{k}", fake_engine.embed(face_png(f"v{k}")), f"v{k}.png",
                                               {"sex": sex_of[f"v{k}"]})])
    seqs = []
    for i, pair in ((1, ("a1", "a2")), (2, ("b1", "b2"))):
        fields = record_fields(i)
        fields["candidates"] = [candidate(s, made[s], 0.05 * r, r) for r, s in enumerate(pair, start=1)]
        seqs.append(log.append(fields).seq)
    carol = gate(log, "carol", "auditor")
    opened = open_batch(carol, store, seqs, "volunteers", filler_share=0.6, match_on=["sex"]).record
    assert opened.details["match_on"] == ["sex"] and opened.details["items"] == 10
    batch = blind_batches(log)[0]
    for item in batch.items:
        if item.filler:
            assert sex_of[item.subject_id] == ("F" if item.seq == seqs[0] else "M")
    with pytest.raises(BlindReviewRefused, match="none of its candidates has that metadata"):
        open_batch(carol, store, seqs, "volunteers", match_on=["race"])
    with pytest.raises(BlindReviewRefused, match="with metadata"):
        open_batch(carol, store, seqs, "volunteers", filler_share=0.8, match_on=["sex"])  # 16 fillers: 8 a query, 5 faces a sex


def test_the_probe_photo_is_shown_but_does_not_lead_to_its_search(log: AuditLog, galleries, db: Database) -> None:
    evidence = EvidenceStore.beside(":memory:", galleries.keys)
    original = face_png("the-probe")
    kept = evidence.keep(original, "probe_image")
    fields = record_fields(1)
    fields["probe_sha256"] = [hashlib.sha256(original).hexdigest()]
    fields["details"] = {"retained": {"probe_image": kept.evidence_id}}
    seq = log.append(fields).seq
    evidence.link(kept.evidence_id, seq)
    open_batch(gate(log, "carol", "auditor"), galleries, [seq], "fillers", filler_share=0.5)
    rev1 = gate(log, "rev1", "reviewer")
    item = blind_next(rev1)
    assert item is not None
    shown = [blind_probe_image(rev1, galleries, item.ticket, evidence=evidence) for _ in range(2)]
    assert shown[0] is not None and shown[1] is not None
    assert (np.asarray(Image.open(io.BytesIO(shown[0])).convert("RGB"))
            == np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))).all()  # the same photo ...
    digests = {hashlib.sha256(s).hexdigest() for s in shown}
    assert len(digests) == 2 and not digests & {hashlib.sha256(original).hexdigest()}  # ... never the same bytes
    with pytest.raises(BlindReviewRefused, match="not served"):
        blind_probe_image(gate(log, "rev2", "reviewer"), galleries, item.ticket, evidence=evidence)
    evidence.destroy(kept.evidence_id)
    assert blind_probe_image(rev1, galleries, item.ticket, evidence=evidence) is None  # destroyed: not shown


def test_an_item_without_a_kept_probe_has_no_photo(log: AuditLog, galleries) -> None:
    open_batch(gate(log, "carol", "auditor"), galleries, queries(log, n=1, per=1), "fillers")
    rev1 = gate(log, "rev1", "reviewer")
    item = blind_next(rev1)
    assert item is not None
    assert blind_probe_image(rev1, galleries, item.ticket) is None
