"""AuditLog on DuckDB: append, tamper with raw SQL, checkpoints, keys, concurrency, review."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest

from audit.errors import ChainIntegrityError, MissingContext, RecordNotFound, ReviewRefused
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord, canonical_bytes, decode_record
from audit.trail.store import AuditFilter
from tests.audit._audit_helpers import make_log, record_fields

KINDS = ["memory", "file"]


@pytest.fixture(params=KINDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> AuditLog:
    return make_log(tmp_path, request.param, checkpoint_every=5)


def fill(log: AuditLog, n: int, **kw: str) -> None:
    for i in range(n):
        log.append(record_fields(i, **kw))


def sql(log: AuditLog, statement: str, params: list[object] | None = None) -> None:
    with log.db.connect() as con:
        con.execute(statement, params or [])


def fault(log: AuditLog) -> ChainIntegrityError:
    report = log.verify()
    assert not report.ok
    assert report.error is not None
    with pytest.raises(ChainIntegrityError):
        log.verify_or_raise()
    return report.error


def test_append_get_list_and_verify(log: AuditLog) -> None:
    fill(log, 12, case="A")
    fill(log, 3, operator="bob", case="B")
    assert log.size() == 15
    entry = log.get(13)
    assert entry.record.operator == "bob" and entry.seq == 13
    assert decode_record(entry.canonical) == entry.record
    assert [e.seq for e in log.list(AuditFilter(case_ref="B"))] == [13, 14, 15]
    assert [e.seq for e in log.list(AuditFilter(operator="alice"), limit=2)] == [1, 2]
    assert len(log.list(AuditFilter(gallery="g", action="search"))) == 15
    assert log.list(AuditFilter(action="verify")) == []
    assert [e.seq for e in log.list(AuditFilter(after_seq=13, operator="bob"))] == [14, 15]
    assert len(log.list(AuditFilter(since="2026-01-01T00:00:10"))) == 2 + 0  # only i=10, 11 of case A
    report = log.verify()
    assert report.ok and report.records == 15 and report.checkpoints == 3
    assert report.head_hash == log.get(15).entry_hash.hex()
    with pytest.raises(RecordNotFound):
        log.get(16)


def test_records_are_canonical_and_float_free(log: AuditLog) -> None:
    e = log.append(record_fields(1))
    assert b"0.100000" in e.canonical and b"0.1," not in e.canonical
    assert canonical_bytes(e.record.to_dict()) == e.canonical
    with pytest.raises(ValueError, match="float"):
        canonical_bytes({"x": 0.5})
    with pytest.raises(ValueError, match="non-finite"):
        log.append({**record_fields(2), "details": {"x": float("nan")}})
    with pytest.raises(ValueError, match="seq"):
        log.append({**record_fields(2), "seq": 7})
    assert log.size() == 1  # failed appends wrote nothing


def test_tampered_record_blob_is_caught(log: AuditLog) -> None:
    fill(log, 12)
    blob = log.get(7).canonical.replace(b'"alice"', b'"mallory"')
    sql(log, "UPDATE audit_log SET record = ? WHERE seq = 7", [blob])
    err = fault(log)
    assert (err.seq, err.kind) == (7, "hash_mismatch")


def test_tampered_hash_columns_are_caught(log: AuditLog) -> None:
    fill(log, 12)
    sql(log, "UPDATE audit_log SET prev_hash = ? WHERE seq = 9", [os.urandom(32)])
    err = fault(log)
    assert (err.seq, err.kind) == (9, "prev_mismatch")
    sql(log, "UPDATE audit_log SET entry_hash = ? WHERE seq = 4", [os.urandom(32)])
    err = fault(log)
    assert (err.seq, err.kind) == (4, "hash_mismatch")


def test_deleted_record_is_caught(log: AuditLog) -> None:
    fill(log, 12)
    sql(log, "DELETE FROM audit_log WHERE seq = 6")
    err = fault(log)
    assert (err.seq, err.kind) == (6, "seq_gap")


def test_truncated_tail_is_caught_by_checkpoint(log: AuditLog) -> None:
    fill(log, 12)
    log.checkpoint()
    sql(log, "DELETE FROM audit_log WHERE seq > 8")
    err = fault(log)
    assert (err.seq, err.kind) == (9, "truncated")


def test_swapped_records_are_caught(log: AuditLog) -> None:
    fill(log, 12)
    a, b = log.get(3), log.get(8)
    sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = 3",
        [b.canonical, b.prev_hash, b.entry_hash])
    sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = 8",
        [a.canonical, a.prev_hash, a.entry_hash])
    err = fault(log)
    assert (err.seq, err.kind) == (3, "prev_mismatch")
    with pytest.raises(ChainIntegrityError, match="bad_record"):
        log.get(3)  # the row's seq no longer matches the record it holds


def test_forged_and_altered_checkpoints_are_caught(log: AuditLog) -> None:
    fill(log, 12)
    assert log.verify().ok
    cp = log.checkpoints()[0]
    sql(log, "UPDATE audit_checkpoint_chain SET head_hash = ? WHERE seq = 5", [os.urandom(32)])
    err = fault(log)
    assert (err.seq, err.kind) == (5, "bad_signature")
    sql(log, "UPDATE audit_checkpoint_chain SET head_hash = ? WHERE seq = 5", [cp.head_hash])
    assert log.verify().ok
    sql(log, "INSERT INTO audit_checkpoint_chain SELECT 11, head_hash, merkle_root, created_at, key_id, signature,"
             " frontier, prev FROM audit_checkpoint_chain WHERE seq = 10")
    err = fault(log)
    assert (err.seq, err.kind) == (11, "bad_signature")


def test_deleted_checkpoint_is_caught(log: AuditLog) -> None:
    fill(log, 16)
    sql(log, "DELETE FROM audit_checkpoint_chain WHERE seq = 5")
    err = fault(log)
    assert (err.seq, err.kind) == (10, "checkpoint_chain")


def test_consistent_rewrite_is_caught_by_checkpoint(log: AuditLog) -> None:
    """Rewrite record 7 and recompute every later hash: only the signed checkpoint at 10 knows."""
    from audit.trail.chain import entry_hash

    fill(log, 12)
    entries = [log.get(s) for s in range(1, 13)]
    prev = entries[5].entry_hash
    for e in entries[6:]:
        rec = e.record.to_dict()
        if e.seq == 7:
            rec["operator"] = "mallory"
        blob = canonical_bytes(rec)
        h = entry_hash(prev, blob)
        sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            [blob, prev, h, e.seq])
        prev = h
    err = fault(log)
    assert (err.seq, err.kind) == (10, "checkpoint_mismatch")


def test_verify_with_explicit_public_key(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 6)
    assert log.verify(log.public_key_pem()).ok
    other = AuditLog(log.db, key_path=tmp_path / "other-key")
    err = other.verify(other.public_key_pem()).error
    assert err is not None and err.kind == "bad_signature"


def test_key_file_created_0600_outside_db(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file", checkpoint_every=2)
    assert not log.key_path.exists()
    fill(log, 2)
    mode = stat.S_IMODE(os.stat(log.key_path).st_mode)
    assert mode == 0o600
    assert log.key_path != Path(log.db.path)
    pem = log.public_key_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem
    # the same key is used after reopening
    again = AuditLog(log.db, key_path=log.key_path)
    assert again.public_key_pem() == pem and again.verify().ok


def test_default_key_path_is_beside_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.storage.connection import Database

    monkeypatch.delenv("FACETRAIL_AUDIT_KEY", raising=False)
    log = AuditLog(Database(tmp_path / "x.duckdb"))
    assert log.key_path == Path(str(tmp_path / "x.duckdb") + ".audit-key")
    monkeypatch.setenv("FACETRAIL_AUDIT_KEY", str(tmp_path / "k"))
    assert AuditLog(Database(tmp_path / "y.duckdb")).key_path == tmp_path / "k"


def test_store_module_has_no_update_or_delete() -> None:
    import audit.trail.log
    import audit.trail.store

    for module in (audit.trail.store, audit.trail.log):
        source = Path(module.__file__).read_text()
        assert not re.search(r"\b(UPDATE|DELETE|TRUNCATE|DROP|ALTER)\b", source, re.IGNORECASE), module
    assert not any(hasattr(audit.trail.log.AuditLog, name) for name in ("update", "delete", "remove", "truncate"))


def test_only_store_imports_duckdb() -> None:
    root = Path(__file__).resolve().parents[2] / "audit"
    allowed = {"store.py", "eval_store.py"}
    for path in root.glob("*.py"):
        if path.name in allowed:
            continue
        if path.name.startswith(("evaluat", "datasets", "bootstrap")):
            continue  # the evaluation modules are not part of the audit trail
        assert not re.search(r"^\s*(import|from)\s+duckdb", path.read_text(), re.MULTILINE), path


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_keep_one_chain(tmp_path: Path, kind: str) -> None:
    log = make_log(tmp_path, kind, checkpoint_every=100)
    seqs: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(200):
                seqs[t].append(log.append(record_fields(i, operator=f"op{t}")).seq)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    flat = sorted(s for per in seqs for s in per)
    assert flat == list(range(1, 1601))
    for per in seqs:
        assert per == sorted(per)
    report = log.verify()
    assert report.ok and report.records == 1600 and report.checkpoints == 16


def test_two_logs_on_one_database_keep_one_chain(tmp_path: Path) -> None:
    """Two AuditLog objects (as two processes would) interleave: the stale head cache is detected."""
    from core.storage.connection import Database

    a = AuditLog(Database(tmp_path / "db.duckdb"), key_path=tmp_path / "k", checkpoint_every=3)
    b = AuditLog(Database(tmp_path / "db.duckdb"), key_path=tmp_path / "k", checkpoint_every=3)
    got = []
    for i in range(6):
        got.append(a.append(record_fields(i)).seq)
        got.append(b.append(record_fields(i)).seq)
        a.db.close()
        b.db.close()
    assert got == list(range(1, 13))
    assert a.verify().ok


# -- review and the two-person rule -----------------------------------------------------------------


def search_record(operator: str = "alice", faces: tuple[str, ...] = ("f1", "f2")) -> dict[str, object]:
    fields = record_fields(0, operator=operator)
    fields["candidates"] = [
        {"subject_id": f"s-{f}", "face_id": f, "distance": 0.1 * r, "similarity": 1 - 0.1 * r, "rank": r}
        for r, f in enumerate(faces, start=1)
    ]
    return fields


def statuses(log: AuditLog, seq: int) -> dict[str | None, str]:
    return {c.face_id: c.status for c in log.match_status(seq).candidates}


def test_operator_cannot_confirm_own_match_and_refusal_is_recorded(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(ReviewRefused, match="two-person"):
        log.review(q, "alice", "confirm", face_id="f1")
    refusal = log.get(q + 1).record
    assert refusal.action == "refused" and refusal.outcome == "review_refused"
    assert refusal.target_seq == q and refusal.reviewer == "alice"
    assert statuses(log, q) == {"f1": "pending", "f2": "pending"}


def test_one_confirmation_is_not_enough_two_are(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f1", note="same scar")
    assert statuses(log, q)["f1"] == "pending"
    log.review(q, "rev2", "confirm", face_id="f1")
    assert statuses(log, q) == {"f1": "confirmed", "f2": "pending"}
    status = log.match_status(q).candidates[0]
    assert status.confirmations == ("rev1", "rev2") and status.subject_id == "s-f1"


def test_same_reviewer_twice_counts_once(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f2")
    log.review(q, "rev1", "confirm", face_id="f2")
    assert statuses(log, q)["f2"] == "pending"
    assert log.match_status(q).candidates[1].confirmations == ("rev1",)


def test_a_reject_vetoes(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    log.review(q, "rev1", "confirm", face_id="f1")
    log.review(q, "rev2", "confirm", face_id="f1")
    log.review(q, "rev3", "reject", face_id="f1")
    assert statuses(log, q)["f1"] == "rejected"


def test_reviews_target_one_candidate(log: AuditLog) -> None:
    q = log.append(search_record()).seq
    with pytest.raises(ReviewRefused, match="face_id"):
        log.review(q, "rev1", "confirm")  # two candidates: which one?
    with pytest.raises(ReviewRefused, match="no candidate"):
        log.review(q, "rev1", "confirm", face_id="nope")
    single = log.append(search_record(faces=("f9",))).seq
    entry = log.review(single, "rev1", "confirm")
    assert entry.record.target_face_id == "f9"
    with pytest.raises(ValueError):
        log.review(single, "rev1", "maybe")
    with pytest.raises(RecordNotFound):
        log.review(999, "rev1", "confirm")
    with pytest.raises(MissingContext):
        log.review(single, "", "confirm")
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [r.outcome for r in refused] == ["review_refused", "review_refused", "record_not_found",
                                           "missing_context"]


def test_no_match_and_non_queries_cannot_be_reviewed(log: AuditLog) -> None:
    q = log.append({**search_record(), "candidates": [], "outcome": "no_match"}).seq
    with pytest.raises(ReviewRefused):
        log.review(q, "rev1", "confirm")
    assert log.match_status(q).candidates == ()


def test_verify_pair_review(log: AuditLog) -> None:
    q = log.append({**record_fields(0), "action": "verify", "candidates": []}).seq
    log.review(q, "rev1", "confirm")
    log.review(q, "rev2", "confirm")
    assert statuses(log, q) == {None: "confirmed"}
    assert log.verify().ok


def test_record_validation() -> None:
    base = {**record_fields(0), "seq": 1}
    with pytest.raises(ValueError, match="action"):
        AuditRecord.from_dict({**base, "action": "peek"})
    with pytest.raises(ValueError, match="probe_sha256"):
        AuditRecord.from_dict({**base, "probe_sha256": ["not-a-digest"]})
    with pytest.raises(ValueError, match="started_at"):
        AuditRecord.from_dict({**base, "started_at": "yesterday"})
    with pytest.raises(ValueError, match="unknown"):
        AuditRecord.from_dict({**base, "image": "bytes"})
    with pytest.raises(ValueError, match="canonical"):
        decode_record(canonical_bytes(AuditRecord.from_dict(base).to_dict()).replace(b",", b", ", 1))


@pytest.mark.parametrize("parallel", [False, True])
def test_parallel_verify_paths_find_the_same_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    parallel: bool) -> None:
    """Background scan thread with small batches (several batches, early stop)."""
    import audit.trail.store

    scan = audit.trail.store.AuditStore.scan_arrow
    monkeypatch.setattr(audit.trail.store.AuditStore, "scan_arrow",
                        lambda self, batch_size=100_000, ordered=True: scan(self, 7, ordered))
    log = make_log(tmp_path, "file", checkpoint_every=5)
    fill(log, 40)
    report = log.verify(parallel=parallel)
    assert report.ok and report.records == 40 and report.checkpoints == 8
    sql(log, "UPDATE audit_checkpoint_chain SET merkle_root = ? WHERE seq = 30", [os.urandom(32)])
    err = log.verify(parallel=parallel).error
    assert err is not None and (err.seq, err.kind) == (30, "bad_signature")
    blob = log.get(12).canonical.replace(b'"alice"', b'"eve"')
    sql(log, "UPDATE audit_log SET record = ? WHERE seq = 12", [blob])
    err = log.verify(parallel=parallel).error
    assert err is not None and (err.seq, err.kind) == (12, "hash_mismatch")
    # the log is still usable after an early stop of the background scan
    assert log.append(record_fields(99)).seq == 41


def test_concurrent_key_creation_yields_one_key(tmp_path: Path) -> None:
    from audit.trail.keys import load_or_create_private_key, public_key_pem

    path = tmp_path / "keys" / "audit-key"
    pems: list[str] = []

    def work() -> None:
        pems.append(public_key_pem(load_or_create_private_key(path).public_key()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pems) == 8 and len(set(pems)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["audit-key"]  # no temporary files left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
