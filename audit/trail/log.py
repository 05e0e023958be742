"""The audit log: append-only, hash-chained, checkpointed records, and human review.

:class:`AuditLog` is the API the service, the CLI and the dashboard use. It owns
the write lock (reading the head and inserting happen under one lock and in one
transaction, so concurrent threads keep one chain) and the signing key.

Two-person rule (EU AI Act Art. 14(5))
--------------------------------------
A candidate of a ``search`` (or the pair of a ``verify``) whose outcome is
``ok`` can be reviewed. Its status, from the review records pointing at it:

* ``rejected`` if **any** eligible reviewer rejected it (a reject is a veto and
  is final, whatever confirmations came before or after);
* ``confirmed`` if at least **two different** eligible reviewers confirmed it
  and nobody rejected it;
* ``pending`` otherwise.

Eligible means: not the operator of the query. The operator's own review is
refused, and the refusal is recorded as a ``refused`` record. The same reviewer
confirming twice counts once.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.trail.chain import (
    GENESIS,
    ChainVerifier,
    Checkpoint,
    MerkleFrontier,
    VerifyReport,
    entry_hash,
    sign_checkpoint,
)
from audit.errors import AuditError, ChainIntegrityError, MissingContext, RecordNotFound, ReviewRefused
from audit.trail.keys import (
    default_key_path,
    fingerprint,
    load_or_create_private_key,
    load_private_key,
    load_public_key_pem,
    public_key_pem,
)
from audit.trail.records import DECISIONS, AuditRecord, decode_record, utc_now_iso
from audit.trail.store import AuditFilter, AuditStore, CheckpointRow, SeqTaken, StoreRow, StoreWriter
from core.storage.connection import Database

__all__ = ["AuditEntry", "AuditFilter", "AuditLog", "CandidateStatus", "MatchStatus"]

log = logging.getLogger(__name__)

REVIEWABLE_ACTIONS = ("search", "verify")


@dataclass(frozen=True)
class AuditEntry:
    """A committed record with its place in the chain."""

    seq: int
    """Sequence number."""
    prev_hash: bytes
    """Entry hash of the previous record (32 zero bytes for seq 1)."""
    entry_hash: bytes
    """``sha256(0x00 || prev_hash || canonical)``."""
    canonical: bytes
    """Canonical encoding of :attr:`record`."""
    record: AuditRecord
    """The decoded record."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: the record plus its hashes (hex)."""
        return {
            "seq": self.seq,
            "prev_hash": self.prev_hash.hex(),
            "entry_hash": self.entry_hash.hex(),
            "record": self.record.to_dict(),
        }


@dataclass(frozen=True)
class CandidateStatus:
    """Review status of one candidate (``face_id`` None: the pair of a ``verify``)."""

    face_id: str | None
    subject_id: str | None
    rank: int
    status: str
    """``confirmed``, ``pending`` or ``rejected``."""
    confirmations: tuple[str, ...]
    """Distinct eligible reviewers who confirmed, sorted."""
    rejections: tuple[str, ...]
    """Distinct eligible reviewers who rejected, sorted."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "face_id": self.face_id,
            "subject_id": self.subject_id,
            "rank": self.rank,
            "status": self.status,
            "confirmations": list(self.confirmations),
            "rejections": list(self.rejections),
        }


@dataclass(frozen=True)
class MatchStatus:
    """Review status of every candidate of one query."""

    seq: int
    operator: str | None
    action: str
    candidates: tuple[CandidateStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "operator": self.operator,
            "action": self.action,
            "candidates": [c.to_dict() for c in self.candidates],
        }


_DONE = object()


def _closing_iter(batches: Generator[Any, None, None]) -> Iterator[Any]:
    with contextlib.closing(batches):
        yield from batches


def _prefetch(batches: Generator[Any, None, None], depth: int = 2) -> Iterator[Any]:
    """Iterate ``batches`` produced by a background thread (DuckDB reads while Python hashes)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            with contextlib.closing(batches):
                for batch in batches:
                    if stop.is_set():
                        return
                    q.put(batch)
        except Exception as err:  # handed to the consumer, re-raised there
            q.put(err)
        finally:
            q.put(_DONE)

    worker = threading.Thread(target=produce, name="facetrail-audit-scan", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive() or not q.empty():
            try:
                if q.get(timeout=0.1) is _DONE:
                    break
            except queue.Empty:
                continue
        worker.join()


def _entry(row: StoreRow) -> AuditEntry:
    try:
        record = decode_record(row.canonical)
    except ValueError as err:
        raise ChainIntegrityError(row.seq, "bad_record", detail=str(err)) from err
    if record.seq != row.seq:
        raise ChainIntegrityError(row.seq, "bad_record", str(row.seq), str(record.seq),
                                  detail="stored seq differs from the record's seq")
    return AuditEntry(row.seq, row.prev_hash, row.entry_hash, row.canonical, record)


def _checkpoint(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(row.seq, row.head_hash, row.merkle_root, row.created_at, row.key_id, row.signature, row.prev)


class AuditLog:
    """Append-only audit log in a :class:`core.storage.connection.Database`.

    Parameters
    ----------
    db
        The database holding the log.
    key_path
        Ed25519 signing key file (created 0600 on first use); default
        ``$FACETRAIL_AUDIT_KEY`` or ``<db file>.audit-key``.
    checkpoint_every
        Sign a checkpoint every this many records (0 disables automatic checkpoints).
    """

    def __init__(
        self, db: Database, key_path: str | Path | None = None, checkpoint_every: int = 100
    ) -> None:
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        self.db = db
        self.store = AuditStore(db)
        self.key_path = Path(key_path).expanduser() if key_path is not None else default_key_path(db.path)
        self.checkpoint_every = checkpoint_every
        self._lock = threading.Lock()
        self._key: Ed25519PrivateKey | None = None
        self._key_lock = threading.Lock()
        # Head cache: an insert at a stale head hits the seq primary key (SeqTaken) and is retried.
        self._head: tuple[int, bytes] | None = None

    # -- keys -----------------------------------------------------------------------------------

    def _private_key(self) -> Ed25519PrivateKey:
        with self._key_lock:
            if self._key is None:
                self._key = load_or_create_private_key(self.key_path)
            return self._key

    def _public_key(self) -> Ed25519PublicKey | None:
        if self._key is not None:
            return self._key.public_key()
        if self.key_path.exists():
            return load_private_key(self.key_path).public_key()
        return None

    def public_key_pem(self) -> str:
        """Return the public key (PEM), creating the key pair if needed."""
        return public_key_pem(self._private_key().public_key())

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with the log's Ed25519 key (callers add their own domain prefix)."""
        return self._private_key().sign(message)

    def key_fingerprint(self) -> str:
        """Return ``sha256:<hex>`` of the public key."""
        return fingerprint(self._private_key().public_key())

    # -- writing --------------------------------------------------------------------------------

    def append(self, fields: Mapping[str, Any]) -> AuditEntry:
        """Append one record and return it once committed.

        Parameters
        ----------
        fields
            Record fields (see :class:`audit.trail.records.AuditRecord`) except ``seq``;
            ``started_at``/``ended_at`` default to now.

        Raises
        ------
        ValueError
            If the fields do not form a valid record (nothing is written).
        """
        if "seq" in fields:
            raise ValueError("the log assigns seq; do not pass it to append()")
        data = dict(fields)
        now = utc_now_iso()
        data.setdefault("started_at", now)
        data.setdefault("ended_at", now)
        with self._lock:
            for _attempt in range(2):
                # A known head and no checkpoint due: the insert is the only statement and
                # commits by itself. Otherwise head read, insert and checkpoint share a transaction.
                cached = self._head
                single = cached is not None and not (
                    self.checkpoint_every and (cached[0] + 1) % self.checkpoint_every == 0
                )
                try:
                    with self.store.writing(transaction=not single) as w:
                        head = cached if cached is not None else w.head()
                        seq, prev = (1, GENESIS) if head is None else (head[0] + 1, head[1])
                        data["seq"] = seq
                        record = AuditRecord.from_dict(data)
                        blob = record.canonical()
                        h = entry_hash(prev, blob)
                        w.insert(seq, prev, h, blob)
                        if self.checkpoint_every and seq % self.checkpoint_every == 0:
                            self._sign(w, seq, h)
                except SeqTaken:
                    # another process appended since we cached the head: re-read it
                    self._head = None
                    if _attempt:
                        raise
                    continue
                except BaseException:
                    self._head = None
                    raise
                self._head = (seq, h)
                return AuditEntry(seq, prev, h, blob, record)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sign(self, w: StoreWriter, seq: int, head: bytes) -> Checkpoint:
        last = w.last_checkpoint()
        if last is not None and last.seq == seq and last.head_hash == head:
            return _checkpoint(last)
        if last is not None and last.seq < seq:
            frontier = MerkleFrontier.from_bytes(last.seq, last.frontier)
            hashes = w.hashes(last.seq + 1, seq)
        else:
            frontier = MerkleFrontier()
            hashes = w.hashes(1, seq)
        if len(hashes) != seq - frontier.size:
            raise ChainIntegrityError(frontier.size + len(hashes) + 1, "seq_gap",
                                      detail="cannot sign a checkpoint over a log with gaps")
        for h in hashes:
            frontier.append_hash(h)
        key = self._private_key()
        prev = GENESIS if last is None else _checkpoint(last).digest()
        cp = sign_checkpoint(key, fingerprint(key.public_key()), seq, head, frontier.root(), utc_now_iso(), prev)
        w.insert_checkpoint(
            CheckpointRow(cp.seq, cp.head_hash, cp.merkle_root, cp.created_at, cp.key_id, cp.signature,
                          frontier.to_bytes(), cp.prev)
        )
        log.debug("signed audit checkpoint at seq %d", seq)
        return cp

    def checkpoint(self) -> Checkpoint:
        """Sign a checkpoint at the current head now (or return the one already there).

        Raises
        ------
        AuditError
            If the log is empty.
        """
        with self._lock, self.store.writing() as w:
            head = w.head()
            self._head = head
            if head is None:
                raise AuditError("the audit log is empty; there is nothing to checkpoint")
            return self._sign(w, head[0], head[1])

    # -- reading --------------------------------------------------------------------------------

    def get(self, seq: int) -> AuditEntry:
        """Return the record with this seq.

        Raises
        ------
        RecordNotFound
            If there is none.
        ChainIntegrityError
            If the stored bytes are not a canonical record (``bad_record``).
        """
        row = self.store.get(seq)
        if row is None:
            raise RecordNotFound(f"no audit record has seq {seq}")
        return _entry(row)

    def list(self, filters: AuditFilter | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Return records matching ``filters`` in seq order."""
        return [_entry(r) for r in self.store.select(filters or AuditFilter(), limit)]

    def size(self) -> int:
        """Return the number of records."""
        return self.store.size()

    def checkpoints(self) -> builtins.list[Checkpoint]:
        """Return all stored checkpoints in seq order."""
        return [_checkpoint(r) for r in self.store.checkpoints()]

    # -- verification ---------------------------------------------------------------------------

    def verify(
        self, public_key_pem: str | None = None, *, parallel: bool = False, all_signatures: bool = False
    ) -> VerifyReport:
        """Recompute the chain and check every checkpoint; never raises for integrity faults.

        Parameters
        ----------
        public_key_pem
            Check checkpoints against this key instead of the log's own key file.
        parallel
            Read the database in a background thread while hashing (helps on idle
            multi-core machines; on a busy machine the serial pass was faster).
        all_signatures
            Check the Ed25519 signature of every checkpoint; by default only the
            signatures that anchor the checkpoint chain are checked (see :mod:`audit.trail.chain`).
        """
        started = time.perf_counter()
        key = load_public_key_pem(public_key_pem) if public_key_pem else self._public_key()
        checkpoints = self.checkpoints()
        # Fast path: storage order (no sort). Rows of an untouched log are stored in seq
        # order; if anything is off, verify again in seq order so the fault is named the same way.
        report = self._verify_pass(checkpoints, key, False, parallel, all_signatures)
        if not report.ok:
            report = self._verify_pass(checkpoints, key, True, parallel, all_signatures)
        return replace(report, seconds=time.perf_counter() - started)

    def _verify_pass(
        self, checkpoints: Sequence[Checkpoint], key: Ed25519PublicKey | None, ordered: bool, parallel: bool,
        all_signatures: bool,
    ) -> VerifyReport:
        verifier = ChainVerifier(checkpoints, key, all_signatures=all_signatures)
        scan = self.store.scan_arrow(ordered=ordered)
        for batch in _prefetch(scan) if parallel else _closing_iter(scan):
            if not verifier.feed_arrow(batch):
                break
        return verifier.finish()

    def verify_or_raise(self, public_key_pem: str | None = None, *, all_signatures: bool = False) -> VerifyReport:
        """Like :meth:`verify` but raise the first fault.

        Raises
        ------
        ChainIntegrityError
            Naming the first bad seq and the kind of fault.
        """
        report = self.verify(public_key_pem, all_signatures=all_signatures)
        report.raise_for_fault()
        return report

    # -- review ---------------------------------------------------------------------------------

    def _refuse(self, code: str, reason: str, fields: Mapping[str, Any]) -> AuditEntry:
        details = {"attempted": fields.get("attempted", "review"), "reason": reason}
        data = {k: v for k, v in fields.items() if k != "attempted"}
        return self.append({**data, "action": "refused", "outcome": code, "details": details})

    def review(
        self,
        seq: int,
        reviewer: str,
        decision: str,
        note: str | None = None,
        face_id: str | None = None,
    ) -> AuditEntry:
        """Record a human review of query ``seq`` (one candidate, named by ``face_id``).

        ``face_id`` may be omitted when the query has exactly one candidate (or
        is a ``verify``). Refusals are recorded before they are raised.

        Raises
        ------
        ValueError
            If ``decision`` is not ``confirm`` or ``reject``.
        MissingContext
            If ``reviewer`` is empty.
        RecordNotFound
            If there is no record ``seq``.
        ReviewRefused
            If the record is not a reviewable match, the candidate is unknown or
            ambiguous, or the reviewer is the query's operator.
        """
        if decision not in DECISIONS:
            raise ValueError(f"decision must be 'confirm' or 'reject', got {decision!r}")
        base = {"operator": reviewer or None, "purpose": "human review", "target_seq": seq,
                "target_face_id": face_id, "reviewer": reviewer or None, "decision": decision, "note": note}
        if not reviewer or not reviewer.strip():
            msg = f"a review of record {seq} needs a reviewer name"
            self._refuse(MissingContext.code, msg, base)
            raise MissingContext(msg)
        try:
            target = self.get(seq).record
        except RecordNotFound as err:
            self._refuse(RecordNotFound.code, str(err), base)
            raise
        base["case_ref"] = target.case_ref

        def refuse(msg: str) -> ReviewRefused:
            self._refuse(ReviewRefused.code, msg, base)
            return ReviewRefused(msg)

        if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
            raise refuse(f"record {seq} is a {target.action} with outcome {target.outcome!r}; "
                         "only search and verify results with outcome 'ok' can be reviewed")
        if target.action == "search":
            faces = [c.face_id for c in target.candidates]
            if face_id is None:
                if len(faces) != 1:
                    raise refuse(f"record {seq} has {len(faces)} candidates; name one with face_id")
                face_id = faces[0]
                base["target_face_id"] = face_id
            elif face_id not in faces:
                raise refuse(f"record {seq} has no candidate with face_id {face_id!r}")
        elif face_id is not None:
            raise refuse(f"record {seq} is a verify: review the pair without a face_id")
        if target.operator is not None and reviewer == target.operator:
            raise refuse(f"{reviewer!r} ran query {seq} and cannot review it (two-person rule)")
        return self.append({**base, "action": "review", "outcome": "ok"})

    def match_status(self, seq: int) -> MatchStatus:
        """Return the review status (confirmed / pending / rejected) of each candidate of query ``seq``.

        Raises
        ------
        RecordNotFound
            If there is no record ``seq``.
        """
        target = self.get(seq).record
        reviews = [
            e.record
            for e in self.list(AuditFilter(action="review", target_seq=seq, after_seq=seq))
            if e.record.target_seq == seq and e.record.action == "review"
        ]
        if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
            return MatchStatus(seq, target.operator, target.action, ())
        keys: Sequence[tuple[str | None, str | None, int]]
        if target.action == "search":
            keys = [(c.face_id, c.subject_id, c.rank) for c in target.candidates]
        else:
            keys = [(None, None, 1)]
        out = []
        for face_id, subject_id, rank in keys:
            confirms: set[str] = set()
            rejects: set[str] = set()
            for r in reviews:
                if r.target_face_id != face_id or r.reviewer is None or r.reviewer == target.operator:
                    continue
                (confirms if r.decision == "confirm" else rejects).add(r.reviewer)
            status = "rejected" if rejects else ("confirmed" if len(confirms) >= 2 else "pending")
            out.append(CandidateStatus(face_id, subject_id, rank, status, tuple(sorted(confirms)),
                                       tuple(sorted(rejects))))
        return MatchStatus(seq, target.operator, target.action, tuple(out))
