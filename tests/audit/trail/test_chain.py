"""audit.trail.chain: any tampering with a log makes verification fail at the first bad seq; RFC 6962."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import audit.trail.chain
from audit.errors import ChainIntegrityError
from audit.trail.chain import (
    Checkpoint,
    MerkleFrontier,
    VerifyReport,
    entry_hash,
    inclusion_proofs,
    leaf_hash,
    merkle_root,
    node_hash,
    sign_checkpoint,
    verify_chain,
    verify_inclusion,
)
from audit.trail.keys import fingerprint
from tests.audit.trail._helpers import Entry, batches, build_chain, record_fields

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
OTHER = Ed25519PrivateKey.generate()

texts = st.text(min_size=0, max_size=12)


@st.composite
def logs(draw: st.DrawFn, min_size: int = 1) -> tuple[list[Entry], list[Checkpoint]]:
    """A valid log of 1..25 varied records, checkpoints at random seqs and always at the head."""
    n = draw(st.integers(min_size, 25))
    records = []
    for i in range(n):
        fields = record_fields(i, operator=draw(texts), case=draw(texts))
        fields["details"] = {"note": draw(texts), "n": draw(st.integers(-5, 5)),
                             "x": draw(st.floats(-1e6, 1e6, allow_nan=False))}
        fields["action"] = draw(st.sampled_from(["search", "verify", "enroll", "delete", "export"]))
        records.append(fields)
    cps = set(draw(st.sets(st.integers(1, n), max_size=4))) | {n}
    return build_chain(records, KEY, cps)


def verify(entries: list[Entry], cps: list[Checkpoint], size: int = 10_000, **kw: object) -> VerifyReport:
    """Verify an in-memory log handed over in batches of ``size`` rows (as the store does)."""
    return verify_chain(batches(entries, size), cps, PUB, **kw)  # type: ignore[arg-type]


def expect_fault(entries: list[Entry], cps: list[Checkpoint], seq: int, kinds: set[str] | None = None,
                 size: int = 10_000) -> None:
    report = verify(entries, cps, size)
    assert not report.ok and report.error is not None and report.fault == report.error.to_dict()
    with pytest.raises(ChainIntegrityError) as info:
        report.raise_for_fault()
    assert info.value.seq == seq, info.value
    if kinds is not None:
        assert info.value.kind in kinds, info.value


sizes = st.integers(1, 30)  # rows per batch: faults land at, before and after batch boundaries


def mutate_json(value: object, data: st.DataObject) -> object:
    """Return a different JSON value."""
    if value is None:
        return data.draw(st.sampled_from(["x", 0, True]))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + data.draw(st.sampled_from([-1, 1, 1000]))
    if isinstance(value, str):
        return value + data.draw(st.text(min_size=1, max_size=3))
    if isinstance(value, list):
        if value and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(value) - 1))
            return value[:i] + [mutate_json(value[i], data)] + value[i + 1:]
        return value + ["extra"]
    assert isinstance(value, dict)
    if value and data.draw(st.booleans()):
        k = data.draw(st.sampled_from(sorted(value)))
        return {**value, k: mutate_json(value[k], data)}
    return {**value, "extra" + data.draw(texts): 1}


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(logs(), sizes)
def test_untouched_log_verifies(log: tuple[list[Entry], list[Checkpoint]], size: int) -> None:
    entries, cps = log
    report = verify(entries, cps, size)
    assert report.ok and report.error is None and report.fault is None
    assert report.records == report.head_seq == len(entries) and report.checkpoints == len(cps)
    assert report.head_hash == entries[-1].entry_hash.hex()


@SETTINGS
@given(logs(), st.data())
def test_any_field_change_is_caught_at_that_record(log: tuple[list[Entry], list[Checkpoint]],
                                                  data: st.DataObject) -> None:
    entries, cps = log
    i = data.draw(st.integers(0, len(entries) - 1))
    record = json.loads(entries[i].canonical)
    key = data.draw(st.sampled_from(sorted(record)))
    record[key] = mutate_json(record[key], data)
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert blob != entries[i].canonical
    tampered = list(entries)
    tampered[i] = replace(entries[i], canonical=blob)
    expect_fault(tampered, cps, i + 1, {"hash_mismatch"}, data.draw(sizes))


@SETTINGS
@given(logs(), st.data())
def test_changed_chain_columns_are_caught(log: tuple[list[Entry], list[Checkpoint]], data: st.DataObject) -> None:
    entries, cps = log
    i = data.draw(st.integers(0, len(entries) - 1))
    column = data.draw(st.sampled_from(["prev_hash", "entry_hash", "byte"]))
    e = entries[i]
    if column == "byte":
        pos = data.draw(st.integers(0, len(e.canonical) - 1))
        blob = bytearray(e.canonical)
        blob[pos] ^= data.draw(st.integers(1, 255))
        changed = replace(e, canonical=bytes(blob))
        kinds = {"hash_mismatch"}
    else:
        changed = replace(e, **{column: os.urandom(32)})
        kinds = {"prev_mismatch" if column == "prev_hash" else "hash_mismatch"}
    tampered = list(entries)
    tampered[i] = changed
    expect_fault(tampered, cps, i + 1, kinds, data.draw(sizes))


@SETTINGS
@given(logs(min_size=2), st.data())
def test_deleted_inserted_duplicated_reordered_records_are_caught(
    log: tuple[list[Entry], list[Checkpoint]], data: st.DataObject
) -> None:
    entries, cps = log
    n = len(entries)
    op = data.draw(st.sampled_from(["delete", "insert_naive", "insert_linked", "duplicate", "swap", "truncate"]))
    cp_seqs = {cp.seq for cp in cps}
    size = data.draw(sizes)
    if op == "delete":
        i = data.draw(st.integers(0, n - 1))
        tampered = entries[:i] + entries[i + 1:]
        # a deleted last record is a truncated tail (caught by the head checkpoint)
        expect_fault(tampered, cps, i + 1, {"seq_gap", "truncated"}, size=size)
    elif op == "insert_naive":
        i = data.draw(st.integers(0, n))
        forged = Entry(i + 1, os.urandom(32), os.urandom(32), b'{"forged":true}')
        expect_fault(entries[:i] + [forged] + entries[i:], cps, i + 1, size=size)
    elif op == "insert_linked":
        # a forged record that links correctly to its predecessor is indistinguishable on its own:
        # the record after it (same seq) or a checkpoint at its seq names the fault
        i = data.draw(st.integers(0, n - 1))
        prev = entries[i - 1].entry_hash if i else bytes(32)
        blob = b'{"forged":' + str(i).encode() + b"}"
        forged = Entry(i + 1, prev, entry_hash(prev, blob), blob)
        tampered = entries[:i] + [forged] + entries[i:]
        if i + 1 in cp_seqs:
            expect_fault(tampered, cps, i + 1, {"checkpoint_mismatch"}, size=size)
        else:
            expect_fault(tampered, cps, i + 2, {"duplicate_seq"}, size=size)
    elif op == "duplicate":
        i = data.draw(st.integers(0, n - 1))
        tampered = entries[: i + 1] + [entries[i]] + entries[i + 1:]
        expect_fault(tampered, cps, i + 2, {"duplicate_seq"}, size=size)
    elif op == "swap":
        i, j = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
        tampered = list(entries)
        tampered[i], tampered[j] = tampered[j], tampered[i]
        # the verifier reads ahead no further than its batch: a seq that turns up early is "reordered"
        # when the missing one is in the same batch, else (not yet seen) a "seq_gap"
        expect_fault(tampered, cps, i + 1, {"reordered" if i // size == j // size else "seq_gap"}, size=size)
    else:
        m = data.draw(st.integers(0, n - 1))
        expect_fault(entries[:m], cps, m + 1, {"truncated"}, size=size)


@SETTINGS
@given(logs(), st.data())
def test_forged_checkpoints_are_caught(log: tuple[list[Entry], list[Checkpoint]], data: st.DataObject) -> None:
    entries, cps = log
    n = len(entries)
    cp = data.draw(st.sampled_from(cps))
    how = data.draw(st.sampled_from(["seq", "head", "root", "signature", "other_key", "unsigned_claim"]))
    later = [c.seq for c in cps if c.seq > cp.seq]
    if how == "seq":
        # moving a checkpoint also breaks the link of the one that followed it
        forged = replace(cp, seq=data.draw(st.integers(1, n + 5).filter(lambda s: s != cp.seq)))
        tampered = [c for c in cps if c is not cp] + [forged]
        expect_fault(entries, tampered, min([forged.seq] + later[:1]), {"bad_signature", "checkpoint_chain"})
        return
    elif how == "head":
        forged = replace(cp, head_hash=os.urandom(32))
    elif how == "root":
        forged = replace(cp, merkle_root=os.urandom(32))
    elif how == "signature":
        sig = bytearray(cp.signature)
        sig[data.draw(st.integers(0, 63))] ^= 1
        forged = replace(cp, signature=bytes(sig))
    elif how == "other_key":
        forged = sign_checkpoint(OTHER, fingerprint(PUB), cp.seq, cp.head_hash, cp.merkle_root, cp.created_at,
                                 cp.prev)
    else:
        # a correctly signed checkpoint whose head does not match the log (e.g. signed before a rewrite)
        forged = sign_checkpoint(KEY, cp.key_id, cp.seq, os.urandom(32), cp.merkle_root, cp.created_at, cp.prev)
        tampered = [c for c in cps if c is not cp] + [forged]
        expect_fault(entries, tampered, forged.seq, {"checkpoint_mismatch"})
        return
    tampered = [c for c in cps if c is not cp] + [forged]
    expect_fault(entries, tampered, forged.seq, {"bad_signature"})


def test_rewritten_tail_with_recomputed_hashes_is_caught_by_the_next_checkpoint() -> None:
    records = [record_fields(i) for i in range(30)]
    entries, cps = build_chain(records, KEY, {10, 20, 30})
    records[14]["operator"] = "mallory"
    rewritten, _ = build_chain(records, KEY, set())
    expect_fault(rewritten, cps, 20, {"checkpoint_mismatch"})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(min_size=2), st.data())
def test_deleted_or_inserted_checkpoints_break_the_checkpoint_chain(
    log: tuple[list[Entry], list[Checkpoint]], data: st.DataObject
) -> None:
    entries, cps = log
    assume(len(cps) >= 2)
    i = data.draw(st.integers(0, len(cps) - 2))  # never the last: a dropped tail is a truncation
    tampered = cps[:i] + cps[i + 1:]
    expect_fault(entries, tampered, cps[i + 1].seq, {"checkpoint_chain"})
    # a validly signed checkpoint slipped in (e.g. signed by a stolen key) does not link either
    extra = sign_checkpoint(KEY, cps[i].key_id, cps[i].seq, cps[i].head_hash, cps[i].merkle_root,
                            "2030-01-01T00:00:00.000000Z", os.urandom(32))
    expect_fault(entries, cps + [extra], cps[i].seq, {"checkpoint_chain"})


def test_checkpoints_need_a_public_key() -> None:
    entries, cps = build_chain([record_fields(i) for i in range(3)], KEY, {3})
    report = verify_chain(batches(entries), cps, None)
    assert report.error is not None and (report.error.seq, report.error.kind) == (3, "bad_signature")


# -- RFC 6962 Merkle tree -------------------------------------------------------------------------


def rfc6962_root(data: list[bytes]) -> bytes:
    """Merkle tree hash straight from RFC 6962 section 2.1 (independent of audit.trail.chain)."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(data[:k]) + rfc6962_root(data[k:])).digest()


def test_rfc6962_known_vector() -> None:
    # RFC 6962 hashing of the empty tree and of a single empty leaf
    assert merkle_root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([b""]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert node_hash(leaf_hash(b"a"), leaf_hash(b"b")) == merkle_root([b"a", b"b"])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 70), st.data())
def test_merkle_root_proofs_and_frontier_agree_with_rfc6962(n: int, data: st.DataObject) -> None:
    leaves = [hashlib.sha256(str((n, i)).encode()).digest() for i in range(n)]
    root = rfc6962_root(leaves)
    assert merkle_root(leaves) == root
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == root
    again = MerkleFrontier.from_bytes(n, frontier.to_bytes())
    assert again.root() == root
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proofs(leaves, [i])[i]
    assert verify_inclusion(leaves[i], i, n, proof, root)
    assert not verify_inclusion(os.urandom(32), i, n, proof, root)
    if proof:
        bad = list(proof)
        bad[data.draw(st.integers(0, len(bad) - 1))] = os.urandom(32)
        assert not verify_inclusion(leaves[i], i, n, bad, root)
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not verify_inclusion(leaves[i], j, n, proof, root)


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16])
def test_blockwise_merkle_checks_match_the_frontier(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """The verifier hashes Merkle leaves in blocks; small blocks exercise the block folding."""
    monkeypatch.setattr(audit.trail.chain, "_BLOCK", block)
    records = [record_fields(i) for i in range(45)]
    entries, cps = build_chain(records, KEY, set(range(1, 46)))
    assert verify(entries, cps).ok
    for bad_seq in (1, block, block + 1, min(3 * block, 44), 45):
        cp = cps[bad_seq - 1]
        forged = sign_checkpoint(KEY, cp.key_id, cp.seq, cp.head_hash, os.urandom(32), cp.created_at, cp.prev)
        tampered = [c for c in cps if c is not cp] + [forged]
        expect_fault(entries, tampered, bad_seq, {"checkpoint_mismatch"})
    # a chain fault before a checkpoint fault wins; the checkpoint fault before a chain fault wins
    cp = cps[9]
    forged = sign_checkpoint(KEY, cp.key_id, cp.seq, cp.head_hash, os.urandom(32), cp.created_at, cp.prev)
    tampered_cps = [c for c in cps if c is not cp] + [forged]
    broken = list(entries)
    broken[4] = replace(entries[4], canonical=entries[4].canonical + b" ")
    expect_fault(broken, tampered_cps, 5, {"hash_mismatch"})
    broken = list(entries)
    broken[20] = replace(entries[20], canonical=entries[20].canonical + b" ")
    expect_fault(broken, tampered_cps, 10, {"checkpoint_mismatch"})


def test_entry_hashes_are_rfc6962_leaf_hashes_of_prev_and_record() -> None:
    entries, cps = build_chain([record_fields(i) for i in range(7)], KEY, {7})
    for e in entries:
        # an independent re-implementation of the formula, on purpose (a cross-check of entry_hash)
        assert e.entry_hash == hashlib.sha256(b"\x00" + e.prev_hash + e.canonical).digest()
        assert e.entry_hash == leaf_hash(e.prev_hash + e.canonical) == entry_hash(e.prev_hash, e.canonical)
    assert [e.prev_hash for e in entries] == [bytes(32)] + [e.entry_hash for e in entries[:-1]]
    data = [e.prev_hash + e.canonical for e in entries]
    assert cps[0].merkle_root == rfc6962_root(data) == merkle_root([e.entry_hash for e in entries], hashed=True)
    proof = inclusion_proofs(data, [3])[3]
    assert verify_inclusion(entries[3].entry_hash, 3, 7, proof, cps[0].merkle_root, hashed=True)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proofs(data, [7])


def test_all_signatures_mode_checks_every_checkpoint() -> None:
    entries, cps = build_chain([record_fields(i) for i in range(12)], KEY, {4, 8, 12})
    # a checkpoint whose signature was replaced by another valid-looking one, with the link intact:
    # only reachable by a signer with another key; the anchored mode trusts it through the link...
    odd = replace(cps[0], signature=OTHER.sign(cps[0].message()))
    relinked = [odd, sign_checkpoint(KEY, cps[1].key_id, 8, cps[1].head_hash, cps[1].merkle_root,
                                     cps[1].created_at, odd.digest()), cps[2]]
    relinked[2] = sign_checkpoint(KEY, cps[2].key_id, 12, cps[2].head_hash, cps[2].merkle_root,
                                  cps[2].created_at, relinked[1].digest())
    assert verify(entries, relinked).ok  # committed by the key holder's later signatures
    report = verify(entries, relinked, all_signatures=True)
    assert report.error is not None and (report.error.seq, report.error.kind) == (4, "bad_signature")


def test_verification_stops_reading_at_the_first_record_fault() -> None:
    entries, cps = build_chain([record_fields(i) for i in range(30)], KEY, {10, 30})
    tampered = list(entries)
    tampered[4] = replace(entries[4], canonical=entries[4].canonical + b" ")
    read: list[int] = []

    def rows():  # type: ignore[no-untyped-def]
        for batch in batches(tampered, 3):
            read.append(batch.seqs[0])
            yield batch

    report = verify_chain(rows(), cps, PUB)
    assert report.error is not None and (report.error.seq, report.error.kind) == (5, "hash_mismatch")
    assert read == [1, 4]  # the batch holding seq 5 was the last one read
    assert report.records == 4 and report.head_hash == entries[3].entry_hash.hex()


def test_chain_is_pure_rfc6962_over_bytes() -> None:
    """chain.py reads bytes only: no database, Arrow or numpy (the store turns Arrow batches into RowBatch)."""
    tree = ast.parse(Path(audit.trail.chain.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported, "no imports found: the check would pass vacuously"
    assert "hashlib" in imported
    assert not imported & {"numpy", "pyarrow", "duckdb", "pandas", "core"}, imported
