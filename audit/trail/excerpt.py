r"""Verifiable excerpts: records of the log a third party checks with only the public key.

:func:`write_excerpt` writes one JSON document; :func:`verify_excerpt` checks it::

    {"format": "facetrail-audit-excerpt/1",
     "manifest": {"format", "created_at", "filters", "checkpoint": {...signed checkpoint...},
                  "records": [[seq, entry_hash_hex], ...], "key_id"},
     "manifest_signature": hex Ed25519 over b"facetrail.audit.excerpt.v1\n" + canonical JSON of manifest,
     "public_key_fingerprint": "sha256:...",
     "records": [{"seq", "prev_hash", "entry_hash", "canonical" (the exact hashed text), "proof": [hex...]}]}

Each record's entry hash is recomputed from ``prev_hash`` and its canonical text
(:func:`audit.trail.chain.entry_hash`) and proven to be leaf ``seq - 1`` of the
Merkle tree whose root the checkpoint signs (RFC 6962 inclusion proof). The signed
manifest lists which records the excerpt holds, so adding or removing a record is
detected too. Excerpts always carry the original, un-pseudonymised records.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from audit.errors import ChainIntegrityError, ExcerptError
from audit.trail.chain import Checkpoint, entry_hash, inclusion_proofs, merkle_root, verify_inclusion
from audit.trail.export import ExportSummary
from audit.trail.keys import fingerprint, load_public_key_pem
from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes, decode_record, utc_now_iso
from audit.trail.store import AuditFilter
from core.image import sha256_file

__all__ = ["EXCERPT_FORMAT", "ExcerptReport", "verify_excerpt", "write_excerpt"]

EXCERPT_FORMAT = "facetrail-audit-excerpt/1"
_MANIFEST_DOMAIN = b"facetrail.audit.excerpt.v1\n"


def _manifest_message(manifest: dict[str, Any]) -> bytes:
    return _MANIFEST_DOMAIN + canonical_bytes(manifest)


def write_excerpt(
    log: AuditLog, path: str | os.PathLike[str], filters: AuditFilter | None = None
) -> ExportSummary:
    """Write a verifiable excerpt of the records matching ``filters`` (see the module docstring).

    A checkpoint is signed at the current head first, so every selected record is covered.

    Raises
    ------
    AuditError
        If the log is empty.
    ChainIntegrityError
        If the stored hashes do not reproduce the checkpoint's Merkle root.
    """
    filters = filters or AuditFilter()
    cp = log.checkpoint()
    entries = [e for e in log.list(filters) if e.seq <= cp.seq]
    hashes = log.store.hashes(1, cp.seq)
    if len(hashes) != cp.seq or merkle_root(hashes, hashed=True) != cp.merkle_root:
        raise ChainIntegrityError(cp.seq, "checkpoint_mismatch",
                                  detail="stored hashes do not reproduce the checkpoint; run audit verify")
    proofs = inclusion_proofs(hashes, [e.seq - 1 for e in entries], hashed=True)
    key_id = log.key_fingerprint()
    manifest = {
        "format": EXCERPT_FORMAT,
        "created_at": utc_now_iso(),
        "filters": filters.to_dict(),
        "checkpoint": cp.to_dict(),
        "records": [[e.seq, e.entry_hash.hex()] for e in entries],
        "key_id": key_id,
    }
    doc = {
        "format": EXCERPT_FORMAT,
        "manifest": manifest,
        "manifest_signature": log.sign(_manifest_message(manifest)).hex(),
        "public_key_fingerprint": key_id,
        "records": [
            {
                "seq": e.seq,
                "prev_hash": e.prev_hash.hex(),
                "entry_hash": e.entry_hash.hex(),
                "canonical": e.canonical.decode("utf-8"),
                "proof": [p.hex() for p in proofs[e.seq - 1]],
            }
            for e in entries
        ],
    }
    out = Path(path)
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

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError as err:
        raise ExcerptError(f"{what} is not hex: {value!r}") from err


def _check_excerpt(doc: dict[str, Any], public_key_pem: str | bytes) -> tuple[int, int, str]:
    """Raise the first fault of an excerpt; return (records, checkpoint seq, key id)."""
    key = load_public_key_pem(public_key_pem)
    key_id = fingerprint(key)
    if doc.get("format") != EXCERPT_FORMAT:
        raise ExcerptError(f"not a facetrail audit excerpt (format {doc.get('format')!r})")
    try:
        manifest = doc["manifest"]
        cp = Checkpoint.from_dict(manifest["checkpoint"])
        records = doc["records"]
        listed = [(int(s), str(h)) for s, h in manifest["records"]]
        manifest_sig = _hex(doc["manifest_signature"], "manifest_signature")
    except (KeyError, TypeError, ValueError) as err:
        raise ExcerptError(f"excerpt is missing or mangles a part: {err!r}") from err
    if cp.key_id != key_id or not cp.verify_signature(key):
        raise ChainIntegrityError(cp.seq, "bad_signature", detail=f"checkpoint is not signed by {key_id}")
    try:
        key.verify(manifest_sig, _manifest_message(manifest))
    except InvalidSignature as err:
        raise ChainIntegrityError(0, "bad_signature", detail=f"excerpt manifest is not signed by {key_id}") from err
    expected = dict(listed)
    seen: set[int] = set()
    faults: list[ChainIntegrityError] = []
    for item in records:
        try:
            seq = int(item["seq"])
            prev = _hex(item["prev_hash"], "prev_hash")
            claimed = _hex(item["entry_hash"], "entry_hash")
            canonical = str(item["canonical"]).encode("utf-8")
            proof = [_hex(p, "proof") for p in item["proof"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ExcerptError(f"excerpt record is malformed: {err!r}") from err
        fault = _check_record(seq, prev, claimed, canonical, proof, cp, expected, seen)
        if fault is not None:
            faults.append(fault)
        seen.add(seq)
    for seq in expected:
        if seq not in seen:
            faults.append(ChainIntegrityError(seq, "missing_record", detail="listed in the signed manifest"))
    if faults:
        raise min(faults, key=lambda f: f.seq)
    return len(records), cp.seq, key_id


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
    if seq > cp.seq:
        return ChainIntegrityError(seq, "truncated", str(cp.seq), str(seq), detail="record after the checkpoint")
    if seq == cp.seq and not hmac.compare_digest(h, cp.head_hash):
        return ChainIntegrityError(seq, "checkpoint_mismatch", cp.head_hash.hex(), h.hex())
    if not verify_inclusion(h, seq - 1, cp.seq, proof, cp.merkle_root, hashed=True):
        return ChainIntegrityError(seq, "bad_proof", detail=f"not included in the tree of checkpoint {cp.seq}")
    return None


def verify_excerpt(path: str | os.PathLike[str], public_key_pem: str | bytes) -> ExcerptReport:
    """Check an excerpt with only the public key; integrity faults are reported, not raised.

    Raises
    ------
    ExcerptError
        If the file is not a readable excerpt.
    KeyFileError
        If ``public_key_pem`` is not an Ed25519 public key.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExcerptError(f"cannot read excerpt {str(path)!r}: {err}") from err
    if not isinstance(doc, dict):
        raise ExcerptError(f"excerpt {str(path)!r} is not a JSON object")
    fingerprint_claim = str(doc.get("public_key_fingerprint", ""))
    try:
        n, cp_seq, key_id = _check_excerpt(doc, public_key_pem)
    except ChainIntegrityError as err:
        return ExcerptReport(False, len(doc.get("records") or []), 0, fingerprint_claim, err.to_dict())
    return ExcerptReport(True, n, cp_seq, key_id)
