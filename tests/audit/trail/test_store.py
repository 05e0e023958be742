"""Property test through DuckDB: random raw-SQL tampering makes AuditLog.verify name the first bad seq."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes
from core.storage.connection import Database
from tests.audit._audit_helpers import record_fields


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "audit-key"


def fresh_log(n: int, key_path: Path) -> AuditLog:
    log = AuditLog(Database(":memory:"), key_path=key_path, checkpoint_every=4)
    for i in range(n):
        log.append(record_fields(i, operator=f"op{i % 3}"))
    log.checkpoint()
    return log


def sql(log: AuditLog, statement: str, params: list[object]) -> None:
    with log.db.connect() as con:
        con.execute(statement, params)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(2, 14), st.data())
def test_raw_sql_tampering_is_named_at_the_first_bad_seq(key_path: Path, n: int, data: st.DataObject) -> None:
    log = fresh_log(n, key_path)
    assert log.verify().ok
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
    report = log.verify()
    assert not report.ok and report.error is not None
    assert report.error.seq == want[0] and report.error.kind in want[1], report.error
