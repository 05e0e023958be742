r"""Hash chain, RFC 6962 Merkle tree, signed checkpoints, and chain verification.

* **Entry hash**: ``entry_hash = sha256(b"\x00" + prev_hash + canonical_bytes)``;
  the genesis ``prev_hash`` is 32 zero bytes (:data:`GENESIS`).
* **Merkle tree** (RFC 6962 section 2.1) over records ``1..n``. The leaf data
  of record ``i`` is ``prev_hash || canonical_bytes``, so its RFC 6962 leaf hash
  ``sha256(0x00 || prev_hash || canonical)`` *is* its entry hash: the tree is
  built over the record hashes without hashing them again. Interior nodes are
  ``sha256(0x01 || left || right)``, split at the largest power of two smaller
  than ``n``; the empty tree's root is ``sha256(b"")``. Inclusion proofs are
  RFC 6962 audit paths, checked with the RFC 9162 section 2.1.3.2 algorithm.
  The generic functions take leaf *data*; pass ``hashed=True`` to give leaf
  hashes (entry hashes) instead.
* **Checkpoint**: an Ed25519 signature over ``b"facetrail.audit.checkpoint.v1\n"``
  followed by the canonical JSON of ``{seq, head, root, created_at, key_id}``
  (hex digests). ``key_id`` is the public key fingerprint.

:func:`verify_chain` reports the *first* sequence number at which the log
departs from a valid chain, and the kind of fault. Position ``i`` (1-based) of
the log must hold the record with ``seq == i`` whose ``prev_hash`` is the
entry hash at ``i - 1`` and whose ``entry_hash`` matches its bytes. Checkpoint
faults are reported at the checkpoint's ``seq``; when a record fault and a
checkpoint fault compete, the smaller ``seq`` wins (the record fault on a tie).
A log rewritten consistently from some record on (all later hashes
recomputed) can only be caught by a checkpoint: it is reported as
``checkpoint_mismatch`` at the first checkpoint after the rewrite. Dropping the
tail of the log *and* the checkpoints covering it cannot be detected from the
database alone: publish or export checkpoints (``audit checkpoint --json``)
to anchor them outside it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import ChainIntegrityError

__all__ = [
    "GENESIS",
    "EMPTY_ROOT",
    "Checkpoint",
    "ChainVerifier",
    "MerkleFrontier",
    "VerifyReport",
    "entry_hash",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "sign_checkpoint",
    "verify_chain",
    "verify_inclusion",
]

#: ``prev_hash`` of record 1.
GENESIS = bytes(32)
#: RFC 6962 root of the empty tree.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_CHECKPOINT_DOMAIN = b"facetrail.audit.checkpoint.v1\n"
_BLOCK = 1 << 16  # Merkle leaves hashed per block by the verifier
_sha256 = hashlib.sha256
_compare = hmac.compare_digest


def entry_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """Return ``sha256(0x00 || prev_hash || canonical)``."""
    return _sha256(b"\x00" + prev_hash + canonical).digest()


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``sha256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``sha256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _levels(leaves: Sequence[bytes], hashed: bool = False) -> list[list[bytes]]:
    """Return the tree bottom-up; an unpaired last node moves up unchanged (equals RFC 6962's split)."""
    level = list(leaves) if hashed else [leaf_hash(d) for d in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(leaves: Sequence[bytes], *, hashed: bool = False) -> bytes:
    """Return the RFC 6962 Merkle tree hash of ``leaves`` (data items, or leaf hashes with ``hashed``)."""
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves, hashed)[-1][0]


def _path(levels: list[list[bytes]], index: int) -> list[bytes]:
    path: list[bytes] = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def inclusion_proof(leaves: Sequence[bytes], index: int, *, hashed: bool = False) -> list[bytes]:
    """Return the RFC 6962 audit path of leaf ``index`` (0-based) in the tree of ``leaves``.

    Raises
    ------
    ValueError
        If ``index`` is outside the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    return _path(_levels(leaves, hashed), index)


def inclusion_proofs(
    leaves: Sequence[bytes], indices: Iterable[int], *, hashed: bool = False
) -> dict[int, list[bytes]]:
    """Return audit paths for many leaves of one tree (the tree is built once)."""
    levels = _levels(leaves, hashed)
    out: dict[int, list[bytes]] = {}
    for index in indices:
        if not 0 <= index < len(leaves):
            raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
        out[index] = _path(levels, index)
    return out


def verify_inclusion(
    data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes, *, hashed: bool = False
) -> bool:
    """Check an RFC 6962 inclusion proof (RFC 9162 section 2.1.3.2).

    Parameters
    ----------
    data
        The leaf's data item, leaf-hashed here; or, with ``hashed``, the leaf hash (an entry hash).
    index
        0-based leaf index.
    size
        Tree size the root belongs to.
    proof
        Audit path, bottom-up.
    root
        Expected Merkle root.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = data if hashed else leaf_hash(data)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and _compare(r, root)


class MerkleFrontier:
    """Incremental RFC 6962 root: the roots of the perfect subtrees of the leaves so far.

    Their sizes are the binary digits of the leaf count, largest first, so a
    frontier serializes as the concatenation of its hashes (:meth:`to_bytes`).
    """

    __slots__ = ("size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} hashes, got {len(hashes)}")
        self.size = size
        self._stack: list[bytes] = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> MerkleFrontier:
        """Rebuild a frontier from :meth:`to_bytes` output."""
        return cls(size, [blob[i : i + 32] for i in range(0, len(blob), 32)])

    def to_bytes(self) -> bytes:
        """Return the concatenated subtree roots."""
        return b"".join(self._stack)

    def append(self, data: bytes) -> None:
        """Add one leaf by its data item."""
        self.append_hash(_sha256(b"\x00" + data).digest())

    def append_hash(self, h: bytes) -> None:
        """Add one leaf by its leaf hash (for the audit log: the entry hash)."""
        stack = self._stack
        n = self.size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """Return the Merkle root of the leaves so far."""
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> MerkleFrontier:
        """Return an independent copy."""
        return MerkleFrontier(self.size, list(self._stack))


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the log's state at ``seq``."""

    seq: int
    """Records covered: 1..seq."""
    head_hash: bytes
    """Entry hash of record ``seq``."""
    merkle_root: bytes
    """RFC 6962 root of the tree whose leaf hashes are the entry hashes of records 1..seq."""
    created_at: str
    """UTC time of signing."""
    key_id: str
    """Fingerprint of the signing key (``sha256:<hex>`` of the raw public key)."""
    signature: bytes
    """Ed25519 signature over :meth:`message`."""
    prev: bytes = GENESIS
    """:meth:`digest` of the previous checkpoint (32 zero bytes for the first): checkpoints form a chain."""

    def message(self) -> bytes:
        """Return the signed bytes."""
        body = {
            "seq": self.seq,
            "head": self.head_hash.hex(),
            "root": self.merkle_root.hex(),
            "created_at": self.created_at,
            "key_id": self.key_id,
            "prev": self.prev.hex(),
        }
        return _CHECKPOINT_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> bytes:
        """Return ``sha256(message || signature)``, what the next checkpoint's ``prev`` commits to."""
        return _sha256(self.message() + self.signature).digest()

    def verify_signature(self, public_key: Ed25519PublicKey) -> bool:
        """Return True if the signature verifies with ``public_key``."""
        try:
            public_key.verify(self.signature, self.message())
        except InvalidSignature:
            return False
        return True

    def to_dict(self) -> dict[str, object]:
        """Return the checkpoint as JSON-ready dict (hex digests)."""
        return {
            "seq": self.seq,
            "head": self.head_hash.hex(),
            "root": self.merkle_root.hex(),
            "created_at": self.created_at,
            "key_id": self.key_id,
            "signature": self.signature.hex(),
            "prev": self.prev.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Checkpoint:
        """Inverse of :meth:`to_dict`."""
        return cls(
            seq=int(data["seq"]),  # type: ignore[call-overload]
            head_hash=bytes.fromhex(str(data["head"])),
            merkle_root=bytes.fromhex(str(data["root"])),
            created_at=str(data["created_at"]),
            key_id=str(data["key_id"]),
            signature=bytes.fromhex(str(data["signature"])),
            prev=bytes.fromhex(str(data["prev"])),
        )


def sign_checkpoint(
    key: Ed25519PrivateKey, key_id: str, seq: int, head: bytes, root: bytes, created_at: str,
    prev: bytes = GENESIS,
) -> Checkpoint:
    """Return a checkpoint signed with ``key``, linked to the previous checkpoint's digest ``prev``."""
    unsigned = Checkpoint(seq, head, root, created_at, key_id, b"", prev)
    return Checkpoint(seq, head, root, created_at, key_id, key.sign(unsigned.message()), prev)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a verification run."""

    ok: bool
    """True when no fault was found."""
    records: int
    """Records checked."""
    checkpoints: int
    """Checkpoints checked."""
    head_seq: int
    """Last verified sequence number."""
    head_hash: str
    """Entry hash (hex) at ``head_seq``."""
    seconds: float = 0.0
    """Wall time of the run."""
    fault: dict[str, object] | None = None
    """The first fault (:meth:`ChainIntegrityError.to_dict`), or None."""
    error: ChainIntegrityError | None = field(default=None, compare=False, repr=False)
    """The first fault as an exception (not serialized)."""

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "seconds": round(self.seconds, 6),
            "fault": self.fault,
        }

    def raise_for_fault(self) -> None:
        """Raise the recorded :class:`ChainIntegrityError`, if any."""
        if self.error is not None:
            raise self.error


class ChainVerifier:
    """Single-pass verifier fed with column batches of the log, in storage order.

    Parameters
    ----------
    checkpoints
        Checkpoints to check against the chain.
    public_key
        Key the checkpoint signatures must verify with; ``None`` makes every
        checkpoint a ``bad_signature`` fault.
    all_signatures
        Check every checkpoint's signature, not only those anchoring the checkpoint chain.
    """

    def __init__(
        self,
        checkpoints: Iterable[Checkpoint] = (),
        public_key: Ed25519PublicKey | None = None,
        *,
        all_signatures: bool = False,
    ) -> None:
        self._all_signatures = all_signatures
        self._cps = sorted(checkpoints, key=lambda cp: cp.seq)
        self.n_checkpoints = len(self._cps)
        self._key = public_key
        self._by_seq: dict[int, list[int]] = {}
        for i, cp in enumerate(self._cps):
            self._by_seq.setdefault(cp.seq, []).append(i)
        self._cp_results: dict[int, ChainIntegrityError | None] = {}
        self._last_cp = max(self._by_seq, default=0)
        self._cp_seqs = sorted(self._by_seq)
        self._cp_next = 0  # index into _cp_seqs of the next checkpoint to check
        # Merkle tree, built block by block: ``_prefix`` holds the perfect subtree roots of the
        # first ``_block_start`` leaves (a multiple of _BLOCK); ``_pending`` the leaves after them.
        self._prefix: list[bytes] = []
        self._block_start = 0
        self._pending: list[bytes] = []
        self._expected = 1
        self._prev = GENESIS
        self._stopped: ChainIntegrityError | None = None

    @property
    def stopped(self) -> bool:
        """True once a record fault was found (further batches are ignored)."""
        return self._stopped is not None

    def feed(
        self, seqs: Sequence[int], prevs: Sequence[bytes], hashes: Sequence[bytes], blobs: Sequence[bytes]
    ) -> bool:
        """Check one batch of records (parallel columns). Return False once a fault was found."""
        if self._stopped is not None:
            return False
        if seqs and self._batch_is_valid(seqs, prevs, hashes, blobs):
            n = len(seqs)
            if self._expected <= self._last_cp:
                self._pending.extend(hashes[: self._last_cp - self._expected + 1])
            self._expected += n
            self._prev = bytes(hashes[-1])
            while len(self._pending) >= _BLOCK:
                self._merkle_block(_BLOCK)
            return True
        # Something is wrong in this batch (or it is empty): walk it record by record to name
        # the first fault exactly.
        return self._feed_each(seqs, prevs, hashes, blobs)

    def feed_arrow(self, batch: Any) -> bool:
        """Check one Arrow record batch with columns ``seq, prev_hash, entry_hash, record``.

        The fast path never turns the columns into Python objects: seqs are checked with
        numpy, the hash columns are compared as whole buffers, and records are hashed
        straight from the Arrow data buffer. Any doubt falls back to :meth:`feed`.
        """
        if self._stopped is not None:
            return False
        hashes = _fast_arrow_hashes(batch, self._expected, self._prev)
        if hashes is None:
            return self.feed(*(batch.column(i).to_pylist() for i in range(4)))
        if self._expected <= self._last_cp:
            self._pending.extend(hashes[: self._last_cp - self._expected + 1])
        self._expected += len(hashes)
        if hashes:
            self._prev = hashes[-1]
        while len(self._pending) >= _BLOCK:
            self._merkle_block(_BLOCK)
        return True

    def _batch_is_valid(
        self, seqs: Sequence[int], prevs: Sequence[bytes], hashes: Sequence[bytes], blobs: Sequence[bytes]
    ) -> bool:
        """Whole-batch check with C-level list comparisons; equivalent to the per-record walk.

        Seqs run on without gaps, each stored ``prev_hash`` is the stored hash of the row
        before, and each stored hash is ``sha256(0x00 || stored prev || record)``; by
        induction every hash is then the chained hash from genesis.
        """
        expected = self._expected
        if list(seqs) != list(range(expected, expected + len(seqs))):
            return False
        if prevs[0] != self._prev or list(prevs[1:]) != list(hashes[:-1]):
            return False
        sha = _sha256
        return [sha(b"\x00" + p + b).digest() for p, b in zip(prevs, blobs, strict=True)] == list(hashes)

    def _feed_each(
        self, seqs: Sequence[int], prevs: Sequence[bytes], hashes: Sequence[bytes], blobs: Sequence[bytes]
    ) -> bool:
        # The per-record walk: local names only. Plain ``!=`` on bytes is fine here (no secret is
        # compared); proofs use hmac.compare_digest. Merkle leaves are collected and hashed
        # block by block (list comprehensions), checkpoints are checked per block.
        expected = self._expected
        prev = self._prev
        last_cp = self._last_cp
        track = expected <= last_cp
        pend = self._pending.append
        sha = _sha256
        fault: ChainIntegrityError | None = None
        for seq, stored_prev, stored_hash, blob in zip(seqs, prevs, hashes, blobs, strict=True):
            if seq != expected:
                fault = self._seq_fault(seq, expected, seqs)
                break
            if stored_prev != prev:
                fault = ChainIntegrityError(seq, "prev_mismatch", prev.hex(), bytes(stored_prev).hex())
                break
            h = sha(b"\x00" + prev + blob).digest()
            if h != stored_hash:
                fault = ChainIntegrityError(seq, "hash_mismatch", h.hex(), bytes(stored_hash).hex())
                break
            if track:
                pend(h)
                if seq >= last_cp:
                    track = False
            prev = h
            expected += 1
        self._expected = expected
        self._prev = prev
        while len(self._pending) >= _BLOCK:
            self._merkle_block(_BLOCK)
        if fault is not None:
            self._stopped = fault
            return False
        return True

    def _merkle_block(self, count: int) -> None:
        """Hash the next ``count`` pending leaves, check the checkpoints they reach, fold a full block."""
        leaves = self._pending[:count]
        del self._pending[:count]
        start = self._block_start
        sha = _sha256
        levels = [leaves]  # entry hashes are the leaf hashes
        while len(levels[-1]) > 1:
            lv = levels[-1]
            levels.append([sha(b"\x01" + a + b).digest() for a, b in zip(lv[0::2], lv[1::2], strict=False)])
        end = start + count
        while self._cp_next < len(self._cp_seqs) and self._cp_seqs[self._cp_next] <= end:
            seq = self._cp_seqs[self._cp_next]
            self._cp_next += 1
            r = seq - start
            parts = list(self._prefix)
            offset = 0
            for m in range(len(levels) - 1, -1, -1):
                if r >> m & 1:
                    parts.append(levels[m][offset >> m])
                    offset += 1 << m
            root = parts[-1]
            for node in reversed(parts[:-1]):
                root = node_hash(node, root)
            for i in self._by_seq[seq]:
                self._cp_results[i] = _checkpoint_fault(self._cps[i], leaves[r - 1], root)
        if count == _BLOCK:
            node = levels[-1][0]
            n = start // _BLOCK
            while n & 1:
                node = node_hash(self._prefix.pop(), node)
                n >>= 1
            self._prefix.append(node)
            self._block_start = end

    def _seq_fault(self, seq: int, expected: int, batch: Sequence[int]) -> ChainIntegrityError:
        if seq == expected - 1:
            return ChainIntegrityError(expected, "duplicate_seq", str(expected), str(seq))
        if seq < expected or expected in batch:
            # an earlier seq turns up late, or the expected seq comes later in this batch
            return ChainIntegrityError(expected, "reordered", str(expected), str(seq))
        return ChainIntegrityError(expected, "seq_gap", str(expected), str(seq))

    def finish(self, seconds: float = 0.0) -> VerifyReport:
        """Return the report (the first fault by sequence number, if any).

        Checkpoints form a chain (each signs the digest of the one before), so not every
        signature needs checking: the last checkpoint's signature is checked, and so is every
        checkpoint next to a broken link, with a head/root mismatch, or beyond the log. Every
        other checkpoint is committed, through the unbroken links after it, by a signature
        that was checked.
        """
        while self._pending:
            self._merkle_block(min(len(self._pending), _BLOCK))
        records = self._expected - 1
        cps = self._cps
        check: set[int] = set(range(len(cps))) if self._all_signatures else ({len(cps) - 1} if cps else set())
        broken: dict[int, bytes] = {}
        prev = GENESIS
        for i, cp in enumerate(cps):
            if cp.prev != prev:
                broken[i] = prev
                check.update({i - 1, i} if i else {i})
            prev = cp.digest()
        check.update(i for i, fault in self._cp_results.items() if fault is not None)
        check.update(i for i, cp in enumerate(cps) if cp.seq > records)
        key = self._key
        sig_ok = {i: key is not None and cps[i].verify_signature(key) for i in sorted(check)}
        errors: list[ChainIntegrityError] = []
        for i, cp in enumerate(cps):
            fault = self._cp_results.get(i)
            if not sig_ok.get(i, True):
                detail = ("no public key to check checkpoints" if key is None
                          else f"checkpoint {cp.seq} signature does not verify")
                errors.append(ChainIntegrityError(cp.seq, "bad_signature", detail=detail))
            elif fault is not None:
                errors.append(fault)
            elif i in broken:
                errors.append(ChainIntegrityError(
                    cp.seq, "checkpoint_chain", broken[i].hex(), cp.prev.hex(),
                    detail="the checkpoint before it is missing or was altered"))
        records = self._expected - 1
        if self._stopped is not None:
            errors.append(self._stopped)
        else:
            beyond = [cp.seq for i, cp in enumerate(cps) if cp.seq > records and sig_ok.get(i)]
            if beyond:
                errors.append(
                    ChainIntegrityError(records + 1, "truncated", str(max(beyond)), str(records),
                                        detail=f"a signed checkpoint covers {max(beyond)} records")
                )
        first = None
        if errors:
            # smallest seq; on a tie the record fault (appended last) wins
            first = min(reversed(errors), key=lambda e: e.seq)
        return VerifyReport(
            ok=first is None,
            records=records,
            checkpoints=self.n_checkpoints,
            head_seq=records,
            head_hash=self._prev.hex(),
            seconds=seconds,
            fault=None if first is None else first.to_dict(),
            error=first,
        )


def _binary_parts(array: Any) -> tuple[Any, memoryview] | None:
    """Offsets (numpy) and data buffer of a null-free Arrow (large_)binary array."""
    if array.null_count:
        return None
    kind = array.type
    if pa.types.is_binary(kind):
        dtype: Any = np.int32
    elif pa.types.is_large_binary(kind):
        dtype = np.int64
    else:
        return None
    _validity, offsets, data = array.buffers()
    size = np.dtype(dtype).itemsize
    offs = np.frombuffer(offsets, dtype=dtype, count=len(array) + 1, offset=array.offset * size)
    return offs, memoryview(data) if data is not None else memoryview(b"")


def _fixed32(array: Any) -> bytes | None:
    """Return the concatenated values of a binary column whose values are all 32 bytes, else None."""
    parts = _binary_parts(array)
    if parts is None:
        return None
    offs, data = parts
    if not bool(np.all(np.diff(offs) == 32)):
        return None
    return bytes(data[int(offs[0]): int(offs[-1])])


def _fast_arrow_hashes(batch: Any, expected: int, prev: bytes) -> list[bytes] | None:
    """Entry hashes of a batch if the whole batch is a valid continuation of the chain, else None."""
    n = batch.num_rows
    if n == 0 or batch.num_columns != 4:
        return None
    seq_col, prev_col, hash_col, rec_col = (batch.column(i) for i in range(4))
    if seq_col.null_count:
        return None
    seqs = seq_col.to_numpy(zero_copy_only=False)
    if seqs[0] != expected or (n > 1 and not bool(np.all(np.diff(seqs) == 1))):
        return None
    prevs = _fixed32(prev_col)
    stored = _fixed32(hash_col)
    records = _binary_parts(rec_col)
    if prevs is None or stored is None or records is None:
        return None
    if prevs[:32] != prev or prevs[32:] != stored[:-32]:
        return None
    offs, data = records[0].tolist(), records[1]
    sha = _sha256
    hashes = [
        sha(b"\x00" + prevs[j: j + 32] + data[a:b]).digest()
        for j, a, b in zip(range(0, 32 * n, 32), offs, offs[1:], strict=False)
    ]
    if b"".join(hashes) != stored:
        return None
    return hashes


def _checkpoint_fault(cp: Checkpoint, head: bytes, root: bytes) -> ChainIntegrityError | None:
    if not _compare(cp.head_hash, head):
        return ChainIntegrityError(cp.seq, "checkpoint_mismatch", cp.head_hash.hex(), head.hex(),
                                   detail="head hash differs from the signed checkpoint")
    if not _compare(cp.merkle_root, root):
        return ChainIntegrityError(cp.seq, "checkpoint_mismatch", cp.merkle_root.hex(), root.hex(),
                                   detail="Merkle root differs from the signed checkpoint")
    return None


def verify_chain(
    entries: Iterable[object],
    checkpoints: Iterable[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
) -> VerifyReport:
    """Verify entries (objects with ``seq``, ``prev_hash``, ``entry_hash``, ``canonical``) in order.

    Raises
    ------
    ChainIntegrityError
        Naming the first bad sequence number and the kind of fault.
    """
    verifier = ChainVerifier(checkpoints, public_key)
    for batch in _batches(entries, 10_000):
        if not verifier.feed(*batch):
            break
    report = verifier.finish()
    report.raise_for_fault()
    return report


def _batches(
    entries: Iterable[object], size: int
) -> Iterator[tuple[list[int], list[bytes], list[bytes], list[bytes]]]:
    cols: tuple[list[int], list[bytes], list[bytes], list[bytes]] = ([], [], [], [])
    for e in entries:
        cols[0].append(e.seq)  # type: ignore[attr-defined]
        cols[1].append(e.prev_hash)  # type: ignore[attr-defined]
        cols[2].append(e.entry_hash)  # type: ignore[attr-defined]
        cols[3].append(e.canonical)  # type: ignore[attr-defined]
        if len(cols[0]) >= size:
            yield cols
            cols = ([], [], [], [])
    if cols[0]:
        yield cols
