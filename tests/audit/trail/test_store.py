"""audit.trail.store: the trail's only SQL, append-only; raw-SQL tampering is named at the first bad seq."""

from __future__ import annotations

import ast
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import audit.trail
from audit.trail.chain import RowBatch
from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes
from tests.audit.trail._helpers import KINDS, make_log, record_fields, sql

TRAIL = Path(audit.trail.__file__).parent


@contextmanager
def fresh_log(kind: str, n: int) -> Iterator[AuditLog]:
    """A new log of ``n`` records (own folder, database and key: nothing shared between examples)."""
    with tempfile.TemporaryDirectory() as folder:
        log = make_log(Path(folder), kind, checkpoint_every=4)
        for i in range(n):
            log.append(record_fields(i, operator=f"op{i % 3}"))
        log.checkpoint()
        try:
            yield log
        finally:
            log.db.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS), st.integers(2, 14), st.data())
def test_raw_sql_tampering_is_named_at_the_first_bad_seq(kind: str, n: int, data: st.DataObject) -> None:
    with fresh_log(kind, n) as log:
        tamper_and_verify(log, n, data)


def tamper_and_verify(log: AuditLog, n: int, data: st.DataObject) -> None:
    assert log.verify().ok
    published = log.checkpoint().note  # held outside the database (a truncation shows only against it)
    k = data.draw(st.integers(1, n))
    op = data.draw(st.sampled_from(["field", "prev", "hash", "delete", "swap", "truncate"]))
    e = log.get(k)
    if op == "field":
        rec = e.record.to_dict()
        field = data.draw(st.sampled_from(["operator", "purpose", "case_ref", "outcome", "latency_ms",
                                           "faces_found", "candidates", "started_at"]))
        rec[field] = {"faces_found": 7, "candidates": []}.get(field, "tampered")
        sql(log, "UPDATE audit_log SET record = ? WHERE seq = ?", [canonical_bytes(rec), k])
        want = (k, {"hash_mismatch"})
    elif op == "prev":
        sql(log, "UPDATE audit_log SET prev_hash = ? WHERE seq = ?", [os.urandom(32), k])
        want = (k, {"prev_mismatch"})
    elif op == "hash":
        sql(log, "UPDATE audit_log SET entry_hash = ? WHERE seq = ?", [os.urandom(32), k])
        want = (k, {"hash_mismatch"})
    elif op == "delete":
        sql(log, "DELETE FROM audit_log WHERE seq = ?", [k])
        want = (k, {"seq_gap", "truncated"})
    elif op == "swap":
        j = data.draw(st.integers(1, n).filter(lambda j: j != k))
        a, b = sorted((k, j))
        ea, eb = log.get(a), log.get(b)
        sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            [eb.canonical, eb.prev_hash, eb.entry_hash, a])
        sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            [ea.canonical, ea.prev_hash, ea.entry_hash, b])
        want = (a, {"prev_mismatch"})
    else:
        sql(log, "DELETE FROM audit_log WHERE seq >= ?", [k])
        want = (k, {"truncated"})
    report = log.verify(trusted=[published])
    assert not report.ok and report.error is not None
    assert report.error.seq == want[0] and report.error.kind in want[1], report.error


def test_scan_hands_plain_columns_to_the_verifier(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    for i in range(5):
        log.append(record_fields(i))
    got = list(log.store.scan(batch_size=2))
    assert [b.seqs for b in got] == [[1, 2], [3, 4], [5]]
    first = got[0]
    assert isinstance(first, RowBatch)
    assert all(type(x) is int for b in got for x in b.seqs)
    cells = [x for b in got for col in (b.prev_hashes, b.entry_hashes, b.records) for x in col]
    assert len(cells) == 15 and all(type(x) is bytes for x in cells)
    assert first.records[1] == log.get(2).canonical and first.entry_hashes[1] == log.get(2).entry_hash


def test_every_record_is_stored_with_its_signed_note_and_a_frontier_now_and_then(tmp_path: Path) -> None:
    from audit.trail.chain import MerkleFrontier, merkle_root
    from audit.trail.notes import parse_checkpoint
    from audit.trail.store import FRONTIER_EVERY

    log = make_log(tmp_path, "file")
    for i in range(FRONTIER_EVERY + 3):
        log.append(record_fields(i))
    hashes = log.store.hashes(1, FRONTIER_EVERY + 3)
    for size in (1, 2, FRONTIER_EVERY, FRONTIER_EVERY + 3):
        cp = parse_checkpoint(log.store.note(size) or "")[0]
        assert (cp.origin, cp.size, cp.root) == (log.origin, size, merkle_root(hashes[:size], hashed=True))
    with log.store.writing() as w:
        stored = w.frontier_before(FRONTIER_EVERY + 3)
    assert stored is not None and stored[0] == FRONTIER_EVERY
    assert MerkleFrontier.from_bytes(*stored).root() == merkle_root(hashes[:FRONTIER_EVERY], hashed=True)


def test_store_is_append_only() -> None:
    source = (TRAIL / "store.py").read_text()
    assert "INSERT INTO audit_log" in source, "the check below would pass on the wrong file"
    assert not re.search(r"\b(UPDATE|DELETE|TRUNCATE|DROP|ALTER)\b", source, re.IGNORECASE)
    from audit.trail.store import AuditStore, StoreWriter

    for cls in (AuditLog, AuditStore, StoreWriter):
        assert not [name for name in dir(cls) if name.startswith(("update", "delete", "remove", "truncate"))]


def test_only_the_store_speaks_sql() -> None:
    modules = sorted(TRAIL.glob("*.py"))
    assert {p.name for p in modules} >= {"store.py", "log.py", "chain.py", "review.py", "excerpt.py", "export.py"}
    for path in modules:
        tree = ast.parse(path.read_text())
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if path.name == "store.py":
            assert "duckdb" in imported
            continue
        assert "duckdb" not in imported, path
        assert ".execute(" not in path.read_text(), path
