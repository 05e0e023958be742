"""AuditedEngine: every action leaves a record before the result is returned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audit.errors import MissingContext
from audit.log import AuditLog
from audit.service import AuditContext, AuditedEngine
from core.errors import NoFaceDetected, NotFound
from tests.audit._audit_helpers import FakeEmbedding, FakeEngine, FakeGalleries, FakeItem, make_log, sha

CTX = AuditContext("alice", "robbery investigation", "CASE-7", legal_basis="warrant 12")


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return make_log(tmp_path, "memory")


@pytest.fixture
def audited(log: AuditLog) -> AuditedEngine:
    return AuditedEngine(FakeEngine(), FakeGalleries(), log, CTX)


def test_search_is_recorded_before_it_returns(audited: AuditedEngine, log: AuditLog) -> None:
    out = audited.search("g", b"IMAGE-BYTES-42", top_k=5)
    assert out.seq == 1 and log.size() == 1
    rec = log.get(out.seq).record
    assert rec.action == "search" and rec.outcome == "ok"
    assert (rec.operator, rec.purpose, rec.case_ref, rec.legal_basis) == (
        "alice", "robbery investigation", "CASE-7", "warrant 12")
    assert rec.gallery is not None and (rec.gallery.name, rec.gallery.size) == ("g", 2)
    assert rec.probe_sha256 == (sha(b"IMAGE-BYTES-42"),)
    assert [(c.face_id, c.subject_id, c.rank, c.distance) for c in rec.candidates] == [
        ("f1", "s1", 1, "0.100000"), ("f2", "s2", 2, "0.200000")]
    assert rec.model_config is not None and rec.model_config["threshold"] == "0.300000"
    assert rec.faces_found == 1 and rec.latency_ms is not None
    assert rec.started_at <= rec.ended_at
    assert b"IMAGE-BYTES" not in log.get(1).canonical  # image bytes never stored
    assert len(out.result.candidates) == 2


def test_no_match_and_verify_outcomes(audited: AuditedEngine, log: AuditLog) -> None:
    assert log.get(audited.search("g", b"stranger").seq).record.outcome == "no_match"
    same = audited.verify(b"a", b"a")
    assert same.result.verified and log.get(same.seq).record.outcome == "ok"
    diff = audited.verify(b"a", b"b")
    rec = log.get(diff.seq).record
    assert rec.outcome == "no_match" and rec.details["verified"] is False
    assert rec.probe_sha256 == (sha(b"a"), sha(b"b"))


def test_engine_errors_are_recorded_then_raised(audited: AuditedEngine, log: AuditLog) -> None:
    with pytest.raises(NoFaceDetected):
        audited.search("g", b"noface")
    rec = log.get(1).record
    assert rec.action == "search" and rec.outcome == "no_face"
    assert rec.probe_sha256 == (sha(b"noface"),) and "NoFaceDetected" in rec.details["error"]
    with pytest.raises(NotFound):
        audited.search("missing", b"probe")
    assert log.get(2).record.outcome == "not_found"
    with pytest.raises(NoFaceDetected):
        audited.verify(b"a", b"noface")
    assert log.get(3).record.outcome == "no_face"
    assert log.verify().ok


@pytest.mark.parametrize("ctx", [AuditContext(None, "p"), AuditContext("alice", ""), AuditContext(" ", None)])
def test_missing_context_is_refused_and_recorded(log: AuditLog, ctx: AuditContext) -> None:
    engine = FakeEngine()
    audited = AuditedEngine(engine, FakeGalleries(), log, ctx)
    with pytest.raises(MissingContext):
        audited.search("g", b"probe")
    with pytest.raises(MissingContext):
        audited.verify(b"a", b"a")
    assert engine.calls == 0
    recs = [e.record for e in log.list()]
    assert [(r.action, r.outcome) for r in recs] == [("refused", "missing_context")] * 2
    assert [r.details["attempted"] for r in recs] == ["search", "verify"]


def test_enroll_delete_export_evaluate(audited: AuditedEngine, log: AuditLog) -> None:
    item = FakeItem("s9", FakeEmbedding(sha(b"img9"), 1))
    out = audited.enroll("g", [item])
    rec = log.get(out.seq).record
    assert rec.action == "enroll" and rec.details["subject_ids"] == ["s9"]
    assert rec.gallery is not None and rec.gallery.size == 3 and rec.probe_sha256 == (sha(b"img9"),)
    gone = audited.delete_subject("g", "s9")
    rec = log.get(gone.seq).record
    assert rec.action == "delete" and rec.details["deleted_face_ids"] == gone.result
    assert rec.gallery is not None and rec.gallery.size == 2
    with pytest.raises(NotFound):
        audited.delete_face("g", "nope")
    assert log.get(gone.seq + 1).record.outcome == "not_found"
    exp = audited.record_export({"format": "csv", "records": 3})
    ev = audited.record_evaluation({"dataset": "lfw", "fmr": 0.001}, model_config={"model": "Fake"})
    assert log.get(exp.seq).record.action == "export"
    assert log.get(ev.seq).record.details["fmr"] == "0.001000"
    assert log.verify().ok


def test_context_from_env() -> None:
    env = {"FACETRAIL_OPERATOR": "eve", "FACETRAIL_PURPOSE": "audit", "FACETRAIL_CASE": "C"}
    ctx = AuditContext.from_env(environ=env)
    assert (ctx.operator, ctx.purpose, ctx.case_ref) == ("eve", "audit", "C")
    assert AuditContext.from_env(operator="bob", environ=env).operator == "bob"
    assert AuditContext.from_env(environ={}).missing() == ["operator", "purpose"]


def test_audit_never_imports_streamlit() -> None:
    code = "import sys, audit.service, audit.log, audit.export; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
