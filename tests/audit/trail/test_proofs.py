"""Inclusion and consistency proofs from the stored subtree hashes (schema version 7): the same bytes as a proof
built from every leaf, O(log n) hashes read, old files without the column, and tampered subtree hashes.

The proofs are compared byte for byte with :func:`audit.trail.chain.consistency_proof` /
:func:`audit.trail.chain.inclusion_proofs` over all entry hashes (today's construction) and checked with an
RFC 6962 / RFC 9162 verifier written here from the RFC text, not facetrail's.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from audit.errors import ChainIntegrityError
from audit.trail.chain import consistency_proof, inclusion_proofs
from audit.trail.excerpt import verify_excerpt, write_excerpt
from audit.trail.log import AuditLog
from audit.trail.notes import parse_checkpoint
from audit.trail.store import AuditStore
from core.storage.connection import Database
from core.storage.schema import MIGRATIONS
from tests.audit.trail._helpers import make_log, record_fields, sql

N = 37


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2, from the text."""
    if m == n:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = ([old_root] if m & (m - 1) == 0 else []) + list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


def rfc_inclusion(index: int, n: int, leaf: bytes, root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.3.2, from the text (``leaf`` is the leaf hash)."""
    fn, sn, r = index, n - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def query(log: AuditLog, statement: str) -> list[tuple[object, ...]]:
    with log.db.connect() as con:
        return con.execute(statement).fetchall()


def root(log: AuditLog, size: int) -> bytes:
    note = log.store.note(size)
    assert note is not None
    return parse_checkpoint(note)[0].root


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = make_log(tmp_path, "file")
    for i in range(N):
        log.append(record_fields(i))
    return log


def test_proofs_are_byte_identical_to_the_ones_built_from_every_leaf(log: AuditLog) -> None:
    hashes = log.store.hashes(1, N)
    for n in range(1, N + 1):
        for m in range(0, n + 1):
            proof = log.prove_consistency(m, n)
            assert proof == consistency_proof(hashes, m, n), (m, n)
            assert m == 0 or rfc_consistency(m, n, root(log, m), root(log, n), proof)
        paths = inclusion_proofs(hashes[:n], range(n), hashed=True)
        for seq in range(1, n + 1):
            proof = log.prove_inclusion(seq, n)
            assert proof == paths[seq - 1], (seq, n)
            assert rfc_inclusion(seq - 1, n, hashes[seq - 1], root(log, n), proof)


def test_a_proof_reads_log_n_stored_hashes_not_the_leaves(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    read = AuditStore.subtree_hashes

    def counted(self: AuditStore, subtrees):  # type: ignore[no-untyped-def]
        wanted = set(subtrees)
        asked.append(len(wanted))
        return read(self, wanted)

    def no_leaves(self: AuditStore, start: int, end: int) -> list[bytes]:
        raise AssertionError(f"read the entry hashes {start}..{end}")

    monkeypatch.setattr(AuditStore, "subtree_hashes", counted)
    monkeypatch.setattr(AuditStore, "hashes", no_leaves)
    for m in (1, 5, 16, 31, 36):
        log.prove_consistency(m, N)
        assert asked[-1] <= 2 * N.bit_length(), (m, asked)
    log.prove_inclusion(17, N)
    assert asked[-1] <= 2 * N.bit_length() + 1  # the path and the leaf itself, in one read
    log.prove_inclusions([3, 30], N)
    assert asked[-1] <= 2 * (2 * N.bit_length() + 1)


def test_an_old_file_gains_the_column_and_still_verifies_and_proves(log: AuditLog, tmp_path: Path) -> None:
    """A file of schema version 6: no ``subtrees`` column. Opening it runs migration 7 (a NULL column); its records,
    hashes and notes are unchanged, it verifies, and its proofs (computed from the entry hashes) are the same."""
    hashes = log.store.hashes(1, N)
    want = {(m, n): consistency_proof(hashes, m, n) for n in (N, 20) for m in range(0, n + 1)}
    before = query(log, "SELECT seq, prev_hash, entry_hash, record, note FROM audit_log ORDER BY seq")
    sql(log, "ALTER TABLE audit_log DROP COLUMN subtrees")
    sql(log, "DELETE FROM schema_version WHERE version >= 7")  # a file written at version 6
    log.db.close()
    old = AuditLog(Database(log.db.path), key_path=log.key_path)
    assert old.size() == N  # opened: migrated
    assert [v for (v,) in query(old, "SELECT version FROM schema_version WHERE version >= 7 ORDER BY version")] == [
        m.version for m in MIGRATIONS if m.version >= 7]
    assert query(old, "SELECT count(*) FROM audit_log WHERE subtrees IS NOT NULL")[0][0] == 0
    assert query(old, "SELECT seq, prev_hash, entry_hash, record, note FROM audit_log ORDER BY seq") == before
    assert old.verify().ok
    for (m, n), proof in want.items():
        assert old.prove_consistency(m, n) == proof
    # records appended after the migration store their subtrees; proofs over both kinds of rows still agree
    for i in range(N, N + 12):
        old.append(record_fields(i))
    hashes = old.store.hashes(1, N + 12)
    for m in (1, 7, N, N + 5):
        assert old.prove_consistency(m, N + 12) == consistency_proof(hashes, m, N + 12)
    assert old.prove_inclusion(N + 3, N + 12) == inclusion_proofs(hashes, [N + 2], hashed=True)[N + 2]
    assert old.verify().ok


def test_a_tampered_subtree_hash_is_refused_not_served(log: AuditLog) -> None:
    """Someone with the file overwrites a stored subtree hash: the proof would not verify, so none is given."""
    sql(log, "UPDATE audit_log SET subtrees = ? WHERE seq = 32", [bytes(32 * 5)])
    with pytest.raises(ChainIntegrityError) as err:
        log.prove_consistency(5, N)
    assert err.value.kind == "checkpoint_mismatch" and "audit verify" in str(err.value)
    with pytest.raises(ChainIntegrityError):
        log.prove_inclusion(3, N)
    assert log.prove_consistency(3, 20)  # a proof that does not use the tampered subtrees is still given


def test_an_excerpts_proofs_match_and_a_tampered_subtree_is_refused(log: AuditLog, tmp_path: Path) -> None:
    """An excerpt of most of the log takes its paths from one pass over the leaves, a few records' paths come from
    the stored subtrees: the same bytes either way, and both refuse tampered stored hashes."""
    hashes = log.store.hashes(1, N)
    summary = write_excerpt(log, tmp_path / "excerpt.json", prove_from=[5, 32])
    doc = json.loads(Path(summary.path).read_text())
    paths = inclusion_proofs(hashes, range(N), hashed=True)
    for rec in doc["records"]:
        assert [base64.b64decode(p) for p in rec["proof"]] == paths[rec["seq"] - 1]
    for c in doc["consistency"]:
        assert [base64.b64decode(p) for p in c["proof"]] == consistency_proof(hashes, c["from"], N)
    assert verify_excerpt(tmp_path / "excerpt.json", log.vkey()).ok
    few = log.prove_inclusions([3, 30], N)
    assert few == {3: paths[2], 30: paths[29]}
    sql(log, "UPDATE audit_log SET subtrees = ? WHERE seq = 16", [bytes(32 * 4)])
    with pytest.raises(ChainIntegrityError):
        log.prove_inclusions([3, 30], N)
    sql(log, "UPDATE audit_log SET entry_hash = ? WHERE seq = 9", [bytes(32)])
    with pytest.raises(ChainIntegrityError):
        write_excerpt(log, tmp_path / "bad.json")
