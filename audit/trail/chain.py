r"""The hash chain, its RFC 6962 Merkle tree, signed checkpoints, and the one verifier.

Pure functions over bytes: no database, no Arrow, no numpy. The store hands the
verifier plain columns (:class:`RowBatch`); everything here can be checked by a
third party with the RFC text and this page.

* **Entry hash** (:func:`entry_hashes` / :func:`entry_hash`, the one definition of the formula):
  ``entry_hash = sha256(0x00 || prev_hash || canonical)``; the ``prev_hash`` of
  record 1 is 32 zero bytes (:data:`GENESIS`).
* **Merkle tree** (RFC 6962 section 2.1) over records ``1..n``. The leaf data of
  record ``i`` is ``prev_hash || canonical``, so its RFC 6962 leaf hash *is* its
  entry hash: the tree is built over the entry hashes without hashing them again.
  Interior nodes are ``sha256(0x01 || left || right)`` (:func:`node_hash`), split at
  the largest power of two smaller than ``n``; the empty tree's root is
  ``sha256(b"")``. Inclusion proofs are RFC 6962 audit paths, checked with the
  RFC 9162 section 2.1.3.2 algorithm. The generic functions take leaf *data*; pass
  ``hashed=True`` to give leaf hashes (entry hashes) instead.
* **Consistency proofs** (RFC 6962 section 2.1.2): :func:`consistency_proof` and
  :func:`verify_consistency` (the RFC 9162 section 2.1.4.2 algorithm); :func:`tree_levels`
  and :func:`prefix_root` give the root of any prefix of a tree in O(log n).
  :func:`consistency_ranges` and :func:`inclusion_ranges` name the leaf ranges a proof's
  hashes cover, :func:`perfect_subtrees` splits each into stored perfect subtrees and
  :func:`fold_subtrees` joins their hashes, so a store that keeps perfect subtree roots
  (:meth:`MerkleFrontier.append_hash_subtrees`) gives any proof in O(log n) reads.
* **Checkpoint** (:class:`Checkpoint`): the signed checkpoint of schema versions 1-3
  (Ed25519 over ``b"facetrail.audit.checkpoint.v1\n"`` and the canonical JSON of
  ``{seq, head, root, created_at, key_id, prev}``), kept so that old files and their
  tests read; the log now stores a C2SP signed note with every record
  (:mod:`audit.trail.notes`) and :mod:`audit.trail.verify` checks those.

Verification
------------
:func:`verify_chain` is the only verifier (the log, the tests and the benchmark
all use it). It reads :class:`RowBatch` es in storage order and reports the
*first* sequence number at which the log departs from a valid chain, and the kind
of fault. Position ``i`` (1-based) must hold the record with ``seq == i`` whose
``prev_hash`` is the entry hash at ``i - 1`` and whose ``entry_hash`` matches its
bytes. Checkpoint faults are reported at the checkpoint's ``seq``; when a record
fault and a checkpoint fault compete, the smaller ``seq`` wins (the record fault on
a tie). A log rewritten consistently from some record on (all later hashes
recomputed) can only be caught by a checkpoint: it is reported as
``checkpoint_mismatch`` at the first checkpoint after the rewrite. Dropping the tail
of the log *and* the checkpoints covering it cannot be detected from the database
alone: publish or export checkpoints (``audit checkpoint --json``) to anchor them
outside it.

Each batch is first checked whole (C-level list comparisons, or for a
:class:`PackedBatch` whole-buffer comparisons and one hash per leaf); only a batch with a
fault in it is walked record by record to name the fault, so an untouched log costs
one hash per record and one per Merkle node. Not every checkpoint signature needs
checking either: each checkpoint signs the digest of the one before, so the last
checkpoint's signature is checked, and so is every checkpoint next to a broken link,
with a head/root mismatch, or beyond the log; every other checkpoint is committed,
through the unbroken links after it, by a signature that was checked
(``all_signatures=True`` checks them all).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import ChainIntegrityError

__all__ = [
    "EMPTY_ROOT",
    "GENESIS",
    "Checkpoint",
    "MerkleFrontier",
    "PackedBatch",
    "RowBatch",
    "VerifyReport",
    "consistency_proof",
    "consistency_ranges",
    "entry_hash",
    "entry_hashes",
    "fold_subtrees",
    "inclusion_proofs",
    "inclusion_ranges",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "perfect_subtrees",
    "prefix_root",
    "sign_checkpoint",
    "tree_levels",
    "verify_chain",
    "verify_consistency",
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


def entry_hashes(prev_hashes: Sequence[bytes], records: Sequence[bytes]) -> list[bytes]:
    """Return the entry hash ``sha256(0x00 || prev_hash || canonical)`` of each record.

    The one place the formula is written (:func:`entry_hash` is its one-record form); a
    batch of records is hashed without a Python call per record. The entry hash is the
    RFC 6962 leaf hash of ``prev_hash || canonical`` (``leaf_hash(prev_hash + canonical)``),
    computed without the intermediate copy.

    Raises
    ------
    ValueError
        If the two sequences differ in length.
    """
    return [_sha256(b"\x00" + prev + canonical).digest() for prev, canonical in zip(prev_hashes, records, strict=True)]


def entry_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """Return the entry hash of one record (see :func:`entry_hashes`)."""
    return entry_hashes((prev_hash,), (canonical,))[0]


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``sha256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """Return the node hash of each pair ``level[0:2], level[2:4], ...`` (an unpaired last node is left out)."""
    return [_sha256(b"\x01" + left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``sha256(0x01 || left || right)``."""
    return _parents((left, right))[0]


# -- Merkle tree -----------------------------------------------------------------------------------


def _levels(leaves: Sequence[bytes], hashed: bool = False) -> list[list[bytes]]:
    """Return the tree bottom-up; an unpaired last node moves up unchanged (equals RFC 6962's split)."""
    level = list(leaves) if hashed else [leaf_hash(d) for d in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = _parents(level)
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


def inclusion_proofs(
    leaves: Sequence[bytes], indices: Iterable[int], *, hashed: bool = False
) -> dict[int, list[bytes]]:
    """Return the RFC 6962 audit paths of leaves ``indices`` (0-based) of one tree (built once).

    Raises
    ------
    ValueError
        If an index is outside the tree.
    """
    levels = _levels(leaves, hashed)
    out: dict[int, list[bytes]] = {}
    for index in indices:
        if not 0 <= index < len(leaves):
            raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
        path: list[bytes] = []
        i = index
        for level in levels[:-1]:
            if i ^ 1 < len(level):
                path.append(level[i ^ 1])
            i //= 2
        out[index] = path
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


def _largest_power_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def consistency_proof(hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """Return the RFC 6962 section 2.1.2 consistency proof ``PROOF(old_size, D[new_size])``.

    ``hashes`` are the leaf hashes (for the audit log: the entry hashes) of at least
    ``new_size`` leaves (default: all of them). The proof of ``0`` or of ``new_size``
    itself is empty. Each subtree hash in the proof is computed once, so the cost is one
    hash per leaf of the larger tree.

    Raises
    ------
    ValueError
        If ``not 0 <= old_size <= new_size <= len(hashes)``.
    """
    n = len(hashes) if new_size is None else new_size
    if not 0 <= old_size <= n <= len(hashes):
        raise ValueError(f"a consistency proof needs 0 <= old ({old_size}) <= new ({n}) <= {len(hashes)} leaves")
    return [merkle_root(hashes[start:end], hashed=True) for start, end in consistency_ranges(old_size, n)]


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges ``[start, end)`` whose tree hashes are ``PROOF(old_size, D[new_size])``, in order.

    RFC 6962 section 2.1.2's SUBPROOF, unrolled: each step records one sibling subtree.
    Every range is split by :func:`perfect_subtrees` into at most ``log2(n)`` perfect
    subtrees (only the first range, which ends at ``new_size``, is not one itself), so a
    store that keeps perfect subtree hashes gives the proof in O(log n) reads.

    Raises
    ------
    ValueError
        If ``not 0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"a consistency proof needs 0 <= old ({old_size}) <= new ({new_size})")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        size = end - start
        if m == size:
            if not complete:
                ranges.append((start, end))
            break
        k = _largest_power_below(size)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    ranges.reverse()
    return ranges


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges ``[start, end)`` whose tree hashes are the RFC 6962 audit path of leaf ``index``.

    Bottom-up, as :func:`inclusion_proofs` gives them (RFC 6962 section 2.1.1's PATH).

    Raises
    ------
    ValueError
        If the index is outside the tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = _largest_power_below(end - start)
        if m < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m = start + k, m - k
    ranges.reverse()
    return ranges


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split the leaf range ``[start, end)`` into ``(start, 2**h)`` perfect subtrees, largest first.

    For the ranges of RFC 6962's recursion (``start`` a multiple of a power of two at
    least ``end - start``), the range's tree hash is the right fold of these subtrees'
    hashes with :func:`node_hash`, as :func:`fold_subtrees` does.
    """
    out: list[tuple[int, int]] = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        while start % size:
            size >>= 1
        out.append((start, size))
        start += size
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Return the tree hash of consecutive perfect subtrees (largest first, as :func:`perfect_subtrees` gives)."""
    root = hashes[-1]
    for node in reversed(hashes[:-1]):
        root = node_hash(node, root)
    return root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check an RFC 6962 consistency proof with the RFC 9162 section 2.1.4.2 algorithm.

    The empty tree is consistent with every tree (its proof is empty); a tree is
    consistent with itself only with an empty proof and the same root. Every hash in
    the proof must be used: a proof with extra or missing hashes fails.
    """
    if not 0 <= old_size <= new_size or any(len(p) != 32 for p in proof):
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return not proof and _compare(old_root, new_root)
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and _compare(fr, old_root) and _compare(sr, new_root)


def tree_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Return the tree over the leaf hashes ``hashes``, bottom-up, for :func:`prefix_root` (one hash per node)."""
    return _levels(hashes, hashed=True)


def prefix_root(levels: Sequence[Sequence[bytes]], size: int) -> bytes:
    """Return the RFC 6962 root of the first ``size`` leaves, from the levels of a larger tree, in O(log n).

    ``levels`` is :func:`tree_levels` of the larger tree. The first ``size``
    leaves split into perfect subtrees (the binary digits of ``size``, largest first),
    each a node of the larger tree.

    Raises
    ------
    ValueError
        If ``size`` exceeds the leaves of ``levels``.
    """
    if size == 0:
        return EMPTY_ROOT
    if size > len(levels[0]):
        raise ValueError(f"a prefix of {size} leaves of a tree of {len(levels[0])}")
    parts: list[bytes] = []
    offset = 0
    for m in range(size.bit_length() - 1, -1, -1):
        if size >> m & 1:
            parts.append(levels[m][offset >> m])
            offset += 1 << m
    root = parts[-1]
    for node in reversed(parts[:-1]):
        root = node_hash(node, root)
    return root


class MerkleFrontier:
    """Incremental RFC 6962 root: the roots of the perfect subtrees of the leaves so far.

    Their sizes are the binary digits of the leaf count, largest first, so a
    frontier serializes as the concatenation of its hashes (:meth:`to_bytes`).

    Raises
    ------
    ValueError
        If the number of hashes does not match ``size``.
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
        self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> None:
        """Add one leaf by its leaf hash (for the audit log: the entry hash)."""
        stack = self._stack
        n = self.size
        while n & 1:
            h = node_hash(stack.pop(), h)
            n >>= 1
        stack.append(h)
        self.size += 1

    def append_hash_subtrees(self, h: bytes) -> bytes:
        """Add one leaf by its leaf hash; return the roots of the perfect subtrees it completes, smallest first.

        Leaf ``seq`` (1-based) completes the subtrees ``[seq - 2**h, seq)`` for ``h = 1 ..``
        the trailing zero bits of ``seq``; their roots are concatenated (empty for odd
        ``seq``). Stored with the record, they give any perfect subtree's hash in one read
        (:func:`perfect_subtrees`).
        """
        stack = self._stack
        n = self.size
        if not n & 1:  # an odd seq completes no subtree
            stack.append(h)
            self.size += 1
            return b""
        done: list[bytes] = []
        while n & 1:
            h = node_hash(stack.pop(), h)
            done.append(h)
            n >>= 1
        stack.append(h)
        self.size += 1
        return b"".join(done)

    def root(self) -> bytes:
        """Return the Merkle root of the leaves so far."""
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r


# -- checkpoints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the log's state at ``seq`` (the one checkpoint type)."""

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
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, ValueError, TypeError
            If a part is missing or not of the right form.
        """
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


# -- verification ----------------------------------------------------------------------------------


class RowBatch(NamedTuple):
    """Consecutive stored rows of the log as parallel columns of plain values (what the verifier reads)."""

    seqs: Sequence[int]
    """Stored sequence numbers."""
    prev_hashes: Sequence[bytes]
    """Stored ``prev_hash`` of each row."""
    entry_hashes: Sequence[bytes]
    """Stored ``entry_hash`` of each row."""
    records: Sequence[bytes]
    """Stored canonical record bytes of each row."""


class PackedBatch(NamedTuple):
    """Consecutive stored rows packed for the verifier's fast path (what :meth:`AuditStore.scan_packed` hands on).

    The same rows as a :class:`RowBatch`, without a Python object per hash: the verifier
    compares whole buffers, hashes each leaf once, and unpacks the batch (:meth:`rows`) only
    to name a fault in it.
    """

    seqs: bytes
    """Stored sequence numbers, int64 in native byte order (``array('q')``)."""
    prev_hashes: bytes
    """Stored ``prev_hash`` of each row, concatenated (32 bytes each)."""
    entry_hashes: bytes
    """Stored ``entry_hash`` of each row, concatenated (32 bytes each)."""
    leaves: Sequence[bytes]
    """Each row's RFC 6962 leaf input with its prefix: ``0x00 || stored prev_hash || stored record``."""

    def rows(self) -> RowBatch:
        """Return the batch as a :class:`RowBatch` (for the record-by-record walk)."""
        seqs = array("q")
        seqs.frombytes(self.seqs)
        prevs = [self.prev_hashes[i : i + 32] for i in range(0, len(self.prev_hashes), 32)]
        hashes = [self.entry_hashes[i : i + 32] for i in range(0, len(self.entry_hashes), 32)]
        return RowBatch(list(seqs), prevs, hashes, [leaf[33:] for leaf in self.leaves])


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
    signed: int = 0
    """Records ``1..signed`` are proven by a signed checkpoint that verifies."""
    origin: str | None = None
    """The log's origin the notes were checked for."""
    witnessed: int = 0
    """Records ``1..witnessed`` are covered by a stored witness cosignature."""
    unwitnessed: int = 0
    """Records after the last witnessed checkpoint."""
    error: ChainIntegrityError | None = field(default=None, compare=False, repr=False)
    """The first fault as an exception (not serialized)."""
    roots: dict[int, bytes] = field(default_factory=dict, compare=False, repr=False)
    """The recomputed Merkle root at each tree size asked for (``root_sizes``) that the chain reached."""
    hashes: list[bytes] | None = field(default=None, compare=False, repr=False)
    """With ``keep_hashes``: the entry hashes of the records that chain correctly, in seq order."""

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
            "signed": self.signed,
            "origin": self.origin,
            "witnessed": self.witnessed,
            "unwitnessed": self.unwitnessed,
        }

    def raise_for_fault(self) -> None:
        """Raise the recorded fault, if any.

        Raises
        ------
        ChainIntegrityError
            Naming the first bad sequence number and the kind of fault.
        """
        if self.error is not None:
            raise self.error


def verify_chain(
    batches: Iterable[RowBatch | PackedBatch],
    checkpoints: Iterable[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
    *,
    all_signatures: bool = False,
    root_sizes: Iterable[int] = (),
    keep_hashes: bool = False,
) -> VerifyReport:
    """Verify the log read as ``batches`` (storage order) against its signed ``checkpoints``.

    Integrity faults are reported, not raised (:meth:`VerifyReport.raise_for_fault`
    raises the first one). Reading stops at the first record fault; the caller closes
    ``batches`` if it holds resources.

    Parameters
    ----------
    batches
        The stored rows, in the order the store holds them.
    checkpoints
        The stored checkpoints.
    public_key
        Key the checkpoint signatures must verify with; ``None`` makes every checked
        checkpoint a ``bad_signature`` fault.
    all_signatures
        Check every checkpoint's signature; by default only the signatures anchoring the
        checkpoint chain are checked (see the module docstring).
    root_sizes
        Tree sizes whose recomputed Merkle root the report gives (:attr:`VerifyReport.roots`),
        e.g. the size of the latest signed note.
    keep_hashes
        Keep the recomputed entry hashes in the report (:attr:`VerifyReport.hashes`).
    """
    verifier = _Verifier(checkpoints, public_key, all_signatures, root_sizes, keep_hashes)
    for batch in batches:
        if not verifier.feed(batch):
            break
    return verifier.finish()


class _Verifier:
    """Single-pass state of :func:`verify_chain`: the chain so far, the Merkle tree in blocks, checkpoints."""

    def __init__(
        self, checkpoints: Iterable[Checkpoint], key: Ed25519PublicKey | None, all_signatures: bool,
        root_sizes: Iterable[int] = (), keep_hashes: bool = False,
    ) -> None:
        self._all_signatures = all_signatures
        self._cps = sorted(checkpoints, key=lambda cp: cp.seq)
        self._key = key
        self._by_seq: dict[int, list[int]] = {}
        for i, cp in enumerate(self._cps):
            self._by_seq.setdefault(cp.seq, []).append(i)
        self._cp_results: dict[int, ChainIntegrityError | None] = {}
        targets = set(self._by_seq) | {s for s in root_sizes if s > 0}
        self._last_cp = max(targets, default=0)
        self._cp_seqs = sorted(targets)
        self._roots: dict[int, bytes] = {}
        self._kept: list[bytes] | None = [] if keep_hashes else None
        self._cp_next = 0  # index into _cp_seqs of the next checkpoint to check
        # Merkle tree, built block by block: ``_prefix`` holds the perfect subtree roots of the
        # first ``_block_start`` leaves (a multiple of _BLOCK); ``_pending`` the leaves after them.
        self._prefix: list[bytes] = []
        self._block_start = 0
        self._pending: list[bytes] = []
        self._expected = 1
        self._prev = GENESIS
        self._stopped: ChainIntegrityError | None = None

    def feed(self, batch: RowBatch | PackedBatch) -> bool:
        """Check one batch of rows; return False once a record fault was found (later batches are ignored)."""
        if self._stopped is not None:
            return False
        hashes = self._packed_hashes(batch) if isinstance(batch, PackedBatch) else (
            batch.entry_hashes if batch.seqs and self._batch_is_valid(batch) else None)
        if hashes:
            if self._expected <= self._last_cp:
                self._pending.extend(hashes[: self._last_cp - self._expected + 1])
            self._expected += len(hashes)
            self._prev = bytes(hashes[-1])
            if self._kept is not None:
                self._kept.extend(hashes)
        else:
            # Something is wrong in this batch (or it is empty): walk it record by record to name
            # the first fault exactly.
            self._walk(batch.rows() if isinstance(batch, PackedBatch) else batch)
        while len(self._pending) >= _BLOCK:
            self._merkle_block(_BLOCK)
        return self._stopped is None

    def _batch_is_valid(self, batch: RowBatch) -> bool:
        """Whole-batch check with C-level list comparisons; equivalent to the per-record walk.

        Seqs run on without gaps, each stored ``prev_hash`` is the stored hash of the row
        before, and each stored hash is the entry hash of its stored prev and record; by
        induction every hash is then the chained hash from genesis.
        """
        seqs, prevs, hashes, blobs = batch
        expected = self._expected
        if list(seqs) != list(range(expected, expected + len(seqs))):
            return False
        if prevs[0] != self._prev or list(prevs[1:]) != list(hashes[:-1]):
            return False
        return entry_hashes(prevs, blobs) == list(hashes)

    def _packed_hashes(self, batch: PackedBatch) -> list[bytes] | None:
        """Whole-batch check of a packed batch (as :meth:`_batch_is_valid`); its entry hashes, or None.

        Each leaf is hashed once, and the seqs, the links and the stored hashes are compared as
        whole buffers: the stored hashes must be exactly the recomputed ones, the stored prevs
        the previous row's hash followed by all but the last stored hash.
        """
        n = len(batch.leaves)
        prevs, stored = batch.prev_hashes, batch.entry_hashes
        if not n or len(prevs) != 32 * n or len(stored) != 32 * n:
            return None
        if batch.seqs != array("q", range(self._expected, self._expected + n)).tobytes():
            return None
        if prevs[:32] != self._prev or prevs[32:] != stored[:-32]:
            return None
        sha = _sha256
        hashes = [sha(leaf).digest() for leaf in batch.leaves]
        return hashes if b"".join(hashes) == stored else None

    def _walk(self, batch: RowBatch) -> None:
        # Plain ``!=`` on bytes is fine here (no secret is compared); proofs use hmac.compare_digest.
        seqs = batch.seqs
        expected, prev, last_cp = self._expected, self._prev, self._last_cp
        track = expected <= last_cp
        fault: ChainIntegrityError | None = None
        for seq, stored_prev, stored_hash, blob in zip(*batch, strict=True):
            if seq != expected:
                fault = _seq_fault(seq, expected, seqs)
                break
            if stored_prev != prev:
                fault = ChainIntegrityError(seq, "prev_mismatch", prev.hex(), bytes(stored_prev).hex())
                break
            h = entry_hash(prev, blob)
            if h != stored_hash:
                fault = ChainIntegrityError(seq, "hash_mismatch", h.hex(), bytes(stored_hash).hex())
                break
            if track:
                self._pending.append(h)
                track = seq < last_cp
            if self._kept is not None:
                self._kept.append(h)
            prev = h
            expected += 1
        self._expected, self._prev, self._stopped = expected, prev, fault

    def _merkle_block(self, count: int) -> None:
        """Hash the next ``count`` pending leaves, check the checkpoints they reach, fold a full block."""
        leaves = self._pending[:count]
        del self._pending[:count]
        start = self._block_start
        levels = [leaves]  # entry hashes are the leaf hashes
        while len(levels[-1]) > 1:
            lv = levels[-1]
            levels.append(_parents(lv))
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
            self._roots[seq] = root
            for i in self._by_seq.get(seq, ()):
                self._cp_results[i] = _checkpoint_fault(self._cps[i], leaves[r - 1], root)
        if count == _BLOCK:
            node = levels[-1][0]
            n = start // _BLOCK
            while n & 1:
                node = node_hash(self._prefix.pop(), node)
                n >>= 1
            self._prefix.append(node)
            self._block_start = end

    def _signatures(self, records: int) -> tuple[dict[int, bool], dict[int, bytes]]:
        """Check the signatures that matter (module docstring); return ``(ok by index, broken links)``."""
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
        return {i: key is not None and cps[i].verify_signature(key) for i in sorted(check)}, broken

    def finish(self) -> VerifyReport:
        """Return the report: the first fault by sequence number, if any."""
        while self._pending:
            self._merkle_block(min(len(self._pending), _BLOCK))
        records = self._expected - 1
        sig_ok, broken = self._signatures(records)
        errors: list[ChainIntegrityError] = []
        for i, cp in enumerate(self._cps):
            fault = self._cp_results.get(i)
            if not sig_ok.get(i, True):
                detail = ("no public key to check checkpoints" if self._key is None
                          else f"checkpoint {cp.seq} signature does not verify")
                errors.append(ChainIntegrityError(cp.seq, "bad_signature", detail=detail))
            elif fault is not None:
                errors.append(fault)
            elif i in broken:
                errors.append(ChainIntegrityError(
                    cp.seq, "checkpoint_chain", broken[i].hex(), cp.prev.hex(),
                    detail="the checkpoint before it is missing or was altered"))
        if self._stopped is not None:
            errors.append(self._stopped)
        else:
            beyond = [cp.seq for i, cp in enumerate(self._cps) if cp.seq > records and sig_ok.get(i)]
            if beyond:
                errors.append(ChainIntegrityError(records + 1, "truncated", str(max(beyond)), str(records),
                                                  detail=f"a signed checkpoint covers {max(beyond)} records"))
        # smallest seq; on a tie the record fault (appended last) wins
        first = min(reversed(errors), key=lambda e: e.seq) if errors else None
        return VerifyReport(
            ok=first is None,
            records=records,
            checkpoints=len(self._cps),
            head_seq=records,
            head_hash=self._prev.hex(),
            fault=None if first is None else first.to_dict(),
            error=first,
            roots=dict(self._roots),
            hashes=self._kept,
        )


def _seq_fault(seq: int, expected: int, batch: Sequence[int]) -> ChainIntegrityError:
    if seq == expected - 1:
        return ChainIntegrityError(expected, "duplicate_seq", str(expected), str(seq))
    if seq < expected or expected in batch:
        # an earlier seq turns up late, or the expected seq comes later in this batch
        return ChainIntegrityError(expected, "reordered", str(expected), str(seq))
    return ChainIntegrityError(expected, "seq_gap", str(expected), str(seq))


def _checkpoint_fault(cp: Checkpoint, head: bytes, root: bytes) -> ChainIntegrityError | None:
    if not _compare(cp.head_hash, head):
        return ChainIntegrityError(cp.seq, "checkpoint_mismatch", cp.head_hash.hex(), head.hex(),
                                   detail="head hash differs from the signed checkpoint")
    if not _compare(cp.merkle_root, root):
        return ChainIntegrityError(cp.seq, "checkpoint_mismatch", cp.merkle_root.hex(), root.hex(),
                                   detail="Merkle root differs from the signed checkpoint")
    return None
