r"""Exports of the audit log: plain tables (CSV, JSON Lines, Parquet) and verifiable excerpts.

Plain exports
-------------
:func:`export_records` writes the records matching an :class:`AuditFilter`, one
row per record (nested fields as JSON text in CSV and Parquet). With
``pseudonym_key`` every subject id (``candidates[].subject_id``,
``details.subject_id`` and ``details.subject_ids``) is replaced by
``"ps_" + HMAC-SHA256(key, subject_id)[:32 hex]``: the same subject gets the same
pseudonym across exports made with the same key, and nobody without the key
can link a pseudonym back. A pseudonymised export changes record content, so
it is a *plain* export: its rows carry the original ``entry_hash`` for
reference, but they cannot be verified against it.

Verifiable excerpts
-------------------
:func:`write_excerpt` writes one JSON document a third party can check with
only the public key (:func:`verify_excerpt`)::

    {"format": "facetrail-audit-excerpt/1",
     "manifest": {"format", "created_at", "filters", "checkpoint": {...signed checkpoint...},
                  "records": [[seq, entry_hash_hex], ...], "key_id"},
     "manifest_signature": hex Ed25519 over b"facetrail.audit.excerpt.v1\n" + canonical JSON of manifest,
     "public_key_fingerprint": "sha256:...",
     "records": [{"seq", "prev_hash", "entry_hash", "canonical" (the exact hashed text), "proof": [hex...]}]}

Each record's entry hash is recomputed from ``prev_hash`` and its canonical
text and proven to be leaf ``seq - 1`` of the Merkle tree whose root the
checkpoint signs (RFC 6962 inclusion proof). The signed manifest lists which
records the excerpt holds, so adding or removing a record is detected too.
Excerpts always carry the original, un-pseudonymised records.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidSignature

from audit.trail.chain import Checkpoint, MerkleFrontier, inclusion_proofs, verify_inclusion
from audit.errors import ChainIntegrityError, ExcerptError
from audit.trail.keys import fingerprint, load_or_create_pseudonym_key, load_public_key_pem
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.records import canonical_bytes, decode_record, utc_now_iso
from audit.trail.store import AuditFilter

__all__ = [
    "EXCERPT_FORMAT",
    "ExportFormat",
    "ExportSummary",
    "ExcerptReport",
    "export_records",
    "load_pseudonym_key",
    "pseudonym",
    "pseudonym_key_path",
    "pseudonymize",
    "verify_excerpt",
    "write_excerpt",
]

_log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "jsonl", "parquet"]
EXCERPT_FORMAT = "facetrail-audit-excerpt/1"
_MANIFEST_DOMAIN = b"facetrail.audit.excerpt.v1\n"

_COLUMNS = (
    "seq", "entry_hash", "prev_hash", "started_at", "ended_at", "action", "outcome", "operator", "purpose",
    "case_ref", "legal_basis", "gallery_name", "gallery_fingerprint", "gallery_size", "model", "threshold",
    "probe_sha256", "faces_found", "candidates", "latency_ms", "target_seq", "target_face_id", "reviewer",
    "decision", "note", "model_config", "details",
)
_INT_COLUMNS = {"seq", "gallery_size", "faces_found", "target_seq"}


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    path: str
    format: str
    records: int
    sha256: str
    """SHA-256 of the written file."""
    pseudonymized: bool
    verifiable: bool
    filters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def pseudonym_key_path(log: AuditLog) -> Path:
    """Return the default pseudonymisation key file: ``<signing key>.pseudonym``."""
    return Path(str(log.key_path) + ".pseudonym")


def pseudonym(subject_id: str, key: bytes) -> str:
    """Return the keyed pseudonym of a subject id."""
    return "ps_" + hmac.new(key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def pseudonymize(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Return a copy of a record dict with every subject id pseudonymised."""
    out = dict(record)
    out["candidates"] = [
        {**c, "subject_id": pseudonym(str(c["subject_id"]), key)} for c in record.get("candidates") or []
    ]
    details = dict(record.get("details") or {})
    if isinstance(details.get("subject_id"), str):
        details["subject_id"] = pseudonym(details["subject_id"], key)
    if isinstance(details.get("subject_ids"), list):
        details["subject_ids"] = [pseudonym(str(s), key) for s in details["subject_ids"]]
    out["details"] = details
    return out


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _flat(entry: AuditEntry, record: dict[str, Any]) -> dict[str, Any]:
    gallery = record.get("gallery") or {}
    config = record.get("model_config") or {}
    return {
        "seq": entry.seq,
        "entry_hash": entry.entry_hash.hex(),
        "prev_hash": entry.prev_hash.hex(),
        "started_at": record["started_at"],
        "ended_at": record["ended_at"],
        "action": record["action"],
        "outcome": record["outcome"],
        "operator": record["operator"],
        "purpose": record["purpose"],
        "case_ref": record["case_ref"],
        "legal_basis": record["legal_basis"],
        "gallery_name": gallery.get("name"),
        "gallery_fingerprint": gallery.get("fingerprint"),
        "gallery_size": gallery.get("size"),
        "model": config.get("model"),
        "threshold": None if config.get("threshold") is None else str(config.get("threshold")),
        "probe_sha256": None if record["probe_sha256"] is None else ";".join(record["probe_sha256"]),
        "faces_found": record["faces_found"],
        "candidates": _json(record["candidates"]),
        "latency_ms": record["latency_ms"],
        "target_seq": record["target_seq"],
        "target_face_id": record["target_face_id"],
        "reviewer": record["reviewer"],
        "decision": record["decision"],
        "note": record["note"],
        "model_config": _json(record["model_config"]),
        "details": _json(record["details"]),
    }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_records(
    log: AuditLog,
    path: str | Path,
    fmt: ExportFormat,
    filters: AuditFilter | None = None,
    pseudonym_key: bytes | None = None,
) -> ExportSummary:
    """Write the records matching ``filters`` to ``path`` as CSV, JSON Lines or Parquet.

    Parameters
    ----------
    pseudonym_key
        HMAC key; when given, subject ids are pseudonymised (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown format.
    """
    if fmt not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}; use csv, jsonl or parquet")
    filters = filters or AuditFilter()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = log.list(filters)

    def record_of(e: AuditEntry) -> dict[str, Any]:
        record = e.record.to_dict()
        return record if pseudonym_key is None else pseudonymize(record, pseudonym_key)

    if fmt == "jsonl":
        with out.open("w", encoding="utf-8") as fh:
            for e in entries:
                row = {"seq": e.seq, "entry_hash": e.entry_hash.hex(), "prev_hash": e.prev_hash.hex(),
                       "record": record_of(e)}
                fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        rows = [_flat(e, record_of(e)) for e in entries]
        if fmt == "csv":
            with out.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)
        else:
            schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.string()) for c in _COLUMNS])
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, out)
    summary = ExportSummary(str(out), fmt, len(entries), _sha256_file(out), pseudonym_key is not None, False,
                            filters.to_dict())
    _log.info("exported %d audit records to %s", len(entries), out)
    return summary


def load_pseudonym_key(log: AuditLog, path: str | Path | None = None) -> bytes:
    """Return the pseudonymisation key (created 0600 beside the signing key on first use).

    Raises
    ------
    KeyFileError
        If the key file cannot be created or read.
    """
    return load_or_create_pseudonym_key(Path(path) if path is not None else pseudonym_key_path(log))


# -- verifiable excerpts ----------------------------------------------------------------------------


def _manifest_message(manifest: dict[str, Any]) -> bytes:
    return _MANIFEST_DOMAIN + canonical_bytes(manifest)


def write_excerpt(log: AuditLog, path: str | Path, filters: AuditFilter | None = None) -> ExportSummary:
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
    frontier = MerkleFrontier()
    for h in hashes:
        frontier.append_hash(h)
    if len(hashes) != cp.seq or frontier.root() != cp.merkle_root:
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
    return ExportSummary(str(out), "excerpt", len(entries), _sha256_file(out), False, True, filters.to_dict())


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
    h = hashlib.sha256(b"\x00" + prev + canonical).digest()
    if not hmac.compare_digest(h, claimed) or not hmac.compare_digest(h.hex(), expected[seq]):
        return ChainIntegrityError(seq, "hash_mismatch", expected[seq], h.hex())
    if seq > cp.seq:
        return ChainIntegrityError(seq, "truncated", str(cp.seq), str(seq), detail="record after the checkpoint")
    if seq == cp.seq and not hmac.compare_digest(h, cp.head_hash):
        return ChainIntegrityError(seq, "checkpoint_mismatch", cp.head_hash.hex(), h.hex())
    if not verify_inclusion(h, seq - 1, cp.seq, proof, cp.merkle_root, hashed=True):
        return ChainIntegrityError(seq, "bad_proof", detail=f"not included in the tree of checkpoint {cp.seq}")
    return None


def verify_excerpt(path: str | Path, public_key_pem: str | bytes) -> ExcerptReport:
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
