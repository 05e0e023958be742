"""The audit log: append-only, hash-chained, checkpointed records.

:class:`AuditLog` is the API the session, the CLI and the dashboard use. It owns
the write lock (reading the head and inserting happen under one lock and in one
transaction, so concurrent threads keep one chain) and the signing key. It encodes
records (:mod:`audit.trail.records`), chains and checkpoints them
(:mod:`audit.trail.chain`), stores them (:mod:`audit.trail.store`), verifies the
stored log with :func:`audit.trail.chain.verify_chain`, and delegates human review
and the two-person rule to :mod:`audit.trail.review`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
import time
from collections.abc import Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import AuditError, ChainIntegrityError, RecordNotFound, SeqTaken
from audit.trail import review as _review
from audit.trail.chain import (
    GENESIS,
    Checkpoint,
    MerkleFrontier,
    VerifyReport,
    entry_hash,
    sign_checkpoint,
    verify_chain,
)
from audit.trail.keys import (
    default_key_path,
    fingerprint,
    load_or_create_private_key,
    load_private_key,
    load_public_key_pem,
    public_key_pem,
)
from audit.trail.records import AuditRecord, decode_record, utc_now_iso
from audit.trail.review import MatchStatus
from audit.trail.store import AuditFilter, AuditStore, StoreRow, StoreWriter
from core.storage.connection import Database

__all__ = ["AuditEntry", "AuditLog"]

log = logging.getLogger(__name__)


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


_DONE = object()
_T = TypeVar("_T")


def _closing_iter(batches: Generator[_T, None, None]) -> Generator[_T, None, None]:
    """Iterate ``batches`` and close it however the iteration ends (the scan holds a connection)."""
    with contextlib.closing(batches):
        yield from batches


def _prefetch(batches: Generator[_T, None, None]) -> Generator[_T, None, None]:
    """Iterate ``batches``, reading the next one in a worker thread while the caller hashes this one.

    A failure of the read is raised here by ``Future.result``. However the iteration ends,
    ``batches`` is closed in the worker thread after the read in flight: the scan holds the
    database's (thread-owned) lock, so it must be released by the thread that took it.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="facetrail-audit-scan")
    pending = pool.submit(next, batches, _DONE)
    try:
        while (batch := pending.result()) is not _DONE:
            pending = pool.submit(next, batches, _DONE)
            yield batch  # type: ignore[misc]
    finally:
        closed = pool.submit(batches.close)
        pool.shutdown(wait=True)
        closed.result()


def _entry(row: StoreRow) -> AuditEntry:
    try:
        record = decode_record(row.canonical)
    except ValueError as err:
        raise ChainIntegrityError(row.seq, "bad_record", detail=str(err)) from err
    if record.seq != row.seq:
        raise ChainIntegrityError(row.seq, "bad_record", str(row.seq), str(record.seq),
                                  detail="stored seq differs from the record's seq")
    return AuditEntry(row.seq, row.prev_hash, row.entry_hash, row.canonical, record)


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
        self._lock = threading.RLock()  # reentrant: appends inside transaction() take it again
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

    @contextlib.contextmanager
    def transaction(self) -> Generator[None, None, None]:
        """A unit of work whose appends commit together with the caller's other changes, or not at all.

        A gallery change or an account change and its record run inside one (see
        :meth:`audit.session.AuditSession.run`). The log's write lock is taken before the
        database's, the order :meth:`append` takes them in, so two threads cannot deadlock;
        if the unit rolls back, the cached head (which may name a record that was never
        committed) is forgotten.
        """
        with self._lock:
            try:
                with self.db.connect(transaction=True):
                    yield
            except BaseException:
                self._head = None
                raise

    def _sign(self, w: StoreWriter, seq: int, head: bytes) -> Checkpoint:
        stored = w.last_checkpoint()
        last = None if stored is None else stored[0]
        if last is not None and last.seq == seq and last.head_hash == head:
            return last
        if stored is not None and stored[0].seq < seq:
            frontier = stored[1]
            hashes = w.hashes(frontier.size + 1, seq)
        else:
            frontier = MerkleFrontier()
            hashes = w.hashes(1, seq)
        if len(hashes) != seq - frontier.size:
            raise ChainIntegrityError(frontier.size + len(hashes) + 1, "seq_gap",
                                      detail="cannot sign a checkpoint over a log with gaps")
        for h in hashes:
            frontier.append_hash(h)
        key = self._private_key()
        prev = GENESIS if last is None else last.digest()
        cp = sign_checkpoint(key, fingerprint(key.public_key()), seq, head, frontier.root(), utc_now_iso(), prev)
        w.insert_checkpoint(cp, frontier)
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
        return self.store.checkpoints()

    # -- verification ---------------------------------------------------------------------------

    def verify(
        self, public_key_pem: str | None = None, *, parallel: bool = False, all_signatures: bool = False
    ) -> VerifyReport:
        """Recompute the chain and check the checkpoints; integrity faults are reported, never raised.

        Parameters
        ----------
        public_key_pem
            Check checkpoints against this key instead of the log's own key file.
        parallel
            Read the database in a worker thread while hashing (helps on idle
            multi-core machines; on a busy machine the serial pass was faster).
        all_signatures
            Check the Ed25519 signature of every checkpoint; by default only the
            signatures that anchor the checkpoint chain are checked (see :mod:`audit.trail.chain`).

        Raises
        ------
        KeyFileError
            If ``public_key_pem`` is not an Ed25519 public key, or the key file cannot be read.
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
        self, checkpoints: builtins.list[Checkpoint], key: Ed25519PublicKey | None, ordered: bool, parallel: bool,
        all_signatures: bool,
    ) -> VerifyReport:
        scan = self.store.scan(ordered=ordered)
        batches = _prefetch(scan) if parallel else _closing_iter(scan)
        with contextlib.closing(batches):
            return verify_chain(batches, checkpoints, key, all_signatures=all_signatures)

    # -- review (:mod:`audit.trail.review`; reviews are recorded through AuditSession.review) ---

    def match_status(self, seq: int) -> MatchStatus:
        """Return the review status of each candidate of query ``seq``: see :func:`audit.trail.review.match_status`.

        Raises
        ------
        RecordNotFound
            If there is no record ``seq``.
        """
        return _review.match_status(self, seq)
