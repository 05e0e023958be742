"""``retention_run`` with a fake clock: what is due is destroyed, what is not is kept, a dry run changes
nothing, a second run purges nothing, every run is recorded and the trail still verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from audit import AuditContext, AuditedEngine, AuditSession, Forbidden, Runtime, retention_run
from audit.evidence import EvidenceStore
from core import EnrollItem, Face
from core.cache import CachedOutcome, EvaluationCache
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="retention test", case_ref="R-1")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 8, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    rt = Runtime(str(tmp_path / "ft.duckdb"))
    clock = Clock()
    admin = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "root", "admin")), fake_engine, rt.galleries)
    admin.create_gallery("g", fake_engine.config)
    admin.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    evidence = EvidenceStore.beside(rt.db.path, rt.galleries.keys, clock=clock)
    operator = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "olga", "operator")), fake_engine,
                             rt.galleries)
    operator._evidence = evidence
    cache = EvaluationCache(rt.db, rt.galleries.keys, retention_days=30, clock=clock)
    face = Face(0, 0, 9, 9, 0.9, "dlib")
    cache.put_many("k", [CachedOutcome("old", np.ones(128, np.float32), face, 1, None, None)])
    operator.search("g", face_png("s1", 2))  # evidence kept, review pending
    clock.now += timedelta(days=10)
    cache.put_many("k", [CachedOutcome("new", np.ones(128, np.float32), face, 1, None, None)])
    return rt, clock, evidence, cache


def run(rt: Runtime, clock: Clock, evidence: EvidenceStore, *, dry_run: bool = False, role: str = "auditor"):
    return retention_run(rt, CTX, dry_run=dry_run, actor=actor_for(rt.db, f"a-{role}", role), evidence=evidence,
                         clock=clock)


def test_retention_runs_on_schedule(world) -> None:
    rt, clock, evidence, cache = world
    assert run(rt, clock, evidence)["evaluation_cache"]["entries"] == 0  # nothing due after 10 days
    assert len(evidence.items()) == 1
    clock.now += timedelta(days=25)  # evaluation entry "old" is 35 days old, evidence 35 days, "new" 25
    size = rt.log.size()
    dry = run(rt, clock, evidence, dry_run=True)
    assert dry["evaluation_cache"]["entries"] == 1 and [e["reason"] for e in dry["evidence"]] == ["retention_expired"]
    assert rt.log.size() == size and len(evidence.items()) == 1  # a dry run changes nothing, records nothing
    done = run(rt, clock, evidence)
    assert done["evaluation_cache"]["entries"] == 1 and len(done["evidence"]) == 1
    record = rt.log.get(done["audit_seq"]).record
    assert record.action == "retention" and record.details["evaluation_cache"]["entries"] == 1
    assert evidence.items() == [] and set(cache.get_many(["old", "new"], "k")) == {"new"}
    again = run(rt, clock, evidence)
    assert again["evaluation_cache"]["entries"] == 0 and again["evidence"] == []  # idempotent
    assert rt.log.verify().ok


def test_only_auditors_and_admins_run_retention(world) -> None:
    rt, clock, evidence, _ = world
    with pytest.raises(Forbidden):
        run(rt, clock, evidence, role="operator")
    assert rt.log.get(rt.log.size()).record.details["attempted"] == "retention"
