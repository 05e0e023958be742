"""A gallery change and its audit record commit together, or neither does (issue 10, item 6).

From the inside: a failure between the change and its record, or between the record and
the commit, rolls both back; the in-memory index and the log's head follow the database.
From the outside: a real process making changes on a real file is SIGKILLed at the named
points between them (and at random moments), many times; after each kill the gallery is
exactly what its records say, and the chain verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from core import Database, Engine, EnrollItem, GalleryStore
from tests.auth import actor_for, token_for
from tests.conftest import make_config
from tests.fakes import FakePipeline, face_png

ROOT = Path(__file__).resolve().parents[2]
CTX = AuditContext(purpose="gallery maintenance")


class Boom(RuntimeError):
    """Stands for a failure (a crash short of the process dying) at a named point."""


def failing_at(point: str):
    def hook(name: str) -> None:
        if name == point:
            raise Boom(point)
    return hook


@pytest.fixture
def setup(tmp_path: Path, fake_engine):
    db = Database(tmp_path / "atomic.duckdb")
    log = AuditLog(db, key_path=tmp_path / "key", checkpoint_every=2)
    galleries = GalleryStore(db)
    admin = actor_for(db, "root", "admin")
    service = AuditedEngine(AuditSession(log, CTX, admin), fake_engine, galleries)
    service.create_gallery("g", fake_engine.config)
    service.enroll("g", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in ("s1", "s2")])
    yield db, log, galleries, admin, fake_engine
    db.close()


def replayed_faces(log: AuditLog) -> set[str]:
    """The gallery ``g`` as its records say it is: enrolments minus erasures that succeeded."""
    faces: set[str] = set()
    for entry in log.list():
        r = entry.record
        if r.outcome != "ok" or r.gallery is None or r.gallery.name != "g":
            continue
        if r.action == "enroll":
            faces |= set(r.details["new_face_ids"])
        elif r.action == "delete":
            faces -= set(r.details["deleted_face_ids"])
    return faces


def assert_consistent(db: Database, log: AuditLog) -> None:
    report = log.verify()
    assert report.ok, report.fault
    stored = {f["face_id"] for f in GalleryStore(db).faces("g")}
    assert stored == replayed_faces(log)
    last = [e.record for e in log.list() if e.record.action in ("enroll", "delete") and e.record.outcome == "ok"]
    assert last and last[-1].gallery is not None
    assert last[-1].gallery.fingerprint == GalleryStore(db).info("g").fingerprint


@pytest.mark.parametrize("point", ["after_change", "after_record"])
def test_a_failure_before_the_commit_leaves_neither_change_nor_record(setup, point: str) -> None:
    db, log, galleries, admin, engine = setup
    size, fingerprint = log.size(), galleries.info("g").fingerprint
    service = AuditedEngine(AuditSession(log, CTX, admin, fault_hook=failing_at(point)), engine, galleries)
    with pytest.raises(Boom):
        service.enroll("g", [EnrollItem("s3", engine.embed(face_png("s3")), "s3.png")])
    with pytest.raises(Boom):
        service.delete_subject("g", "s1")
    assert galleries.info("g").fingerprint == fingerprint
    assert {f["subject_id"] for f in galleries.faces("g")} == {"s1", "s2"}
    # the failures are recorded on their own, and the chain goes on from the last committed record
    failed = [e.record for e in log.list()][size:]
    assert [(r.action, r.outcome) for r in failed] == [("enroll", "internal_error"), ("delete", "internal_error")]
    assert [e.seq for e in log.list()] == list(range(1, size + 3))
    assert_consistent(db, log)


def test_the_in_memory_index_never_serves_a_rolled_back_change(setup) -> None:
    db, log, galleries, admin, engine = setup
    searcher = AuditedEngine(AuditSession(log, CTX, actor_for(db, "alice", "operator")), engine, galleries)
    assert searcher.search("g", face_png("s1", 3)).result.candidates  # the index is loaded and cached
    broken = AuditedEngine(AuditSession(log, CTX, admin, fault_hook=failing_at("after_record")), engine, galleries)
    with pytest.raises(Boom):
        broken.enroll("g", [EnrollItem("s3", engine.embed(face_png("s3")), "s3.png")])
    with pytest.raises(Boom):
        broken.delete_subject("g", "s1")
    assert not searcher.search("g", face_png("s3", 3)).result.candidates  # never committed: not found
    assert [c.subject_id for c in searcher.search("g", face_png("s1", 3)).result.candidates] == ["s1"]


def test_a_committed_erasure_leaves_the_write_ahead_log(setup, tmp_path: Path) -> None:
    db, log, galleries, admin, engine = setup
    service = AuditedEngine(AuditSession(log, CTX, admin), engine, galleries)
    service.delete_subject("g", "s2")
    wal = tmp_path / "atomic.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed after the commit
    assert_consistent(db, log)


def test_changes_and_searches_in_two_threads_do_not_deadlock(setup) -> None:
    db, log, galleries, admin, engine = setup
    changer = AuditedEngine(AuditSession(log, CTX, admin), engine, galleries)
    searcher = AuditedEngine(AuditSession(log, CTX, actor_for(db, "alice", "operator")), engine, galleries)
    errors: list[BaseException] = []

    def change() -> None:
        try:
            for i in range(15):
                changer.enroll("g", [EnrollItem(f"t{i}", engine.embed(face_png(f"t{i}")), f"t{i}.png")])
                changer.delete_subject("g", f"t{i}")
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    def search() -> None:
        try:
            for i in range(30):
                searcher.search("g", face_png("s1", i))
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=change), threading.Thread(target=search)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread is still waiting"
    assert errors == []
    assert log.size() == 2 + 30 + 30  # create and enrol, 15 x (enrol + delete), 30 searches
    assert_consistent(db, log)


def _writer(db_path: Path, key: Path, token: str, start: int, point: str, at: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.audit.change_writer", str(db_path), str(key), token, str(start), point, str(at)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


#: Subjects each writer run of the crash test may use (it enrols and erases them in turn). It was 10: a run killed
#: at a random moment up to 0.3 s in could do more than ten enrol-and-erase pairs, and so left the next run's first
#: subject enrolled, which the next run then found "after a kill before its commit" (seen once in 11 runs).
SUBJECTS_PER_RUN = 1000


@pytest.mark.slow
def test_sigkill_between_a_change_and_its_record_never_leaves_one_without_the_other(tmp_path: Path) -> None:
    db_path, key = tmp_path / "crash.duckdb", tmp_path / "crash.key"
    db = Database(db_path)
    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = FakePipeline()
    log = AuditLog(db, key_path=key, checkpoint_every=3)
    admin = actor_for(db, "root", "admin")
    AuditedEngine(AuditSession(log, CTX, admin), engine, GalleryStore(db)).create_gallery("g", engine.config)
    db.close()
    token = token_for(db_path, "root", "admin")
    rng = random.Random(20261201)
    points = ("after_change", "after_record", "after_commit")
    start, kills = 0, {p: 0 for p in (*points, "random")}
    for run in range(24):
        point = "none" if run % 4 == 3 else points[run % 3]
        at = rng.randrange(0, 4)
        proc = _writer(db_path, key, token, start, point, at)
        if point == "none":  # killed from outside, at a random moment
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.strip(), proc.stderr.read() if proc.stderr else first
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, err
        kills["random" if point == "none" else point] += 1
        returned = [line.split() for line in out.splitlines() if line.strip()]
        # each run has its own subjects p<start> .. p<start + SUBJECTS_PER_RUN - 1>: a run killed at a random moment
        # must not have reached the next run's (it would leave one enrolled there, which that run then finds)
        assert len(returned) < 2 * SUBJECTS_PER_RUN - 2, len(returned)
        check = Database(db_path)
        check_log = AuditLog(check, key_path=key)
        assert_consistent(check, check_log)
        stored = {e.seq for e in check_log.list()}
        assert {int(seq) for _, _, seq in returned} <= stored  # a change that returned is committed
        if point != "none":
            assert len(returned) == at  # killed in change number `at`, before it returned
            subjects = {f["subject_id"] for f in GalleryStore(check).faces("g")}
            killed = f"p{start + at // 2}"
            enrolling = at % 2 == 0
            # the killed change took effect exactly when the kill came after its commit
            assert (killed in subjects) == (enrolling == (point == "after_commit")), (point, at, subjects)
        check.close()
        start += SUBJECTS_PER_RUN
    assert all(n >= 6 for n in kills.values()), kills
