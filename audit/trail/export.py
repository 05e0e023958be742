"""Plain exports of the audit log: CSV, JSON Lines, Parquet, optionally pseudonymised.

:func:`export_records` writes the records matching an :class:`AuditFilter`, one
row per record (nested fields as JSON text in CSV and Parquet). With
``pseudonym_key`` every subject id (``candidates[].subject_id``,
``details.subject_id`` and ``details.subject_ids``) is replaced by
``"ps_" + HMAC-SHA256(key, subject_id)[:32 hex]``: the same subject gets the same
pseudonym across exports made with the same key, and nobody without the key
can link a pseudonym back. A pseudonymised export changes record content, so
it is a *plain* export: its rows carry the original ``entry_hash`` for
reference, but they cannot be verified against it. Exports a third party can
verify are excerpts (:mod:`audit.trail.excerpt`).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from audit.outputs import check_out_path
from audit.privacy_csv import safe_rows
from audit.privacy_export import pseudonymize_record
from audit.trail.keys import load_or_create_pseudonym_key
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.store import AuditFilter
from core.image import sha256_file

__all__ = [
    "ExportFormat",
    "ExportSummary",
    "export_records",
    "load_pseudonym_key",
    "pseudonym",
    "pseudonym_key_path",
    "pseudonymize",
]

_log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "jsonl", "parquet"]

_COLUMNS = (
    "seq", "entry_hash", "prev_hash", "started_at", "ended_at", "action", "outcome", "operator", "purpose",
    "case_ref", "legal_basis", "gallery_name", "gallery_fingerprint", "gallery_size", "model", "threshold",
    "probe_sha256", "faces_found", "candidates", "latency_ms", "target_seq", "target_face_id", "reviewer",
    "decision", "note", "model_config", "details",
)
_INT_COLUMNS = {"seq", "gallery_size", "faces_found", "target_seq"}


@dataclass(frozen=True)
class ExportSummary:
    """What an export (or an excerpt, :mod:`audit.trail.excerpt`) wrote."""

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
    """Return a copy of a record dict with every linking identifier pseudonymised (:mod:`audit.privacy_export`)."""
    return pseudonymize_record(record, key)


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


def export_records(
    log: AuditLog,
    path: str | os.PathLike[str],
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
    OutputRefused
        ``path`` is the database, its WAL or a key file.
    """
    if fmt not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}; use csv, jsonl or parquet")
    filters = filters or AuditFilter()
    out = check_out_path(path, log.protected_paths(), force=True)  # the CLI checks for existing files first
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
                writer.writerows(safe_rows(rows))  # formula injection (audit.privacy_csv)
        else:
            schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.string()) for c in _COLUMNS])
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, out)
    summary = ExportSummary(str(out), fmt, len(entries), sha256_file(out), pseudonym_key is not None, False,
                            filters.to_dict())
    _log.info("exported %d audit records to %s", len(entries), out)
    return summary


def load_pseudonym_key(log: AuditLog, path: str | os.PathLike[str] | None = None) -> bytes:
    """Return the pseudonymisation key (created 0600 beside the signing key on first use).

    Raises
    ------
    KeyFileError
        If the key file cannot be created or read.
    """
    return load_or_create_pseudonym_key(Path(path) if path is not None else pseudonym_key_path(log))
