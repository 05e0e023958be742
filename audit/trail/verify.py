"""Verification of the stored log against its signed checkpoints: which record, what kind of fault.

Every record ``i`` is stored with the signed note of the tree of records ``1..i``
(:mod:`audit.trail.log`). :func:`verify_log` reads the log once
(:func:`audit.trail.chain.verify_chain`: seqs, links and entry hashes, record by
record) and recomputes the Merkle root at the latest note's tree size. That note's
signature (by a trusted key, for the log's origin) and that root commit to every
record, so an untouched log costs one signature check however long it is. Every
record is also checked to be a JSON object carrying its own seq (in SQL, on a second
connection beside the read of the log, so the parse and the hashing use two cores: a record the log never
encoded is a fault); ``all_signatures`` decodes every record in Python and checks every note too.

When the latest note does not match, the *first record that differs from what was
signed* is found by bisection over the notes: a note at ``i`` that verifies and whose
root equals the recomputed root of ``1..i`` proves records ``1..i`` are as signed; the
fault is the record after the largest such ``i``. Its kind says what happened:

``hash_mismatch`` / ``prev_mismatch`` / ``seq_gap`` / ``duplicate_seq`` / ``reordered``
    the stored chain itself is broken at that record (an edit that did not re-chain);
``rewritten``
    the chain is whole but the record is not the one signed (an edit, insertion or
    deletion with the chain recomputed);
``unsigned``
    the record has no note: written without the log's key (a forged tail);
``bad_signature``
    its note does not verify with a trusted key (forged, or signed by another key);
``bad_record``
    the stored bytes are not a record;
``origin_mismatch``
    the notes are of another log;
``truncated`` / ``inconsistent``
    a checkpoint published earlier (``trusted``) covers more records than the log has, or
    a tree the log does not contain (a rollback or a fork).

Key history: the trusted keys are the given ones (or the key file's); a ``rotate_key``
record whose note verifies with a trusted key and whose tree matches adds the key it
names, so a verifier holding either the old or the new key can check all of history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from audit.errors import ChainIntegrityError
from audit.trail.chain import PackedBatch, RowBatch, VerifyReport, prefix_root, tree_levels, verify_chain
from audit.trail.keys import load_public_key_pem
from audit.trail.notes import Checkpoint, NoteError, NoteKey, parse_vkey, raw_public_key, verify_checkpoint
from audit.trail.records import decode_record
from audit.trail.store import AuditFilter

if TYPE_CHECKING:
    from audit.trail.log import AuditLog

__all__ = ["parse_keys", "verify_log"]


def parse_keys(text: str, origin: str) -> list[NoteKey]:
    """Parse trusted log keys: a PEM public key (named ``origin``), or verifier keys, one per line.

    Raises
    ------
    KeyFileError
        A PEM block that is not an Ed25519 public key.
    NoteError
        A line that is not a verifier key.
    """
    if "-----BEGIN" in text:
        return [NoteKey(origin, raw_public_key(load_public_key_pem(text)))]
    return [parse_vkey(line) for line in text.splitlines() if line.strip()]


class _Notes:
    """Checks stored notes against the trusted keys (which grow along rotation records)."""

    def __init__(self, log: AuditLog, keys: list[NoteKey], origin: str) -> None:
        self.log, self.keys, self.origin = log, keys, origin

    def check(self, size: int, text: str | None) -> tuple[Checkpoint | None, ChainIntegrityError | None]:
        if text is None:
            return None, ChainIntegrityError(size, "unsigned", detail="the record has no signed checkpoint note")
        try:
            cp = verify_checkpoint(text, self.keys)
        except NoteError as err:
            return None, ChainIntegrityError(size, "bad_signature", detail=str(err))
        if cp.origin != self.origin:
            return None, ChainIntegrityError(size, "origin_mismatch", self.origin, cp.origin,
                                             detail="the checkpoint is of another log")
        if cp.size != size:
            return None, ChainIntegrityError(size, "rewritten", str(size), str(cp.size),
                                             detail="the note stored with the record is of another tree size")
        return cp, None


def _rotations(log: AuditLog) -> list[tuple[int, str, str]]:
    """``(seq, old vkey, new vkey)`` of the key rotations ``audit_log_keys`` points at (not yet trusted).

    The key table only says where to look: each rotation counts only if its record says so
    and its note verifies with a key already trusted (see :func:`verify_log`).
    """
    out = []
    for _vkey, seq, _at, statement in log.store.keys():
        row = log.store.get(seq) if statement is not None else None
        if row is None:
            continue
        try:
            rec = json.loads(row.canonical)
            details = rec.get("details") or {}
            if rec.get("action") == "rotate_key":
                out.append((row.seq, str(details["old_vkey"]), str(details["new_vkey"])))
        except (ValueError, KeyError, AttributeError):
            continue  # a mangled rotation record is a fault the decode check names
    return out


def verify_log(
    log: AuditLog, public_keys: str | None = None, *, parallel: bool = False, all_signatures: bool = False,
    trusted: Sequence[str] = (),
) -> VerifyReport:
    """Verify ``log`` (see the module docstring); faults are reported in the report, never raised.

    Raises
    ------
    KeyFileError
        A given key is not an Ed25519 public key, or the key file cannot be read.
    NoteError
        A given verifier key is malformed.
    """
    started = time.perf_counter()
    stored_origin = log.store.meta("log_id")
    keys = parse_keys(public_keys, log.origin) if public_keys else (
        [NoteKey.of(log.origin, k)] if (k := log._public_key()) is not None else [])
    origin = keys[0].name if public_keys and keys else log.origin
    notes = _Notes(log, list(keys), origin)
    latest = log.store.latest_note()
    rotations = _rotations(log)
    trusted_cps: list[tuple[Checkpoint | None, ChainIntegrityError | None]] = []
    for text in trusted:
        trusted_cps.append(_trusted(notes, text))
    sizes = [latest[0]] if latest else []
    sizes += [seq for seq, _, _ in rotations] + [cp.size for cp, _ in trusted_cps if cp is not None]
    undecodable: list[int] = []  # the decode check, made in the same read when it reads every row
    report = _pass(log, sizes, parallel, keep=False, undecodable=undecodable)
    read_all = report.ok
    if not report.ok:  # name the fault as a walk in seq order does
        report = _pass(log, sizes, parallel, keep=True, ordered=True)
    records = log.store.size()
    for seq, old, new in rotations:  # a rotation proven by a trusted signature adds both keys
        cp, err = notes.check(seq, log.store.note(seq))
        if cp is not None and report.roots.get(seq) == cp.root:
            for vkey in (old, new):
                key = parse_vkey(vkey)
                if key not in notes.keys:
                    notes.keys.append(key)
    faults: list[ChainIntegrityError] = []
    if report.error is not None:
        faults.append(report.error)
    signed = 0
    if stored_origin is None and records:
        faults.append(ChainIntegrityError(1, "unsigned", detail="the log has no id: it was never signed"))
    elif latest is None:
        if records:
            faults.append(ChainIntegrityError(1, "unsigned", detail="no record is signed (a log made before signed "
                                                                    "notes: run facetrail audit checkpoint)"))
    else:
        cp, err = notes.check(latest[0], latest[1])
        if cp is not None and report.roots.get(cp.size) == cp.root and latest[0] == records:
            signed = records
        else:
            signed = _first_unsigned(log, notes, report, records, faults) - 1
    if read_all:  # the first read reached every record
        bad = min(undecodable, default=None)
    else:
        bad = log.store.first_undecodable(1, records) if records else None
    if bad is not None:
        faults.append(ChainIntegrityError(bad, "bad_record", detail="the stored bytes are not a record of this seq"))
    if all_signatures:
        faults.extend(_every_note(log, notes, records))
    for cp, err in trusted_cps:
        if err is not None:
            faults.append(err)
        elif cp is not None and cp.size > records:
            faults.append(ChainIntegrityError(records + 1, "truncated", str(cp.size), str(records),
                                              detail=f"a checkpoint published earlier covers {cp.size} records"))
        elif cp is not None and report.roots.get(cp.size) != cp.root:
            faults.append(ChainIntegrityError(cp.size, "inconsistent", cp.root.hex(),
                                              (report.roots.get(cp.size) or b"").hex(),
                                              detail="the log does not contain the tree of a checkpoint published "
                                                     "earlier (rolled back or forked)"))
    # smallest seq; on a tie the more specific record fault (listed first) wins
    first = min(faults, key=lambda e: e.seq) if faults else None
    cosigned = max((s for s, _, _, _ in log.store.cosignatures()), default=0)
    return replace(report, ok=first is None, records=records, checkpoints=records if all_signatures else
                   min(1, records), fault=None if first is None else first.to_dict(), error=first,
                   seconds=time.perf_counter() - started, signed=signed, origin=origin,
                   witnessed=min(cosigned, records), unwitnessed=max(records - cosigned, 0))


def _trusted(notes: _Notes, text: str) -> tuple[Checkpoint | None, ChainIntegrityError | None]:
    try:
        cp = verify_checkpoint(text, notes.keys)
    except NoteError as err:
        return None, ChainIntegrityError(0, "bad_signature", detail=f"the given checkpoint: {err}")
    if cp.origin != notes.origin:
        return None, ChainIntegrityError(0, "origin_mismatch", notes.origin, cp.origin,
                                         detail="the given checkpoint is of another log")
    return cp, None


def _pass(
    log: AuditLog, sizes: list[int], parallel: bool, *, keep: bool, ordered: bool = False,
    undecodable: list[int] | None = None,
) -> VerifyReport:
    """One read of the log through the chain verifier; the seqs of undecodable records go to ``undecodable``."""
    with log.scan(ordered=ordered, parallel=parallel, packed=True) as scan:

        def batches() -> Iterator[RowBatch | PackedBatch]:
            for batch, bad in scan:
                if bad is not None and undecodable is not None:
                    undecodable.append(bad)
                yield batch

        return verify_chain(batches(), root_sizes=sizes, keep_hashes=keep)


def _first_unsigned(
    log: AuditLog, notes: _Notes, report: VerifyReport, records: int, faults: list[ChainIntegrityError]
) -> int:
    """Bisect for the first record not proven by a valid note whose root matches; add its fault; return it."""
    hashes = report.hashes
    if hashes is None:
        report = _pass(log, [], False, keep=True, ordered=True)
        hashes = report.hashes or []
    levels = tree_levels(hashes) if hashes else [[]]
    first = log.store.first_note_seq() or 1

    def good(i: int) -> tuple[bool, ChainIntegrityError | None]:
        cp, err = notes.check(i, log.store.note(i))
        if err is not None:
            return False, err
        assert cp is not None
        if i > len(hashes):
            return False, None
        if prefix_root(levels, i) != cp.root:
            return False, ChainIntegrityError(i, "rewritten", cp.root.hex(), prefix_root(levels, i).hex(),
                                              detail="the chain was recomputed: the record differs from what was "
                                                     "signed")
        return True, None

    lo, hi = first - 1, records  # records 1..lo proven (lo = first - 1: none yet); the fault is in lo+1..hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if good(mid)[0]:
            lo = mid
        else:
            hi = mid - 1
    if lo < records:
        err = good(lo + 1)[1]
        faults.append(err or ChainIntegrityError(lo + 1, "rewritten", detail="the record differs from what was "
                                                                                "signed"))
    return lo + 1


def _every_note(log: AuditLog, notes: _Notes, records: int) -> list[ChainIntegrityError]:
    """Check every record's note and decode every record (``all_signatures``); return the first faults."""
    faults: list[ChainIntegrityError] = []
    first = log.store.first_note_seq() or records + 1
    for batch in log.store.notes():
        for seq, text in batch:
            if seq >= first:
                cp, err = notes.check(seq, text)
                if err is not None:
                    faults.append(err)
                    return faults
    for row in log.store.select(AuditFilter()):
        try:
            decode_record(row.canonical)
        except ValueError as err:
            faults.append(ChainIntegrityError(row.seq, "bad_record", detail=str(err)))
            return faults
    return faults
