"""The audit trail: records, their hash chain and signed checkpoints, the store, review, exports.

``records`` (canonical encoding) -> ``chain`` (RFC 6962 Merkle tree, checkpoints, verification)
-> ``store`` (the trail's only SQL) -> ``log`` (append, read, verify, review) ->
``export`` (CSV/JSONL/Parquet and verifiable excerpts). ``keys`` holds the signing and
pseudonym keys; ``convert`` reads the engine's result types into record fields.
"""

from audit.trail.chain import VerifyReport
from audit.trail.export import (
    ExcerptReport,
    ExportSummary,
    export_records,
    load_pseudonym_key,
    verify_excerpt,
    write_excerpt,
)
from audit.trail.log import AuditEntry, AuditFilter, AuditLog, CandidateStatus, MatchStatus
from audit.trail.records import AuditRecord

__all__ = [
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "AuditRecord",
    "CandidateStatus",
    "ExcerptReport",
    "ExportSummary",
    "MatchStatus",
    "VerifyReport",
    "export_records",
    "load_pseudonym_key",
    "verify_excerpt",
    "write_excerpt",
]
