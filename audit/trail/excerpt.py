r"""Verifiable excerpts: records of the log a third party checks with only the public key.

:func:`write_excerpt` writes one JSON document; :func:`verify_excerpt` checks it::

    {"format": "facetrail-audit-excerpt/2",
     "checkpoint": the signed checkpoint note (C2SP signed note) of tree size N,
     "manifest": {"format", "created_at", "filters", "size": N, "records": [[seq, entry_hash_hex], ...]},
     "manifest_signature": base64 Ed25519 over b"facetrail.audit.excerpt.v2\n" + canonical JSON of manifest,
     "records": [{"seq", "prev_hash", "entry_hash", "canonical" (the exact hashed text), "proof": [base64...]}],
     "consistency": [{"from": M, "to": N, "proof": [base64...]}, ...]}

Each record's entry hash is recomputed from ``prev_hash`` and its canonical text
(:func:`audit.trail.chain.entry_hash`) and proven to be leaf ``seq - 1`` of the
Merkle tree whose root the checkpoint signs (RFC 6962 inclusion proof). The signed
manifest lists which records the excerpt holds, so adding or removing a record is
detected too. Excerpts always carry the original, un-pseudonymised records.

A third party that already holds a checkpoint of the log (``trusted``: one published
earlier, or from an excerpt of last week) checks that the excerpt's tree extends it:
an RFC 6962 consistency proof between the two sizes, taken from the excerpt
(``audit excerpt --prove-from M``) or from ``facetrail audit prove-consistency``
output (``proof``). A history that contradicts the trusted checkpoint fails
(``inconsistent``), as does one without a proof (``no_proof``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from audit.errors import ChainIntegrityError, ExcerptError
from audit.outputs import check_out_path
from audit.trail.chain import (
    entry_hash,
    verify_consistency,
    verify_inclusion,
)
from audit.trail.export import ExportSummary
from audit.trail.log import AuditLog
from audit.trail.notes import Checkpoint, NoteError, NoteKey, parse_checkpoint, verify_checkpoint
from audit.trail.records import canonical_bytes, decode_record, utc_now_iso
from audit.trail.store import AuditFilter
from audit.trail.verify import parse_keys
from core.image import sha256_file

__all__ = ["EXCERPT_FORMAT", "ExcerptReport", "verify_excerpt", "write_excerpt"]

EXCERPT_FORMAT = "facetrail-audit-excerpt/2"
_MANIFEST_DOMAIN = b"facetrail.audit.excerpt.v2\n"


def _manifest_message(manifest: dict[str, Any]) -> bytes:
    return _MANIFEST_DOMAIN + canonical_bytes(manifest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_excerpt(
    log: AuditLog, path: str | os.PathLike[str], filters: AuditFilter | None = None, *,
    prove_from: Sequence[int] = (), force: bool = True,
) -> ExportSummary:
    """Write a verifiable excerpt of the records matching ``filters`` (see the module docstring).

    The excerpt is proven against the signed checkpoint at the head; ``prove_from`` adds
    consistency proofs from those earlier tree sizes.

    Raises
    ------
    AuditError
        If the log is empty, or ``path`` is refused (:func:`audit.trail.outputs.check_out_path`).
    ChainIntegrityError
        If the stored hashes do not prove a record (or a consistency proof) against the signed checkpoint.
    ValueError
        A ``prove_from`` size beyond the checkpoint.
    """
    out = check_out_path(path, log.protected_paths(), force=force)
    filters = filters or AuditFilter()
    cp = log.checkpoint()
    entries = [e for e in log.list(filters) if e.seq <= cp.size]
    # O(log n) stored subtree hashes a record, each path checked against the signed root (ChainIntegrityError)
    paths = log.prove_inclusions([e.seq for e in entries], cp.size)
    proofs = {seq - 1: path for seq, path in paths.items()}
    manifest = {
        "format": EXCERPT_FORMAT,
        "created_at": utc_now_iso(),
        "filters": filters.to_dict(),
        "size": cp.size,
        "records": [[e.seq, e.entry_hash.hex()] for e in entries],
    }
    doc = {
        "format": EXCERPT_FORMAT,
        "checkpoint": cp.note,
        "manifest": manifest,
        "manifest_signature": _b64(log.sign(_manifest_message(manifest))),
        "records": [
            {
                "seq": e.seq,
                "prev_hash": e.prev_hash.hex(),
                "entry_hash": e.entry_hash.hex(),
                "canonical": e.canonical.decode("utf-8"),
                "proof": [_b64(p) for p in proofs[e.seq - 1]],
            }
            for e in entries
        ],
        "consistency": [{"from": m, "to": cp.size, "proof": [_b64(p) for p in log.prove_consistency(m, cp.size)]}
                        for m in prove_from],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return ExportSummary(str(out), "excerpt", len(entries), sha256_file(out), False, True, filters.to_dict())


@dataclass(frozen=True)
class ExcerptReport:
    """Outcome of :func:`verify_excerpt`."""

    ok: bool
    records: int
    checkpoint_seq: int
    key_id: str
    fault: dict[str, object] | None = None
    origin: str | None = None
    trusted_size: int | None = None
    """Size of the trusted checkpoint the excerpt was checked against (None: none given)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def _unb64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error) as err:
        raise ExcerptError(f"{what} is not base64: {value!r}") from err


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError as err:
        raise ExcerptError(f"{what} is not hex: {value!r}") from err


def _verified(note: str, keys: list[NoteKey], what: str, origin: str | None = None) -> Checkpoint:
    try:
        return verify_checkpoint(note, keys, origin=origin)
    except NoteError as err:
        raise ChainIntegrityError(0, "bad_signature", detail=f"{what}: {err}") from err


def _check_excerpt(doc: dict[str, Any], public_key: str, trusted: str | None,
                   proof: dict[str, Any] | None) -> tuple[int, Checkpoint, str, int | None]:
    """Raise the first fault of an excerpt; return (records, checkpoint, key id, trusted size)."""
    if doc.get("format") != EXCERPT_FORMAT:
        raise ExcerptError(f"not a facetrail audit excerpt of format {EXCERPT_FORMAT} (format {doc.get('format')!r})")
    try:
        note = str(doc["checkpoint"])
        manifest = doc["manifest"]
        records = doc["records"]
        listed = [(int(s), str(h)) for s, h in manifest["records"]]
        manifest_sig = _unb64(doc["manifest_signature"], "manifest_signature")
        consistency = list(doc.get("consistency") or [])
    except (KeyError, TypeError, ValueError) as err:
        raise ExcerptError(f"excerpt is missing or mangles a part: {err!r}") from err
    try:
        claimed = parse_checkpoint(note)[0]
        keys = parse_keys(public_key, claimed.origin)
    except NoteError as err:
        raise ChainIntegrityError(0, "bad_signature", detail=f"excerpt checkpoint: {err}") from err
    cp = _verified(note, keys, "excerpt checkpoint")
    signer = next(k for k in keys if k.name == cp.origin)
    try:
        signer.ed25519().verify(manifest_sig, _manifest_message(manifest))
    except InvalidSignature as err:
        raise ChainIntegrityError(0, "bad_signature", detail="excerpt manifest is not signed by the log key") from err
    if manifest.get("size") != cp.size:
        raise ChainIntegrityError(cp.size, "checkpoint_mismatch", str(cp.size), str(manifest.get("size")),
                                  detail="the manifest is of another tree size than the checkpoint")
    trusted_size = None if trusted is None else _check_trusted(cp, keys, trusted, consistency, proof)
    expected = dict(listed)
    seen: set[int] = set()
    faults: list[ChainIntegrityError] = []
    for item in records:
        try:
            seq = int(item["seq"])
            prev = _hex(item["prev_hash"], "prev_hash")
            claimed_hash = _hex(item["entry_hash"], "entry_hash")
            canonical = str(item["canonical"]).encode("utf-8")
            path = [_unb64(p, "proof") for p in item["proof"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ExcerptError(f"excerpt record is malformed: {err!r}") from err
        fault = _check_record(seq, prev, claimed_hash, canonical, path, cp, expected, seen)
        if fault is not None:
            faults.append(fault)
        seen.add(seq)
    for seq in expected:
        if seq not in seen:
            faults.append(ChainIntegrityError(seq, "missing_record", detail="listed in the signed manifest"))
    if faults:
        raise min(faults, key=lambda f: f.seq)
    return len(records), cp, signer.key_id.hex(), trusted_size


def _check_trusted(cp: Checkpoint, keys: list[NoteKey], trusted: str, consistency: list[Any],
                   proof: dict[str, Any] | None) -> int:
    """Check the excerpt's checkpoint and the trusted one are of one history; return the trusted size."""
    held = _verified(trusted, keys, "the trusted checkpoint", origin=cp.origin)
    if held.size == cp.size:
        if not hmac.compare_digest(held.root, cp.root):
            raise ChainIntegrityError(cp.size, "inconsistent", _b64(held.root), _b64(cp.root),
                                      detail="a checkpoint of the same size with another root: a forked history")
        return held.size
    old, new = (held, cp) if held.size < cp.size else (cp, held)
    candidates = [*consistency, *([proof] if proof is not None else [])]
    path = None
    for item in candidates:
        try:
            if int(item["from"]) == old.size and int(item["to"]) == new.size:
                path = [_unb64(p, "consistency proof") for p in item["proof"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ExcerptError(f"consistency proof is malformed: {err!r}") from err
    if path is None:
        raise ChainIntegrityError(old.size, "no_proof", str(old.size), str(new.size),
                                  detail=f"no consistency proof from size {old.size} to {new.size}: ask for "
                                         f"`facetrail audit prove-consistency --from {old.size} --to {new.size}`")
    if not verify_consistency(old.size, new.size, old.root, new.root, path):
        raise ChainIntegrityError(old.size, "inconsistent", detail=f"the tree of size {new.size} does not extend "
                                                                   f"the one of size {old.size}: a forked or "
                                                                   "rewritten history")
    return held.size


def _check_record(
    seq: int, prev: bytes, claimed: bytes, canonical: bytes, proof: list[bytes], cp: Checkpoint,
    expected: dict[int, str], seen: set[int],
) -> ChainIntegrityError | None:
    if seq in seen:
        return ChainIntegrityError(seq, "duplicate_seq")
    if seq not in expected:
        return ChainIntegrityError(seq, "unexpected_record", detail="not listed in the signed manifest")
    try:
        record = decode_record(canonical)
    except ValueError as err:
        return ChainIntegrityError(seq, "bad_record", detail=str(err))
    if record.seq != seq:
        return ChainIntegrityError(seq, "bad_record", str(seq), str(record.seq))
    h = entry_hash(prev, canonical)
    if not hmac.compare_digest(h, claimed) or not hmac.compare_digest(h.hex(), expected[seq]):
        return ChainIntegrityError(seq, "hash_mismatch", expected[seq], h.hex())
    if seq > cp.size:
        return ChainIntegrityError(seq, "truncated", str(cp.size), str(seq), detail="record after the checkpoint")
    if not verify_inclusion(h, seq - 1, cp.size, proof, cp.root, hashed=True):
        return ChainIntegrityError(seq, "bad_proof", detail=f"not included in the tree of checkpoint {cp.size}")
    return None


def read_json_object(path: str | os.PathLike[str], what: str, error: type[Exception]) -> dict[str, Any]:
    """Return the JSON object in file ``path`` (an excerpt, a receipt: ``what``), or raise ``error`` naming the fault."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"cannot read {what} {str(path)!r}: {err}") from err
    if not isinstance(doc, dict):
        raise error(f"{what} {str(path)!r} is not a JSON object")
    return doc


def verify_excerpt(
    path: str | os.PathLike[str], public_key: str | bytes, trusted: str | None = None,
    proof: dict[str, Any] | None = None,
) -> ExcerptReport:
    """Check an excerpt with only the public key; integrity faults are reported, not raised.

    Parameters
    ----------
    public_key
        The log's key: PEM, or verifier keys (one per line, e.g. its key history).
    trusted
        A checkpoint note of the log the caller already holds: the excerpt must be of a history
        that extends it (or that it extends), proven by a consistency proof.
    proof
        ``facetrail audit prove-consistency --json`` output, if the excerpt has no proof for the sizes.

    Raises
    ------
    ExcerptError
        If the file is not a readable excerpt.
    KeyFileError
        If ``public_key`` is not an Ed25519 public key.
    """
    key_text = public_key.decode("ascii", "replace") if isinstance(public_key, bytes) else public_key
    doc = read_json_object(path, "excerpt", ExcerptError)
    try:
        n, cp, key_id, held = _check_excerpt(doc, key_text, trusted, proof)
    except ChainIntegrityError as err:
        return ExcerptReport(False, len(doc.get("records") or []), 0, "", err.to_dict())
    return ExcerptReport(True, n, cp.size, key_id, origin=cp.origin, trusted_size=held)
