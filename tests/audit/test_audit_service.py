"""AuditedEngine: every action leaves a record before the result is returned (real engine, fake models).

Who acts is an authenticated account (operator alice for queries, admin root for gallery
changes); the gate refuses, and records, anyone else.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from audit import (
    Actor,
    AuditContext,
    AuditedEngine,
    AuditLog,
    AuditSession,
    Forbidden,
    MissingContext,
    NotAuthenticated,
)
from core import Database, EnrollItem, GalleryStore, NoFaceDetected, NotFound
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import blank_png, face_png

CTX = AuditContext(purpose="robbery investigation", case_ref="CASE-7", legal_basis="warrant 12")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def galleries(db: Database, fake_engine) -> GalleryStore:
    store = GalleryStore(db)
    store.create("g", make_config())
    store.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png"),
                       EnrollItem("s2", fake_engine.embed(face_png("s2")), "s2.png")])
    return store


@pytest.fixture
def alice(db: Database) -> Actor:
    return actor_for(db, "alice", "operator")


@pytest.fixture
def root(db: Database) -> Actor:
    return actor_for(db, "root", "admin")


@pytest.fixture
def audited(log: AuditLog, fake_engine, galleries: GalleryStore, alice: Actor) -> AuditedEngine:
    return AuditedEngine(AuditSession(log, CTX, alice), fake_engine, galleries)


@pytest.fixture
def admin(log: AuditLog, fake_engine, galleries: GalleryStore, root: Actor) -> AuditedEngine:
    return AuditedEngine(AuditSession(log, CTX, root), fake_engine, galleries)


def test_search_is_recorded_before_it_returns(audited: AuditedEngine, log: AuditLog) -> None:
    probe = face_png("s1", variant=7)
    out = audited.search("g", probe, top_k=5)
    assert out.seq == 1 and log.size() == 1
    rec = log.get(out.seq).record
    assert rec.action == "search" and rec.outcome == "ok"
    assert (rec.operator, rec.purpose, rec.case_ref, rec.legal_basis) == (
        "alice", "robbery investigation", "CASE-7", "warrant 12")
    assert rec.details["auth"] == {"method": "password_session", "credential": audited.session.actor.credential_id}
    assert rec.gallery is not None and (rec.gallery.name, rec.gallery.size) == ("g", 2)
    assert rec.gallery.fingerprint == out.result.gallery.fingerprint
    assert rec.probe_sha256 == (sha(probe),)
    expected = [(c.face_id, c.subject_id, c.rank, f"{c.distance:.6f}") for c in out.result.candidates]
    assert [(c.face_id, c.subject_id, c.rank, c.distance) for c in rec.candidates] == expected
    assert [c.subject_id for c in rec.candidates] == ["s1"]  # s2 is far beyond the threshold
    assert rec.model_config is not None and rec.model_config["threshold"] == "0.300000"
    assert rec.faces_found == 1 and rec.latency_ms is not None
    assert rec.started_at <= rec.ended_at
    assert probe[:64] not in log.get(1).canonical  # image bytes never stored


def test_no_match_and_verify_outcomes(audited: AuditedEngine, log: AuditLog) -> None:
    assert log.get(audited.search("g", face_png("stranger")).seq).record.outcome == "no_match"
    a, a2, b = face_png("a"), face_png("a", 1), face_png("b")
    same = audited.verify(a, a2)
    assert same.result.verified and log.get(same.seq).record.outcome == "ok"
    diff = audited.verify(a, b)
    rec = log.get(diff.seq).record
    assert rec.outcome == "no_match" and rec.details["verified"] is False
    assert rec.probe_sha256 == (sha(a), sha(b))


def test_engine_errors_are_recorded_then_raised(audited: AuditedEngine, log: AuditLog) -> None:
    with pytest.raises(NoFaceDetected):
        audited.search("g", blank_png())
    rec = log.get(1).record
    assert rec.action == "search" and rec.outcome == "no_face"
    assert rec.probe_sha256 == (sha(blank_png()),) and "NoFaceDetected" in rec.details["error"]
    with pytest.raises(NotFound):
        audited.search("missing", face_png("s1"))
    assert log.get(2).record.outcome == "gallery_not_found"
    with pytest.raises(NoFaceDetected):
        audited.verify(face_png("a"), blank_png())
    assert log.get(3).record.outcome == "no_face"
    assert log.verify().ok


@pytest.mark.parametrize("ctx", [AuditContext(purpose=None), AuditContext(purpose=""), AuditContext(purpose=" ")])
def test_missing_context_is_refused_and_recorded(log: AuditLog, fake_engine, galleries, ctx: AuditContext,
                                                 alice: Actor) -> None:
    audited = AuditedEngine(AuditSession(log, ctx, alice), fake_engine, galleries)
    calls = fake_engine.pipeline.calls
    with pytest.raises(MissingContext):
        audited.search("g", face_png("s1"))
    with pytest.raises(MissingContext):
        audited.verify(face_png("a"), face_png("a"))
    assert fake_engine.pipeline.calls == calls  # refused before any work
    recs = [e.record for e in log.list()]
    assert [(r.action, r.outcome, r.operator) for r in recs] == [("refused", "missing_context", "alice")] * 2
    assert [r.details["attempted"] for r in recs] == ["search", "verify"]


def test_a_required_case_reference_is_refused_and_recorded(log: AuditLog, fake_engine, galleries, alice) -> None:
    ctx = AuditContext(purpose="identify", case_required=True)
    with pytest.raises(MissingContext, match="case reference"):
        AuditedEngine(AuditSession(log, ctx, alice), fake_engine, galleries).search("g", face_png("s1"))
    rec = log.get(1).record
    assert (rec.action, rec.outcome, rec.operator) == ("refused", "missing_context", "alice")


def test_nobody_signed_in_is_refused_and_recorded_before_any_work(log: AuditLog, fake_engine, galleries) -> None:
    audited = AuditedEngine(AuditSession(log, CTX), fake_engine, galleries)
    calls = fake_engine.pipeline.calls
    with pytest.raises(NotAuthenticated, match="not signed in"):
        audited.search("g", face_png("s1"))
    with pytest.raises(NotAuthenticated):
        audited.delete_subject("g", "s1")
    assert fake_engine.pipeline.calls == calls and galleries.info("g").size == 2
    recs = [e.record for e in log.list()]
    assert [(r.action, r.outcome, r.operator, r.details["attempted"]) for r in recs] == [
        ("refused", "not_authenticated", None, "search"), ("refused", "not_authenticated", None, "delete")]


def test_a_hand_made_actor_is_refused(log: AuditLog, fake_engine, galleries, alice: Actor) -> None:
    forged = Actor("alice", "operator", "password_session", alice.credential_id, alice.expires_at, "ft_" + "x" * 43)
    with pytest.raises(NotAuthenticated, match="unknown session"):
        AuditedEngine(AuditSession(log, CTX, forged), fake_engine, galleries).search("g", face_png("s1"))
    assert log.get(1).record.outcome == "not_authenticated"


def test_roles_are_enforced_in_the_service(log: AuditLog, fake_engine, galleries, alice, root) -> None:
    operator = AuditedEngine(AuditSession(log, CTX, alice), fake_engine, galleries)
    admin = AuditedEngine(AuditSession(log, CTX, root), fake_engine, galleries)
    item = EnrollItem("s9", fake_engine.embed(face_png("s9")), "s9.png")
    with pytest.raises(Forbidden, match="manage_galleries"):
        operator.enroll("g", [item])
    with pytest.raises(Forbidden):
        operator.delete_subject("g", "s1")
    with pytest.raises(Forbidden, match="'search'"):
        admin.search("g", face_png("s1"))
    assert galleries.info("g").size == 2
    recs = [e.record for e in log.list()]
    assert [(r.outcome, r.operator, r.details["attempted"]) for r in recs] == [
        ("forbidden", "alice", "enroll"), ("forbidden", "alice", "delete"), ("forbidden", "root", "search")]


def test_enroll_delete_export_evaluate(admin: AuditedEngine, log: AuditLog, fake_engine) -> None:
    audited = admin
    img = face_png("s9")
    out = audited.enroll("g", [EnrollItem("s9", fake_engine.embed(img), "s9.png")])
    rec = log.get(out.seq).record
    assert rec.action == "enroll" and rec.details["subject_ids"] == ["s9"]
    assert rec.gallery is not None and rec.gallery.size == 3 and rec.probe_sha256 == (sha(img),)
    gone = audited.delete_subject("g", "s9")
    erasure = log.get(gone.seq)
    rec = erasure.record  # its own ids were sealed under the key it destroyed: they read "erased", naming it
    assert rec.action == "delete" and len(gone.result) == 1
    assert rec.details["subject_id"] == "erased" and rec.details["deleted_face_ids"] == ["erased"]
    assert {e.erasure.seq for e in erasure.erased if e.erasure} == {gone.seq} and len(erasure.erased) == 2
    assert rec.gallery is not None and rec.gallery.size == 2
    with pytest.raises(NotFound):
        audited.delete_face("g", "nope")
    assert log.get(gone.seq + 1).record.outcome == "not_found"
    ev = audited.session.record("evaluate", {"details": {"dataset": "lfw", "fmr": 0.001},
                                             "model_config": {"model": "Fake"}})
    assert log.get(ev.seq).record.details["fmr"] == "0.001000"
    assert log.verify().ok


def test_audit_never_imports_streamlit() -> None:
    code = "import sys, audit.audited, audit.trail.log, audit.trail.export; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
