"""The verifier's read (packed batches, the decode check beside it) names every fault it did before.

Attacks are made as the holder of the database file *and the signing key* would: the
history is rewritten with the tampered bytes and every note re-signed, so the chain, the
Merkle root and every signature verify, and only the decode check stands between a
garbage record and ``ok``. Batches are made small so that a fault falls inside, at the
start of and at the end of a batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import audit.trail.store
from audit.trail.chain import GENESIS, MerkleFrontier, PackedBatch, RowBatch, entry_hash, verify_chain
from audit.trail.log import AuditLog
from audit.trail.notes import sign_checkpoint_note
from audit.trail.records import AuditRecord
from tests.audit.trail._helpers import make_log, record_fields, sql

N = 10


def resign(log: AuditLog, blobs: dict[int, bytes]) -> None:
    """Replace the records ``blobs`` names, re-chain every record and re-sign every note with the log's key."""
    key = log._private_key()
    rows = {e.seq: e.canonical for e in log.list()}
    rows.update(blobs)
    prev, frontier = GENESIS, MerkleFrontier()
    for seq in sorted(rows):
        h = entry_hash(prev, rows[seq])
        frontier.append_hash(h)
        note = sign_checkpoint_note(log.origin, seq, frontier.root(), key)
        sql(log, "UPDATE audit_log SET record = ?, prev_hash = ?, entry_hash = ?, note = ?, frontier = NULL "
                 "WHERE seq = ?", [rows[seq], prev, h, note, seq])
        prev = h


@pytest.fixture(params=[1, 3, 4, 1000], ids=lambda b: f"batch{b}")
def small_batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(audit.trail.store, "SCAN_BATCH", request.param)
    return int(request.param)


def filled(tmp_path: Path) -> AuditLog:
    log = make_log(tmp_path, "file")
    for i in range(N):
        log.append(record_fields(i))
    return log


GARBAGE = {
    "not JSON": b"\x01\x02 not a record",
    "not UTF-8": b'{"seq":SEQ,"x":"\xff\xfe"}',
    "another seq": b'{"seq":999}',
    "a JSON array": b"[SEQ]",
    "truncated JSON": b'{"seq":SEQ,"action":"sea',
}


@pytest.mark.parametrize("seq", [1, 4, 5, N])
@pytest.mark.parametrize("what", sorted(GARBAGE))
def test_a_resigned_garbage_record_is_a_bad_record(
    tmp_path: Path, small_batches: int, seq: int, what: str
) -> None:
    log = filled(tmp_path)
    resign(log, {seq: GARBAGE[what].replace(b"SEQ", str(seq).encode())})
    report = log.verify()
    assert not report.ok and report.error is not None
    assert (report.error.seq, report.error.kind) == (seq, "bad_record"), report.fault
    assert report.signed == N  # every note verifies: only the decode check catches it
    assert not log.verify(parallel=True).ok


def test_the_first_of_two_garbage_records_is_named(tmp_path: Path, small_batches: int) -> None:
    log = filled(tmp_path)
    resign(log, {7: b"garbage", 3: b'{"seq":4}'})
    err = log.verify().error
    assert err is not None and (err.seq, err.kind) == (3, "bad_record")


@pytest.mark.parametrize("length", [0, 31, 33])
def test_a_stored_hash_of_the_wrong_length_is_named(tmp_path: Path, small_batches: int, length: int) -> None:
    log = filled(tmp_path)
    sql(log, "UPDATE audit_log SET entry_hash = ? WHERE seq = 6", [bytes(length)])
    err = log.verify().error
    assert err is not None and (err.seq, err.kind) == (6, "hash_mismatch")


def test_a_stored_prev_of_the_wrong_length_is_named(tmp_path: Path, small_batches: int) -> None:
    log = filled(tmp_path)
    sql(log, "UPDATE audit_log SET prev_hash = ? WHERE seq = 5", [bytes(31)])
    err = log.verify().error
    assert err is not None and (err.seq, err.kind) == (5, "prev_mismatch")


@pytest.mark.parametrize("seq", [1, 5, N])
def test_an_edit_resigned_with_the_key_still_verifies_and_an_edit_without_it_does_not(
    tmp_path: Path, small_batches: int, seq: int
) -> None:
    log = filled(tmp_path)
    assert log.verify().ok and log.verify().records == N
    edited = AuditRecord.from_dict({**record_fields(seq), "operator": "eve", "seq": seq}).canonical()
    sql(log, "UPDATE audit_log SET record = ? WHERE seq = ?", [edited, seq])
    err = log.verify().error
    assert err is not None and (err.seq, err.kind) == (seq, "hash_mismatch")


def packed(batch: RowBatch) -> PackedBatch:
    from array import array

    return PackedBatch(array("q", batch.seqs).tobytes(), b"".join(batch.prev_hashes), b"".join(batch.entry_hashes),
                       [b"\x00" + p + r for p, r in zip(batch.prev_hashes, batch.records, strict=True)])


def chain_rows(n: int) -> list[tuple[int, bytes, bytes, bytes]]:
    prev, rows = GENESIS, []
    for seq in range(1, n + 1):
        blob = AuditRecord.from_dict({**record_fields(seq), "seq": seq}).canonical()
        h = entry_hash(prev, blob)
        rows.append((seq, prev, h, blob))
        prev = h
    return rows


TAMPER = ["none", "edit", "edit_rechained", "swap", "duplicate", "gap", "prev", "hash"]


@pytest.mark.parametrize("tamper", TAMPER)
@pytest.mark.parametrize("at", [0, 3, 4, 8])
def test_packed_and_plain_batches_give_the_same_report(tamper: str, at: int) -> None:
    rows = chain_rows(9)
    seq, prev, h, blob = rows[at]
    if tamper == "edit":
        rows[at] = (seq, prev, h, blob.replace(b"alice", b"eve"))
    elif tamper == "edit_rechained":
        rows[at] = (seq, prev, entry_hash(prev, blob + b" "), blob + b" ")
    elif tamper == "swap" and at < 8:
        rows[at], rows[at + 1] = rows[at + 1], rows[at]
    elif tamper == "duplicate":
        rows.insert(at, rows[at])
    elif tamper == "gap":
        del rows[at]
    elif tamper == "prev":
        rows[at] = (seq, bytes(32) if at else b"\x01" * 32, h, blob)
    elif tamper == "hash":
        rows[at] = (seq, prev, bytes(32), blob)
    parts = [rows[i : i + 4] for i in range(0, len(rows), 4)]
    plain = [RowBatch(*map(list, zip(*part, strict=True))) for part in parts]
    a = verify_chain(plain, root_sizes=[9], keep_hashes=True)
    b = verify_chain([packed(p) for p in plain], root_sizes=[9], keep_hashes=True)
    assert (a.ok, a.records, a.head_hash, a.fault, a.roots, a.hashes) == (
        b.ok, b.records, b.head_hash, b.fault, b.roots, b.hashes)
    # the last record swapped with nothing, re-chained with nothing after it, or dropped: only a signature tells
    assert a.ok == (tamper == "none" or (tamper in ("swap", "edit_rechained", "gap") and at == 8))


def test_a_garbage_record_is_named_whatever_the_decode_check_and_the_read_finish_first(
    tmp_path: Path, small_batches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decode check's answer comes with the last batch however late it finishes; a slow check is waited for."""
    import time

    slow = audit.trail.store._first_undecodable

    def later(con):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return slow(con)

    monkeypatch.setattr(audit.trail.store, "_first_undecodable", later)
    log = filled(tmp_path)
    resign(log, {N: b"[1]"})
    err = log.verify().error
    assert err is not None and (err.seq, err.kind) == (N, "bad_record")
