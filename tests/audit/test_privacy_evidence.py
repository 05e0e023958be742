"""The evidence store from both sides: a probe image kept sealed only for a search with candidates,
readable by reviewers and auditors, destroyed when its review ends or its retention expires (recorded)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession, Forbidden, Runtime, privacy_inventory
from audit.evidence import EvidenceStore
from core import Database, Engine, EnrollItem, GalleryStore
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png
from tests.video_fakes import VideoFakePipeline, Walk, enroll_fake, write_footage

CTX = AuditContext(purpose="robbery investigation", case_ref="CASE-3")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    admin.enroll("g", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in ("s1", "s2")])
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), fake_engine, galleries)
    clock = Clock()
    operator._evidence = EvidenceStore(tmp_path / "ft.duckdb.evidence", galleries.keys, clock=clock)
    return tmp_path, db, log, operator, clock


def session(log: AuditLog, name: str, role: str) -> AuditSession:
    return AuditSession(log, CTX, actor_for(log.db, name, role))


def test_only_a_search_with_candidates_keeps_its_probe_sealed(world) -> None:
    root, _, log, operator, _ = world
    hit_png, miss_png = face_png("s1", 4), face_png("stranger", 1)
    hit = operator.search("g", hit_png, top_k=2)
    miss = operator.search("g", miss_png, top_k=2)
    kept = log.get(hit.seq).record.details["retained"]
    assert kept["probe_image"] and kept["until"].startswith("2026-05-31")
    assert log.get(miss.seq).record.details["retained"] == {"probe_image": None}
    (item,) = operator.evidence.items()
    assert (item.seq, item.kind, item.evidence_id) == (hit.seq, "probe_image", kept["probe_image"])
    raw = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert hit_png not in raw and miss_png not in raw  # sealed, and the miss never kept
    assert operator.evidence.read(session(log, "rita", "reviewer"), item.evidence_id) == hit_png
    assert operator.evidence.read(session(log, "audrey", "auditor"), item.evidence_id) == hit_png


def test_an_operator_may_not_read_evidence_and_is_recorded(world) -> None:
    _, _, log, operator, _ = world
    operator.search("g", face_png("s2", 2))
    (item,) = operator.evidence.items()
    with pytest.raises(Forbidden):
        operator.evidence.read(session(log, "olga", "operator"), item.evidence_id)
    last = log.get(log.size()).record
    assert last.action == "refused" and last.details["evidence_id"] == item.evidence_id


def test_evidence_is_destroyed_when_its_review_ends(world) -> None:
    root, _, log, operator, _ = world
    done = operator.search("g", face_png("s1", 6), top_k=1)
    (item,) = operator.evidence.items()
    auditor = session(log, "audrey", "auditor")
    assert operator.evidence.purge_due(auditor) == []  # pending review: kept
    for name in ("rita", "ravi"):
        session(log, name, "reviewer").review(done.seq, "confirm", note="same person")
    dry = operator.evidence.purge_due(auditor, dry_run=True)
    assert [(d["evidence_id"], d["reason"]) for d in dry] == [(item.evidence_id, "review_ended")]
    assert len(operator.evidence.items()) == 1
    before = log.size()
    operator.evidence.purge_due(auditor)
    assert operator.evidence.items() == [] and item.key_id not in operator.evidence.keys.key_ids()
    record = log.get(before + 1).record
    assert record.action == "evidence" and record.details["destroyed"][0]["reason"] == "review_ended"
    assert operator.evidence.purge_due(auditor) == [] and log.size() == before + 1  # idempotent
    assert list((root / "ft.duckdb.evidence").iterdir()) == []
    with pytest.raises(KeyError):
        operator.evidence.read(auditor, item.evidence_id)
    assert log.verify().ok


def test_keeping_a_probe_leaves_the_database_key_store_as_it_was_and_its_key_is_gone_with_it(world) -> None:
    """A probe is kept under a key in the evidence key store beside the database's: the database's (a key per
    enrolled subject, rewritten whole at every change) is not rewritten per search; the key's bytes are gone from
    every file once the item is destroyed."""
    root, _, log, operator, _ = world
    database_keys = operator.galleries.keys.path
    assert database_keys is not None
    before = database_keys.stat()
    done = operator.search("g", face_png("s1", 9), top_k=1)
    (item,) = operator.evidence.items()
    after = database_keys.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert operator.evidence.keys.path == Path(str(database_keys) + ".evidence")
    assert oct(operator.evidence.keys.path.stat().st_mode & 0o777) == "0o600"
    key = operator.evidence.keys.get_many([item.key_id])[item.key_id]
    assert key in operator.evidence.keys.path.read_bytes()  # (so the check below can fail)
    for name in ("rita", "ravi"):
        session(log, name, "reviewer").review(done.seq, "confirm", note="same person")
    operator.evidence.purge_due(session(log, "audrey", "auditor"))
    assert not [p for p in root.rglob("*") if p.is_file() and key in p.read_bytes()]


def test_an_item_kept_before_the_evidence_key_store_is_read_and_destroyed_from_the_database_key_store(world) -> None:
    """Items kept by an earlier version have their key in the database's key store: still readable, and destroyed
    there."""
    _, _, log, operator, _ = world
    operator.search("g", face_png("s2", 3), top_k=1)
    (item,) = operator.evidence.items()
    store = operator.evidence
    key = store.keys.get_many([item.key_id])[item.key_id]
    store.database_keys.add_linked([{item.key_id: key}])  # where an earlier version kept it
    store.keys.destroy([item.key_id])
    assert store.read(session(log, "audrey", "auditor"), item.evidence_id) == face_png("s2", 3)
    assert store.destroy(item.evidence_id)
    assert item.key_id not in store.database_keys.key_ids() and store.items() == []


def test_evidence_is_destroyed_when_its_retention_expires(world) -> None:
    _, _, log, operator, clock = world
    operator.search("g", face_png("s2", 8), top_k=1)
    auditor = session(log, "audrey", "auditor")
    clock.now += timedelta(days=29, hours=23)
    assert operator.evidence.purge_due(auditor) == []
    clock.now += timedelta(hours=2)
    assert [d["reason"] for d in operator.evidence.purge_due(auditor)] == ["retention_expired"]
    assert operator.evidence.items() == []


def test_only_auditors_and_admins_purge(world) -> None:
    _, _, log, operator, _ = world
    with pytest.raises(Forbidden):
        operator.evidence.purge_due(session(log, "rita", "reviewer"))


def test_a_video_job_keeps_the_best_crop_of_each_track_with_candidates(tmp_path: Path) -> None:
    db = Database(tmp_path / "v.duckdb")
    log = AuditLog(db, key_path=tmp_path / "audit-key")
    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = VideoFakePipeline()  # type: ignore[assignment]
    galleries = GalleryStore(db)
    enroll_fake(galleries, "g", engine.config, ["subject-alpha", "subject-bravo"])
    footage = tmp_path / "cam.mp4"
    write_footage(footage, [Walk("subject-alpha", 1.0, 4.0, (0, 40), (200, 60)),
                            Walk("stranger-echo", 5.0, 8.0, (100, 80), (140, 80))], 9.0)
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), engine, galleries)
    done = operator.search_video("g", footage)
    retained = log.get(done.seq).record.details["retained"]
    with_candidates = [t for t in done.result.tracks if t.candidates]
    assert len(with_candidates) == 1 and retained["crops"] == 1 and retained["video"] is False
    (evidence_id,) = retained["crop_evidence"].values()
    (item,) = operator.evidence.items()
    assert (item.evidence_id, item.seq, item.kind) == (evidence_id, done.seq, "track_crop")
    png = operator.evidence.read(session(log, "rita", "reviewer"), evidence_id)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), with_candidates[0].crop)
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".mp4")
    assert png not in raw


def test_the_inventory_lists_the_evidence_kept(world) -> None:
    root, _, log, operator, _ = world
    operator.search("g", face_png("s1", 11))
    rt = Runtime(str(root / "ft.duckdb"))
    places = {h.place: h for h in privacy_inventory(rt, actor=actor_for(rt.db, "dpo", "auditor"))}
    assert places["file:ft.duckdb.evidence/"].rows == 1
    assert places["file:ft.duckdb.keys.evidence"].rows == 1  # its key, in the evidence key store
