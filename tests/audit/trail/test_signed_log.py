"""Signed notes on every record, consistency proofs and the --out guard, from the library's side."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import ChainIntegrityError
from audit.outputs import OutputRefused, check_out_path
from audit.trail.chain import consistency_proof, merkle_root, verify_consistency
from audit.trail.log import AuditLog
from audit.trail.notes import parse_checkpoint, verify_checkpoint
from tests.audit.trail._helpers import make_log, record_fields, sql

LEAVES = [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(300)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.data())
def test_consistency_proofs_verify_and_any_change_fails(a: int, b: int, data: st.DataObject) -> None:
    m, n = sorted((a, b))
    old, new = merkle_root(LEAVES[:m], hashed=True), merkle_root(LEAVES[:n], hashed=True)
    proof = consistency_proof(LEAVES, m, n)
    assert verify_consistency(m, n, old, new, proof)
    assert len(proof) <= 2 * max(n, 1).bit_length()
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bent = [*proof[:i], bytes(32), *proof[i + 1 :]]
        assert not verify_consistency(m, n, old, new, bent)
        assert not verify_consistency(m, n, old, new, proof[:-1])
        assert not verify_consistency(m, n, old, new, [*proof, proof[0]])
    if 0 < m < n:
        other = merkle_root([bytes(32), *LEAVES[1:m]], hashed=True)
        assert not verify_consistency(m, n, other, new, proof)  # a forked old tree
        assert not verify_consistency(m, n, old, merkle_root(LEAVES[1 : n + 1], hashed=True), proof)


def test_each_record_is_signed_by_the_logs_key_for_its_origin(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    entries = [log.append(record_fields(i)) for i in range(5)]
    hashes = [e.entry_hash for e in entries]
    for size in range(1, 6):
        cp = verify_checkpoint(log.store.note(size) or "", [log.note_key()], origin=log.origin)
        assert cp.size == size and cp.root == merkle_root(hashes[:size], hashed=True)
    assert log.checkpoint() == parse_checkpoint(log.store.note(5) or "")[0]
    assert log.origin.startswith("facetrail.example/") and str(tmp_path) not in log.origin


def test_a_log_made_before_signed_notes_is_verified_whole_then_signed(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    for i in range(6):
        log.append(record_fields(i))
    sql(log, "UPDATE audit_log SET note = NULL")  # as schema version 3 left it
    old = AuditLog(log.db, key_path=log.key_path)
    report = old.verify()
    assert report.error is not None and (report.error.seq, report.error.kind) == (1, "unsigned")
    cp = old.checkpoint()  # verifies all six (decoded), then signs them with a checkpoint record
    assert cp.size == 7 and old.get(7).record.action == "checkpoint"
    assert old.verify().ok and old.verify().signed == 7


def test_a_garbage_record_in_an_unsigned_log_is_never_signed(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    for i in range(4):
        log.append(record_fields(i))
    sql(log, "UPDATE audit_log SET note = NULL")
    from audit.trail.chain import GENESIS, entry_hash

    prev = GENESIS
    rows = [(e.seq, e.canonical) for e in log.list()]
    rows[1] = (2, b'{"seq":2,"garbage":true}')
    for seq, blob in rows:
        h = entry_hash(prev, blob)
        sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", [blob, prev, h, seq])
        prev = h
    old = AuditLog(log.db, key_path=log.key_path)
    with pytest.raises(ChainIntegrityError, match="bad_record"):
        old.checkpoint()
    assert old.store.latest_note() is None


def test_out_guard(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    log.append(record_fields(1))
    protected = log.protected_paths()
    for target in (log.db.path, f"{log.db.path}.wal", log.key_path, f"{log.key_path}.pseudonym"):
        with pytest.raises(OutputRefused, match="never"):
            check_out_path(target, protected, force=True)
    (tmp_path / "alias").symlink_to(log.key_path)
    with pytest.raises(OutputRefused, match="never"):
        check_out_path(tmp_path / "alias", protected, force=True)
    existing = tmp_path / "out.csv"
    existing.write_text("x")
    with pytest.raises(OutputRefused, match="--force"):
        check_out_path(existing, protected)
    assert check_out_path(existing, protected, force=True) == existing
    with pytest.raises(OutputRefused, match="folder"):
        check_out_path(tmp_path, protected, force=True)
