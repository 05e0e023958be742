"""What a search reads per search is never stale: a change made through another Database on the same file is seen.

The audited search keeps the policy records it has read (audit.policy) and reads only the
log rows appended since; these tests change the policy, the calibrations and the gallery
through a second Database/AuditLog on the same file (as another process would) and check
that the next search of the first one records the change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.policy import ThresholdReasonRequired
from audit.trail.store import AuditStore
from core import Database, EnrollItem, GalleryStore
from core.config import ThresholdSource
from core.thresholds import ThresholdStore
from tests.auth import actor_for, token_for
from tests.conftest import make_config
from tests.fakes import face_png

REASON = "suspect photo is a low-light CCTV still; the supervisor approved a wider net"


def _service(path: Path, key: Path, fake_engine, name: str, role: str) -> tuple[AuditedEngine, AuditLog, Database]:
    db = Database(str(path))
    log = AuditLog(db, key_path=key)
    galleries = GalleryStore(db)
    ctx = AuditContext(purpose="robbery investigation", case_ref="CASE-7")
    return AuditedEngine(AuditSession(log, ctx, actor_for(db, name, role)), fake_engine, galleries), log, db


@pytest.fixture
def two(tmp_path: Path, fake_engine):  # noqa: ANN201
    path, key = tmp_path / "ft.duckdb", tmp_path / "audit-key"
    first = _service(path, key, fake_engine, "alice", "operator")
    first[0].galleries.create("g", make_config())
    first[0].galleries.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    second = _service(path, key, fake_engine, "root", "admin")
    return first, second


def test_a_policy_set_through_another_database_is_seen_by_the_next_search(two) -> None:
    (operator, log, _), (admin, _, _) = two
    probe = face_png("s1", variant=3)
    operator.search("g", probe, threshold=0.35, threshold_reason=REASON)  # looser than 0.3: read and kept
    done = admin.set_threshold_policy(0.4, None, reason="the board accepted 0.4 after the 2026 evaluation")
    within = operator.search("g", probe, threshold=0.35)  # no reason needed any more
    assert log.get(within.seq).record.details["threshold_policy"]["policy_seq"] == done.seq
    admin.set_threshold_policy(0.3, None, gallery_name="g", reason="gallery g goes back to its default")
    with pytest.raises(ThresholdReasonRequired):
        operator.search("g", probe, threshold=0.35)
    assert log.verify().ok


def test_a_restored_log_is_read_again_from_the_start(tmp_path: Path, fake_engine) -> None:
    path, key = tmp_path / "ft.duckdb", tmp_path / "audit-key"
    operator, _, db = _service(path, key, fake_engine, "alice", "operator")
    operator.galleries.create("g", make_config())
    operator.galleries.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    admin = _service(path, key, fake_engine, "root", "admin")[0]
    admin.set_threshold_policy(0.4, None, reason="the board accepted 0.4 after the 2026 evaluation")
    assert operator.threshold_check("g", 0.35).status == "within"
    # the policy record and everything after it removed (a file restored from before it): not kept from memory
    policy_seq = operator.threshold_policy("g").seq
    with db.connect() as con:
        con.execute("DELETE FROM audit_log WHERE seq >= ?", [policy_seq])
    assert operator.threshold_check("g", 0.35).status == "looser"


def test_a_calibration_saved_through_another_database_is_in_the_next_search_record(two) -> None:
    (operator, log, db), (_, _, other) = two
    probe = face_png("s1", variant=3)
    first = operator.search("g", probe)
    assert first.result.gallery is not None
    before = log.get(first.seq).record.details["expected_fpir"]
    ref = first.result.gallery
    ThresholdStore(other).save_search(
        operator.engine.config, threshold=0.3, target_fpir=0.5, gallery="g", gallery_fingerprint=ref.fingerprint,
        gallery_size=ref.size, for_gallery_size=ref.size, method="measured", nonmated_distances=[0.1, 0.9],
        source=ThresholdSource(kind="calibrated", description="FPIR test"))
    after = log.get(operator.search("g", probe).seq).record.details["expected_fpir"]
    assert before != after and after["method"] == "measured" and float(after["fpir"]) == 0.5


def test_a_policy_among_many_new_records_is_found(two, monkeypatch: pytest.MonkeyPatch) -> None:
    (operator, _, _), (admin, _, _) = two
    monkeypatch.setattr("audit.trail.store._FEW_ROWS", 2)  # more new rows than are read whole: filtered in SQL
    assert operator.threshold_check("g", 0.35).status == "looser"
    done = admin.set_threshold_policy(0.4, None, reason="the board accepted 0.4 after the 2026 evaluation")
    for reason in ("the board's second reading", "the board's third reading", "the board's final reading"):
        done = admin.set_threshold_policy(0.4, None, reason=reason)
    assert operator.threshold_policy("g").seq == done.seq
    assert operator.threshold_check("g", 0.35).status == "within"


# -- another process, for real: the search keeps what it read only while no other process can write ---------

ROOT = Path(__file__).resolve().parents[2]
_OTHER_PROCESS = """
import sys
from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.accounts import CredentialStore
from core import Database, Engine, GalleryStore
from core.config import ThresholdSource
from core.thresholds import ThresholdStore
from tests.conftest import make_config

db_path, key_path, token, what = sys.argv[1:5]
db = Database(db_path)
log = AuditLog(db, key_path=key_path)
engine = Engine(make_config(threshold=0.3))
service = AuditedEngine(AuditSession(log, AuditContext(purpose="policy review"), CredentialStore(db).resolve(token)),
                        engine, GalleryStore(db))
if what == "policy":
    print(service.set_threshold_policy(0.4, None, reason="the board accepted 0.4 in another process").seq)
else:
    ref = GalleryStore(db).ref("g")
    ThresholdStore(db).save_search(engine.config, threshold=0.3, target_fpir=0.25, gallery="g",
                                   gallery_fingerprint=ref.fingerprint, gallery_size=ref.size,
                                   for_gallery_size=ref.size, method="measured", nonmated_distances=[0.1, 0.9],
                                   source=ThresholdSource(kind="calibrated", description="other process"))
db.close()
"""


def _in_another_process(path: Path, key: Path, token: str, what: str) -> str:
    """Run a policy change or a calibration in a new process on the file (it waits for this one to let go)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(path), str(key), token, what], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_a_policy_and_a_calibration_from_another_process_govern_the_next_search(tmp_path: Path,
                                                                                 fake_engine) -> None:
    path, key = tmp_path / "ft.duckdb", tmp_path / "audit-key"
    operator, log, _ = _service(path, key, fake_engine, "alice", "operator")
    operator.galleries.create("g", make_config())
    operator.galleries.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    token = token_for(path, "root", "admin")
    probe = face_png("s1", variant=3)
    with pytest.raises(ThresholdReasonRequired):  # the built-in policy, read and kept
        operator.search("g", probe, threshold=0.35)
    first = operator.search("g", probe)
    # the other process can only write once this one has let go of the file (idle): then this one opens it anew
    policy_seq = int(_in_another_process(path, key, token, "policy"))
    within = operator.search("g", probe, threshold=0.35)  # no reason needed any more: the new policy was read
    assert log.get(within.seq).record.details["threshold_policy"]["policy_seq"] == policy_seq
    _in_another_process(path, key, token, "calibration")
    again = operator.search("g", probe)
    before = log.get(first.seq).record.details["expected_fpir"]
    after = log.get(again.seq).record.details["expected_fpir"]
    assert before is None and after["method"] == "measured" and after["calibration_id"] == 1
    assert log.verify().ok


def test_searches_in_a_row_read_the_policy_once_while_the_file_is_held(tmp_path: Path, fake_engine,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, key = tmp_path / "ft.duckdb", tmp_path / "audit-key"
    operator, _, db = _service(path, key, fake_engine, "alice", "operator")
    db.idle_release = db.max_hold = 600.0  # the file held all along, however slow the machine
    operator.galleries.create("g", make_config())
    operator.galleries.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    probe = fake_engine.embed(face_png("s1", variant=3))
    operator.search("g", probe)
    reads: list[int] = []
    real = AuditStore.tail_of_action
    monkeypatch.setattr(AuditStore, "tail_of_action", lambda store, *a: reads.append(1) or real(store, *a))
    generation = db.lease_generation()
    for _ in range(5):
        operator.search("g", probe)
    assert db.lease_generation() == generation and reads == []
    # a policy appended in this process (any AuditLog on the file) is read by the next search
    admin = _service(path, key, fake_engine, "root", "admin")[0]
    done = admin.set_threshold_policy(0.4, None, reason="the board accepted 0.4 after the 2026 evaluation")
    within = operator.search("g", probe, threshold=0.35)
    assert operator.log.get(within.seq).record.details["threshold_policy"]["policy_seq"] == done.seq
