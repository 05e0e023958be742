"""AuditLog on DuckDB: append, read, checkpoints, tampering with raw SQL, concurrency, parallel verify."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from audit.errors import ChainIntegrityError, RecordNotFound
from audit.trail.chain import entry_hash
from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes, decode_record
from audit.trail.store import AuditFilter
from core.storage.connection import Database
from tests.audit.trail._helpers import KINDS, make_log, record_fields, sql


def fill(log: AuditLog, n: int, **kw: str) -> None:
    for i in range(n):
        log.append(record_fields(i, **kw))


def fault(log: AuditLog) -> ChainIntegrityError:
    """The first fault ``verify`` reports (it reports, and raise_for_fault raises, the same one)."""
    report = log.verify()
    assert not report.ok and report.error is not None
    assert report.fault == report.error.to_dict()
    with pytest.raises(ChainIntegrityError) as info:
        report.raise_for_fault()
    assert info.value is report.error
    return report.error


def test_append_get_list_and_verify(log: AuditLog) -> None:
    fill(log, 12, case="A")
    fill(log, 3, operator="bob", case="B")
    assert log.size() == 15
    entry = log.get(13)
    assert entry.record.operator == "bob" and entry.seq == 13
    # what was signed holds the candidates sealed; the log hands them out opened (audit.trail.sealed)
    assert b'"s0"' not in entry.canonical
    assert log.field_keys.open(decode_record(entry.canonical)) == (entry.record, ())
    assert [e.seq for e in log.list(AuditFilter(case_ref="B"))] == [13, 14, 15]
    assert [e.seq for e in log.list(AuditFilter(operator="alice"), limit=2)] == [1, 2]
    assert len(log.list(AuditFilter(gallery="g", action="search"))) == 15
    assert log.list(AuditFilter(action="verify")) == []
    assert [e.seq for e in log.list(AuditFilter(after_seq=13, operator="bob"))] == [14, 15]
    assert [e.seq for e in log.list(AuditFilter(since="2026-01-01T00:00:10"))] == [11, 12]  # i=10, 11 of case A
    report = log.verify()
    assert report.ok and report.records == 15 and report.signed == 15
    assert report.head_hash == log.get(15).entry_hash.hex()
    with pytest.raises(RecordNotFound):
        log.get(16)


def test_records_are_canonical_and_float_free(log: AuditLog) -> None:
    e = log.append(record_fields(1))
    assert b"0.100000" in e.canonical and b"0.1," not in e.canonical
    signed = decode_record(e.canonical)
    assert canonical_bytes(signed.to_dict()) == e.canonical and log.field_keys.open(signed)[0] == e.record
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


def test_truncated_tail_is_caught_by_a_published_checkpoint(log: AuditLog) -> None:
    """Dropping the tail drops its notes too: only a checkpoint held outside the database knows."""
    fill(log, 12)
    published = log.checkpoint().note
    sql(log, "DELETE FROM audit_log WHERE seq > 8")
    assert log.verify().ok  # the database alone cannot tell
    report = log.verify(trusted=[published])
    assert report.error is not None and (report.error.seq, report.error.kind) == (9, "truncated")


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


def test_forged_altered_and_removed_notes_are_caught(log: AuditLog) -> None:
    fill(log, 12)
    assert log.verify().ok
    note = log.store.note(12)
    assert note is not None
    sql(log, "UPDATE audit_log SET note = replace(note, '\n12\n', '\n13\n') WHERE seq = 12")
    err = fault(log)
    assert (err.seq, err.kind) == (12, "bad_signature")
    sql(log, "UPDATE audit_log SET note = NULL WHERE seq = 12")
    err = fault(log)
    assert (err.seq, err.kind) == (12, "unsigned")
    sql(log, "UPDATE audit_log SET note = ? WHERE seq = 12", [note])
    assert log.verify().ok


def test_consistent_rewrite_is_caught_by_checkpoint(log: AuditLog) -> None:
    """Rewrite record 7 and recompute every later hash: the signed notes name record 7."""
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
    assert (err.seq, err.kind) == (7, "rewritten")


def test_verify_with_explicit_public_key(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 6)
    assert log.verify(log.public_key_pem()).ok
    other = AuditLog(log.db, key_path=tmp_path / "other-key")
    err = other.verify(other.public_key_pem()).error
    assert err is not None and err.kind == "bad_signature"


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
    assert report.ok and report.records == 1600 and report.signed == 1600


def test_two_logs_on_one_database_keep_one_chain(tmp_path: Path) -> None:
    """Two AuditLog objects (as two processes would) interleave: the stale head cache is detected."""
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


@pytest.mark.parametrize("parallel", [False, True])
def test_parallel_verify_paths_find_the_same_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    parallel: bool) -> None:
    """Serial and background-thread reads with small batches (several batches, early stop)."""
    from audit.trail.store import AuditStore

    scan = AuditStore.scan
    monkeypatch.setattr(AuditStore, "scan", lambda self, batch_size=100_000, ordered=True: scan(self, 7, ordered))
    log = make_log(tmp_path, "file", checkpoint_every=5)
    fill(log, 40)
    report = log.verify(parallel=parallel)
    assert report.ok and report.records == 40 and report.signed == 40
    sql(log, "UPDATE audit_log SET note = replace(note, '\n30\n', '\n31\n') WHERE seq = 30")
    assert log.verify(parallel=parallel).ok  # the latest note and the root commit to record 30
    err = log.verify(parallel=parallel, all_signatures=True).error
    assert err is not None and (err.seq, err.kind) == (30, "bad_signature")
    blob = log.get(12).canonical.replace(b'"alice"', b'"eve"')
    sql(log, "UPDATE audit_log SET record = ? WHERE seq = 12", [blob])
    err = log.verify(parallel=parallel).error
    assert err is not None and (err.seq, err.kind) == (12, "hash_mismatch")
    # the log is still usable after an early stop of the background scan
    assert log.append(record_fields(99)).seq == 41


def test_a_failing_read_is_raised_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.trail.store import AuditStore
    from core.storage.errors import StorageError

    log = make_log(tmp_path, "file")
    fill(log, 3)

    def broken(self: AuditStore, batch_size: int = 100_000, ordered: bool = True):  # type: ignore[no-untyped-def]
        yield from ()
        raise StorageError("disk gone")

    monkeypatch.setattr(AuditStore, "scan_packed", broken)  # the read verify makes
    for parallel in (False, True):
        with pytest.raises(StorageError, match="disk gone"):
            log.verify(parallel=parallel)


