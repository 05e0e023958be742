"""The audit log: append-only, hash-chained records, each one signed.

:class:`AuditLog` is the API the session, the CLI and the dashboard use. It owns
the write lock (reading the head and inserting happen under one lock and in one
transaction, so concurrent threads keep one chain) and the signing key. It encodes
records (:mod:`audit.trail.records`), chains them (:mod:`audit.trail.chain`), and
stores each with the signed checkpoint note of the tree it ends
(:mod:`audit.trail.notes`: C2SP signed note, origin ``facetrail.example/<log id>``,
RFC 6962 root), in one statement (:mod:`audit.trail.store`): nothing in the log is
ever unsigned. Verification is :mod:`audit.trail.verify`; human review and the
two-person rule are :mod:`audit.trail.review`.

The log never signs over what it has not checked: a process that does not know the
head yet reads the last signed note, checks its signature with its own key, and
checks that the stored tail reproduces the signed root; records after the last
signed note (written by someone without the key) make every append fail with a
``ChainIntegrityError`` (``unsigned``) until they are explained, and a log made
before signed notes is verified whole (every record decoded) before its first note.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import AuditError, ChainIntegrityError, RecordNotFound, SeqTaken
from audit.outputs import protected_paths
from audit.trail import review as _review
from audit.trail.chain import (
    GENESIS,
    MerkleFrontier,
    VerifyReport,
    consistency_ranges,
    entry_hash,
    fold_subtrees,
    inclusion_proofs,
    inclusion_ranges,
    merkle_root,
    perfect_subtrees,
    verify_chain,
    verify_consistency,
    verify_inclusion,
)
from audit.trail.keys import (
    create_private_key,
    default_key_path,
    fingerprint,
    load_or_create_private_key,
    load_private_key,
    public_key_pem,
)
from audit.trail.notes import Checkpoint as NoteCheckpoint
from audit.trail.notes import (
    NoteError,
    NoteKey,
    NoteSignature,
    checkpoint_body,
    origin_for,
    parse_checkpoint,
    verify_checkpoint,
)
from audit.trail.records import AuditRecord, decode_record, utc_now_iso
from audit.trail.review import MatchStatus
from audit.trail.sealed import (
    ERASING_ACTIONS,
    ErasedField,
    Erasure,
    FieldKeys,
    erasures_by_key,
    opened_known,
    seal_fields,
)
from audit.trail.store import FRONTIER_EVERY, AuditFilter, AuditStore, RecordFacts, StoreRow, StoreWriter
from core.gallery import GalleryStore
from core.keystore import KeyStore
from core.settings import Settings
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
    """The signed bytes: the canonical encoding of the record with its personal fields sealed (tokens)."""
    record: AuditRecord
    """The decoded record, its sealed personal fields opened (:mod:`audit.trail.sealed`): clear, or ``"erased"``."""
    erased: tuple[ErasedField, ...] = ()
    """The fields of :attr:`record` that read ``"erased"``, each with the erasure that destroyed its key."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: the record plus its hashes (hex), and ``erased`` when fields were erased."""
        out = {
            "seq": self.seq,
            "prev_hash": self.prev_hash.hex(),
            "entry_hash": self.entry_hash.hex(),
            "record": self.record.to_dict(),
        }
        if self.erased:
            out["erased"] = [e.to_dict() for e in self.erased]
        return out


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


def _sign_note(origin: str, size: int, root: bytes, key: Ed25519PrivateKey, extra: Ed25519PrivateKey | None,
               key_id: bytes | None = None) -> str:
    """Return the checkpoint note of ``(origin, size, root)`` signed by ``key`` (and by ``extra``, at a key rotation).

    ``key_id``: ``key``'s note key ID under ``origin`` when the caller keeps it (else computed).
    """
    body = checkpoint_body(origin, size, root)
    message = body.encode("utf-8")
    signers = [(key, key_id or NoteKey.of(origin, key).key_id)]
    if extra is not None:
        signers.append((extra, NoteKey.of(origin, extra).key_id))
    return body + "\n" + "".join(NoteSignature(origin, i, k.sign(message)).line() for k, i in signers)


def _entry(row: StoreRow) -> AuditEntry:
    try:
        record = decode_record(row.canonical)
    except ValueError as err:
        raise ChainIntegrityError(row.seq, "bad_record", detail=str(err)) from err
    if record.seq != row.seq:
        raise ChainIntegrityError(row.seq, "bad_record", str(row.seq), str(record.seq),
                                  detail="stored seq differs from the record's seq")
    return AuditEntry(row.seq, row.prev_hash, row.entry_hash, row.canonical, record)


class _Appends:
    """How many records of each action this process appended (any :class:`AuditLog`, any file).

    Counted at each insert, under the database's lock, so a reader of another thread that
    takes the lock after the append sees the record and the new count together. With
    :meth:`~core.storage.connection.Database.lease_generation` it tells a reader that keeps
    what it read (the threshold policy: :mod:`audit.policy`) when to read again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def bump(self, action: str) -> None:
        with self._lock:
            self._counts[action] = self._counts.get(action, 0) + 1

    def of(self, action: str) -> int:
        """Return how many records of ``action`` this process has appended so far."""
        return self._counts.get(action, 0)


#: The appends of this process, by action (see :class:`_Appends`).
APPENDS = _Appends()


@dataclass
class _Head:
    """What the next append builds on: the last record, the Merkle frontier after it, its note."""

    seq: int
    entry_hash: bytes
    frontier: MerkleFrontier


def _new_log_id() -> str:
    """Return a fresh, stable log id: 16 random bytes, base32 without padding, lower case."""
    return base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


class AuditLog:
    """Append-only audit log in a :class:`core.storage.connection.Database`, every record signed.

    Parameters
    ----------
    db
        The database holding the log.
    key_path
        Ed25519 signing key file (created 0600 on first use); default per
        :func:`audit.trail.keys.default_key_path` (never beside the database).
    checkpoint_every
        Kept for callers of earlier versions: every append is signed now, whatever it says.
    settings
        Where the default key folder is (default: :meth:`Settings.from_env`).
    """

    def __init__(
        self, db: Database, key_path: str | Path | None = None, checkpoint_every: int = 100,
        settings: Settings | None = None,
    ) -> None:
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        self.db = db
        self.store = AuditStore(db)
        self._key_path = Path(key_path).expanduser() if key_path is not None else None
        self._settings = settings
        self.checkpoint_every = checkpoint_every
        self._lock = threading.RLock()  # reentrant: appends inside transaction() take it again
        self._key: Ed25519PrivateKey | None = None
        self._key_lock = threading.Lock()
        self._signer: tuple[Ed25519PrivateKey, str, bytes] | None = None  # (key, origin, its note key ID)
        self._log_id: str | None = None
        # Head cache: an insert at a stale head hits the seq primary key (SeqTaken) and is retried.
        self._state: _Head | None = None
        self._field_keys: FieldKeys | None = None
        self._galleries: GalleryStore | None = None  # to find a face's subject when sealing (_face_subjects)
        self._erasures: tuple[int, dict[str, Erasure]] | None = None
        self.after_append: list[Any] = []
        """Callables ``f(log, seq)`` run after each committed append (the witness pusher)."""
        configured = settings or Settings.from_env()
        if configured.witnesses:
            from audit.witness.client import WitnessPusher  # the witness client imports this module

            self.after_append.append(WitnessPusher(configured.witnesses, configured.witness_every,
                                                   configured.witness_seconds))

    # -- identity and keys ----------------------------------------------------------------------

    @property
    def log_id(self) -> str:
        """The log's stable id, generated and stored at first use (never the machine's path)."""
        if self._log_id is None:
            found = self.store.meta("log_id")
            if found is None:
                with self.store.writing() as w:
                    found = w.meta("log_id")
                    if found is None:
                        found = _new_log_id()
                        w.set_meta("log_id", found)
            self._log_id = found
        return self._log_id

    @property
    def origin(self) -> str:
        """The checkpoint origin line, ``facetrail.example/<log id>`` (also the log key's name)."""
        return origin_for(self.log_id)

    @property
    def key_path(self) -> Path:
        """The signing key file."""
        if self._key_path is None:
            self._key_path = default_key_path(self.db.path, self.log_id, self._settings)
        return self._key_path

    def _private_key(self) -> Ed25519PrivateKey:
        with self._key_lock:
            if self._key is None:
                self._key = load_or_create_private_key(self.key_path)
                with self.store.writing() as w:
                    w.insert_key(NoteKey.of(self.origin, self._key).vkey(), 0, utc_now_iso(), None)
            return self._key

    def _public_key(self) -> Ed25519PublicKey | None:
        if self._key is not None:
            return self._key.public_key()
        if self.key_path.exists():
            return load_private_key(self.key_path).public_key()
        return None

    @property
    def field_keys(self) -> FieldKeys:
        """The keys of the records' sealed personal fields: the database's key store (:mod:`audit.trail.sealed`)."""
        if self._field_keys is None:
            self._field_keys = FieldKeys(KeyStore.for_database(self.db, self.db.path), self._face_subjects)
        return self._field_keys

    def _face_subjects(self, gallery: str, face_ids: builtins.list[str]) -> dict[str, str]:
        """Return the subjects of a gallery's faces, to seal face ids under their subject's key (:mod:`audit.trail.sealed`)."""
        if self._galleries is None or self._galleries.keys is not self.field_keys.keys:
            self._galleries = GalleryStore(self.db, self.field_keys.keys)
        return self._galleries.face_subjects(gallery, face_ids)

    def field_keys_due(self, before: str) -> builtins.list[str]:
        """Return the field keys (random ids) still in the key store whose newest record started before ``before``.

        ``before`` is a UTC ISO time (``2026-06-01`` works). For retention of the records'
        personal fields (:mod:`audit.trail.sealed`, "Retention"): name them in the retention
        record's ``details.erased_field_keys``, append it, then
        ``self.field_keys.shred_key_ids(...)``.
        """
        used = [k for k, last in self.store.field_key_last_use() if last < before]
        alive = self.field_keys.keys.get_many(used)
        return [k for k in used if k in alive]

    def share_key_store(self, keys: KeyStore) -> None:
        """Seal and open with ``keys``, the database's key store object another component already holds.

        One object per file reads the store once per change instead of once per holder (an
        erasure rewrites it twice: the gallery's key, then the field key). Ignored when
        ``keys`` is another file than the database's store.
        """
        if self._field_keys is None and keys.path == KeyStore.for_database(self.db, self.db.path).path:
            self._field_keys = FieldKeys(keys, self._face_subjects)

    def _erasures_now(self) -> dict[str, Erasure]:
        """Destroyed field key id -> the erasure record naming it (read again when the log grew)."""
        size = self.store.size()
        if self._erasures is None or self._erasures[0] != size:
            rows = [row.canonical for action in ERASING_ACTIONS for row in self.store.select(AuditFilter(action=action))]
            self._erasures = (size, erasures_by_key(rows))
        return self._erasures[1]

    def _opened(self, row: StoreRow, refreshed: bool = False) -> AuditEntry:
        """Return the entry of a stored row, its sealed fields opened (the one way readers get records).

        ``refreshed``: the caller looked at the key store once for the rows it opens (:meth:`_opened_all`).
        """
        entry = _entry(row)
        if b"sealed." not in row.canonical:
            return entry
        record, erased = self.field_keys.open(entry.record, self._erasures_now, row.canonical, refreshed=refreshed)
        return AuditEntry(entry.seq, entry.prev_hash, entry.entry_hash, entry.canonical, record, erased)

    def protected_paths(self) -> builtins.list[Path]:
        """Files no ``--out`` may name: the database, its WAL, the key store, the signing and pseudonym keys."""
        keystore = (self._settings or Settings.from_env()).keystore
        return protected_paths(self.db.path, [self.key_path], keystore=keystore)

    def note_key(self) -> NoteKey:
        """Return the log's verifier key (name = origin), creating the key pair if needed."""
        return NoteKey.of(self.origin, self._private_key())

    def vkey(self) -> str:
        """Return the log's verifier key string ``<origin>+<key id>+<base64 key>`` (what third parties pin)."""
        return self.note_key().vkey()

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
        """Append one record, signed with the checkpoint of the tree it ends, and return it once committed.

        Parameters
        ----------
        fields
            Record fields (see :class:`audit.trail.records.AuditRecord`) except ``seq``;
            ``started_at``/``ended_at`` default to now.

        Raises
        ------
        ValueError
            If the fields do not form a valid record (nothing is written).
        ChainIntegrityError
            If the stored log's tail is not what the log signed (nothing is written).
        """
        if "seq" in fields:
            raise ValueError("the log assigns seq; do not pass it to append()")
        sealed: dict[str, str] = {}
        data = seal_fields(fields, self.field_keys, sealed)
        if "started_at" not in data or "ended_at" not in data:
            now = utc_now_iso()
            data.setdefault("started_at", now)
            data.setdefault("ended_at", now)
        entry = self._append(data)
        if b"sealed." in entry.canonical:
            # returned as a reader opens it (get), made from the clear values the caller gave: nothing decoded,
            # no key read; a token the caller sealed itself (seal_owned) is opened under its key
            known = opened_known(entry.record, sealed, entry.canonical)
            record, erased = (known, ()) if known is not None else self.field_keys.open(
                entry.record, self._erasures_now, entry.canonical, sealed)
            entry = AuditEntry(entry.seq, entry.prev_hash, entry.entry_hash, entry.canonical, record, erased)
        for hook in self.after_append:
            hook(self, entry.seq)
        return entry

    def _note_key_id(self, key: Ed25519PrivateKey, origin: str) -> bytes:
        """Return ``key``'s note key ID under ``origin``, kept for as long as the log signs with that key object."""
        kept = self._signer
        if kept is None or kept[0] is not key or kept[1] != origin:
            kept = self._signer = (key, origin, NoteKey.of(origin, key).key_id)
        return kept[2]

    def _append(self, data: dict[str, Any], extra: Ed25519PrivateKey | None = None) -> AuditEntry:
        key = self._private_key()
        origin = self.origin
        key_id = self._note_key_id(key, origin)
        with self._lock:
            for _attempt in range(2):
                # A known head: the insert (record and its note) is the only statement and commits
                # by itself. Otherwise reading and checking the head and the insert share a transaction.
                state = self._state
                try:
                    with self.store.writing(transaction=state is None) as w:
                        if state is None:
                            state = self._load_head(w)
                        seq, prev = state.seq + 1, state.entry_hash
                        data["seq"] = seq
                        record = AuditRecord.from_dict(data)
                        blob = record.canonical()
                        h = entry_hash(prev, blob)
                        frontier = MerkleFrontier(state.frontier.size, state.frontier._stack)
                        subtrees = frontier.append_hash_subtrees(h)
                        note = _sign_note(origin, seq, frontier.root(), key, extra, key_id)
                        w.insert(seq, prev, h, blob, note, frontier.to_bytes() if seq % FRONTIER_EVERY == 0 else None,
                                 subtrees or None)
                        APPENDS.bump(record.action)
                except SeqTaken:
                    # another process appended since we cached the head: re-read it
                    self._state = None
                    if _attempt:
                        raise
                    continue
                except BaseException:
                    self._state = None
                    raise
                self._state = _Head(seq, h, frontier)
                return AuditEntry(seq, prev, h, blob, record)
        raise AssertionError("unreachable")  # pragma: no cover

    def _load_head(self, w: StoreWriter) -> _Head:
        """Read the head and check it is what the log signed (see the module docstring).

        Raises
        ------
        ChainIntegrityError
            The last note does not verify with the log's key, the stored tail does not
            reproduce its root, or there are records after it.
        """
        head = w.head()
        if head is None:
            return _Head(0, GENESIS, MerkleFrontier())
        latest = w.latest_note()
        if latest is None:
            return self._adopt(w, head)
        size, note = latest
        try:
            cp = verify_checkpoint(note, [self.note_key()], origin=self.origin)
        except NoteError as err:
            raise ChainIntegrityError(size, "bad_signature", detail=f"the last signed note does not verify: {err}") \
                from err
        if cp.size != size:
            raise ChainIntegrityError(size, "rewritten", str(size), str(cp.size),
                                      detail="the note stored with the record is of another tree size")
        if head[0] != size:
            raise ChainIntegrityError(size + 1, "unsigned", str(size), str(head[0]),
                                      detail="records after the last signed checkpoint were written without the "
                                             "log's key; run facetrail audit verify")
        stored = w.frontier_before(size - 1)
        start, frontier = (0, MerkleFrontier()) if stored is None else (
            stored[0], MerkleFrontier.from_bytes(stored[0], stored[1]))
        hashes = w.hashes(start + 1, size)
        if len(hashes) != size - start:
            raise ChainIntegrityError(start + len(hashes) + 1, "seq_gap", detail="the signed tail has a gap")
        for h in hashes:
            frontier.append_hash(h)
        if frontier.root() != cp.root:
            raise ChainIntegrityError(size, "rewritten", cp.root.hex(), frontier.root().hex(),
                                      detail="the stored tail does not reproduce the last signed root; "
                                             "run facetrail audit verify")
        return _Head(size, hashes[-1], frontier)

    def _adopt(self, w: StoreWriter, head: tuple[int, bytes]) -> _Head:
        """Return a log made before signed notes: verify every record (decoded) before the first note covers them.

        Raises
        ------
        ChainIntegrityError
            A record does not chain or does not decode (nothing is signed over it).
        """
        report = verify_chain(_closing_iter(self.store.scan()), keep_hashes=True)
        report.raise_for_fault()
        for row in self.store.select(AuditFilter()):
            _entry(row)
        hashes = report.hashes or []
        frontier = MerkleFrontier()
        for h in hashes:
            frontier.append_hash(h)
        log.info("signing a log made before signed notes: %d records verified", len(hashes))
        return _Head(report.records, hashes[-1] if hashes else GENESIS, frontier)

    @contextlib.contextmanager
    def transaction(self) -> Generator[None, None, None]:
        """Return a unit of work whose appends commit together with the caller's other changes, or not at all.

        A gallery change or an account change and its record run inside one (see
        :meth:`audit.session.AuditSession.run`). The log's write lock is taken before the
        database's, the order :meth:`append` takes them in, so two threads cannot deadlock;
        if the unit rolls back, the cached head (which may name a record that was never
        committed) is forgotten.
        """
        self._private_key()  # before the transaction: creating the key records it in its own unit of work
        with self._lock:
            try:
                with self.db.connect(transaction=True):
                    yield
            except BaseException:
                self._state = None
                raise

    def checkpoint(self) -> NoteCheckpoint:
        """Return the signed checkpoint at the head (a log made before signed notes gets one first).

        Raises
        ------
        AuditError
            If the log is empty.
        ChainIntegrityError
            If the log's tail is not what it signed (nothing is signed over it).
        """
        with self._lock, self.store.writing() as w:
            self._load_head(w)  # the head's note verifies and the stored tail reproduces it, or this raises
        latest = self.store.latest_note()
        if latest is None or latest[0] != self.store.size():
            if self.size() == 0:
                raise AuditError("the audit log is empty; there is nothing to checkpoint")
            self.append({"action": "checkpoint", "outcome": "ok", "purpose": "sign the log's head",
                         "details": {"reason": "log written before every record was signed"}})
            latest = self.store.latest_note()
        assert latest is not None
        return parse_checkpoint(latest[1])[0]

    def rotate_key(self, operator: str | None = None) -> tuple[AuditEntry, str, str]:
        """Replace the signing key; return the rotation record and the old and new verifier keys.

        The rotation record names both keys and its note is signed by both (signed notes take
        several signatures), so a verifier holding either key accepts it and learns the
        other; the old public key stays in ``audit_log_keys`` for checking history. The new
        private key replaces the old one in the key file (written beside it first, then
        renamed over it).

        Raises
        ------
        KeyFileError
            The new key file cannot be written.
        """
        old = self._private_key()
        old_vkey = NoteKey.of(self.origin, old).vkey()
        tmp = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        new = create_private_key(tmp)
        assert new is not None  # a fresh random name
        new_vkey = NoteKey.of(self.origin, new).vkey()
        try:
            with self._lock:
                entry = self._append_with(
                    {"action": "rotate_key", "outcome": "ok", "operator": operator, "purpose": "key rotation",
                     "details": {"old_vkey": old_vkey, "new_vkey": new_vkey}}, new)
                with self.store.writing() as w:
                    w.insert_key(new_vkey, entry.seq, utc_now_iso(), self.store.note(entry.seq))
                os.replace(tmp, self.key_path)
                with self._key_lock:
                    self._key = new
        finally:
            tmp.unlink(missing_ok=True)
        return entry, old_vkey, new_vkey

    def _append_with(self, fields: dict[str, Any], extra: Ed25519PrivateKey) -> AuditEntry:
        now = utc_now_iso()
        data = {"started_at": now, "ended_at": now, **fields}
        return self._append(data, extra)

    def add_cosignatures(self, size: int, signatures: Sequence[NoteSignature]) -> None:
        """Store witnesses' cosignature lines of the checkpoint at ``size``."""
        now = utc_now_iso()
        for sig in signatures:
            self.store.insert_cosignature(size, sig.name, sig.line(), now)

    def note(self, size: int) -> NoteCheckpoint:
        """Return the stored signed checkpoint of tree size ``size`` (not checked here).

        Raises
        ------
        RecordNotFound
            No record ``size``, or it has no note (made before signed notes).
        NoteError
            The stored note is malformed.
        """
        text = self.store.note(size)
        if text is None:
            raise RecordNotFound(f"no signed checkpoint of tree size {size}")
        return parse_checkpoint(text)[0]

    def prove_consistency(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the RFC 6962 consistency proof from tree size ``old_size`` to ``new_size`` (default: head).

        The proof is made of O(log n) stored perfect-subtree hashes (:meth:`_subtree_roots`), the
        same bytes as one rebuilt from every leaf, and is checked against the roots of the notes
        stored with records ``old_size`` and ``new_size`` before it is returned.

        Raises
        ------
        ValueError
            Sizes out of order or beyond the log.
        ChainIntegrityError
            The stored hashes do not give a proof the signed roots verify (``checkpoint_mismatch``).
        """
        end = self.size() if new_size is None else new_size
        if not 0 <= old_size <= end <= self.size():
            raise ValueError(f"a consistency proof needs 0 <= from ({old_size}) <= to ({end}) <= {self.size()}")
        proof = self._subtree_roots(consistency_ranges(old_size, end))
        old_note, new_note = self.store.note(old_size), self.store.note(end)
        if old_size and old_note is not None and new_note is not None and not verify_consistency(
                old_size, end, parse_checkpoint(old_note)[0].root, parse_checkpoint(new_note)[0].root, proof):
            raise ChainIntegrityError(end, "checkpoint_mismatch",
                                      detail=f"the stored hashes do not prove tree {old_size} consistent with tree "
                                             f"{end} as signed; run facetrail audit verify")
        return proof

    def prove_inclusion(self, seq: int, size: int) -> list[bytes]:
        """Return the RFC 6962 audit path of record ``seq`` in the tree of size ``size`` (see :meth:`prove_inclusions`).

        Raises
        ------
        ValueError
            ``seq`` outside ``1..size`` or ``size`` beyond the log.
        ChainIntegrityError
            The stored hashes do not prove the record's entry hash in the signed root of ``size``.
        """
        return self.prove_inclusions([seq], size)[seq]

    def prove_inclusions(self, seqs: Sequence[int], size: int) -> dict[int, builtins.list[bytes]]:
        """Return the RFC 6962 audit paths of records ``seqs`` in the tree of size ``size``, by seq.

        The paths (and the records' entry hashes) are read together, O(log n) stored subtree
        hashes a record, and each is checked against the root of the note stored with record
        ``size`` before it is returned (a log made before signed notes has none to check against).

        Raises
        ------
        ValueError
            A seq outside ``1..size`` or ``size`` beyond the log.
        ChainIntegrityError
            The stored hashes do not prove a record's entry hash in the signed root of ``size``.
        """
        wanted = sorted(set(seqs))
        if any(not 1 <= seq <= size for seq in wanted) or size > self.size():
            raise ValueError(f"an inclusion proof needs 1 <= seq <= size ({size}) <= {self.size()}")
        if len(wanted) * 2 * size.bit_length() > size:  # paths for most of the tree: one pass over its leaves is cheaper
            return self._inclusions_from_leaves(wanted, size)
        paths = {seq: inclusion_ranges(seq - 1, size) for seq in wanted}
        ranges = [r for path in paths.values() for r in path] + [(seq - 1, seq) for seq in wanted]
        hashes = dict(zip(ranges, self._subtree_roots(ranges), strict=True))
        proofs = {seq: [hashes[r] for r in path] for seq, path in paths.items()}
        note = self.store.note(size) if wanted else None
        signed = None if note is None else parse_checkpoint(note)[0].root
        for seq, proof in proofs.items():
            if signed is not None and not verify_inclusion(hashes[(seq - 1, seq)], seq - 1, size, proof, signed,
                                                           hashed=True):
                raise ChainIntegrityError(size, "checkpoint_mismatch",
                                          detail=f"the stored hashes do not prove record {seq} in tree {size} as "
                                                 "signed; run facetrail audit verify")
        return proofs

    def _inclusions_from_leaves(self, seqs: Sequence[int], size: int) -> dict[int, builtins.list[bytes]]:
        """Return the paths of :meth:`prove_inclusions` from the tree rebuilt over every entry hash (root checked)."""
        hashes = self.store.hashes(1, size)
        note = self.store.note(size)
        if len(hashes) != size or (note is not None and merkle_root(hashes, hashed=True) != parse_checkpoint(note)[0].root):
            raise ChainIntegrityError(size, "checkpoint_mismatch",
                                      detail=f"the stored hashes do not reproduce the signed root of tree {size}; "
                                             "run facetrail audit verify")
        paths = inclusion_proofs(hashes, [seq - 1 for seq in seqs], hashed=True)
        return {seq: paths[seq - 1] for seq in seqs}

    def _subtree_roots(self, ranges: Sequence[tuple[int, int]]) -> builtins.list[bytes]:
        """Return the tree hash of each leaf range (RFC 6962 proof ranges) from stored perfect subtree hashes.

        Each range is O(log n) perfect subtrees, read together (:meth:`AuditStore.subtree_hashes`);
        one whose record predates their storage (schema version 7) is computed from its entry hashes.
        """
        parts = {r: perfect_subtrees(*r) for r in set(ranges)}
        needed = {node for split in parts.values() for node in split}
        nodes = self.store.subtree_hashes(needed)
        for start, size in needed - nodes.keys():
            nodes[(start, size)] = merkle_root(self.store.hashes(start + 1, start + size), hashed=True)
        return [fold_subtrees([nodes[node] for node in parts[r]]) for r in ranges]

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
        return self._opened(row)

    def _opened_all(self, rows: builtins.list[StoreRow]) -> builtins.list[AuditEntry]:
        """Return the entries of ``rows``, opened with one look at the key store for them all."""
        if any(b"sealed." in r.canonical for r in rows):
            self.field_keys.refresh()
        return [self._opened(r, refreshed=True) for r in rows]

    def list(self, filters: AuditFilter | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Return records matching ``filters`` in seq order."""
        return self._opened_all(self.store.select(filters or AuditFilter(), limit))

    def entries(self, seqs: Sequence[int]) -> builtins.list[AuditEntry]:
        """Return the records with these seqs in seq order, opened (a seq with no record is left out).

        Only these records are decoded and opened: a reader that found its seqs through
        :meth:`facts` pays for the records it shows, not for the log.
        """
        return self._opened_all(self.store.rows(seqs))

    def facts(self, filters: AuditFilter | None = None) -> builtins.list[RecordFacts]:
        """Return what a search filters on of each record matching ``filters`` (:class:`RecordFacts`), in seq order.

        Read in SQL: no record is decoded or opened (none of these fields is sealed).
        """
        return self.store.facts(filters or AuditFilter())

    def size(self) -> int:
        """Return the number of records."""
        return self.store.size()

    def checkpoints(self) -> builtins.list[NoteCheckpoint]:
        """Return the latest signed checkpoint as a list (empty for an empty log); :meth:`note` reads any other."""
        latest = self.store.latest_note()
        return [] if latest is None else [parse_checkpoint(latest[1])[0]]

    def cosignatures(self, size: int | None = None) -> builtins.list[dict[str, Any]]:
        """Return the stored witness cosignatures (of the checkpoint at ``size`` only), oldest first."""
        return [{"size": s, "witness": w, "signature": line, "received_at": at}
                for s, w, line, at in self.store.cosignatures(size)]

    # -- verification ---------------------------------------------------------------------------

    def verify(
        self, public_key_pem: str | None = None, *, parallel: bool = True, all_signatures: bool = False,
        trusted: Sequence[str] = (),
    ) -> VerifyReport:
        """Verify every record against the signed checkpoints; integrity faults are reported, never raised.

        See :func:`audit.trail.verify.verify_log`.

        Parameters
        ----------
        public_key_pem
            Check notes against this key (PEM, or one verifier key per line) instead of the key file's.
        parallel
            Read the database in a worker thread while hashing (the default: the read, the hashing and
            the decode check then use both cores; inside an open transaction the read stays in this thread).
        all_signatures
            Check every record's note and decode every record in Python (slow: one
            signature check per record); by default the latest note's signature and the
            Merkle root commit to every record.
        trusted
            Checkpoint notes published earlier (files, a witness's): the log must contain
            their trees (truncation, rollback and forks are caught).

        Raises
        ------
        KeyFileError
            If ``public_key_pem`` is not a key, or the key file cannot be read.
        """
        from audit.trail.verify import verify_log  # verify imports this module

        return verify_log(self, public_key_pem, parallel=parallel, all_signatures=all_signatures, trusted=trusted)

    def scan(
        self, *, ordered: bool, parallel: bool = False, packed: bool = False
    ) -> contextlib.closing[Generator[Any, None, None]]:
        """Return the stored rows as :class:`~audit.trail.chain.RowBatch` es, closed however the reader ends.

        With ``packed``: as ``(batch, first undecodable seq)`` from :meth:`AuditStore.scan_packed`.
        """
        scan = self.store.scan_packed(ordered=ordered) if packed else self.store.scan(ordered=ordered)
        # a worker thread could not join this thread's open transaction (it would wait for it forever)
        prefetch = parallel and not self.db.in_transaction
        return contextlib.closing(_prefetch(scan) if prefetch else _closing_iter(scan))

    # -- review (:mod:`audit.trail.review`; reviews are recorded through AuditSession.review) ---

    def match_status(self, seq: int) -> MatchStatus:
        """Return the review status of each candidate of query ``seq``: see :func:`audit.trail.review.match_status`.

        Raises
        ------
        RecordNotFound
            If there is no record ``seq``.
        """
        return _review.match_status(self, seq)
