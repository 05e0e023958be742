"""The audit trail: who searched whom, in an append-only, hash-chained, signed log.

Read it bottom-up; each module imports only the ones above it:

- ``records``: :class:`AuditRecord` and its canonical encoding (fixed decimals, no
  floats), the record's own ``Candidate``/``GalleryRef`` wire types.
- ``convert``: the one conversion from the engine's result types
  (:mod:`core.results`) to record fields.
- ``chain``: pure RFC 6962 over bytes: the entry-hash formula, the Merkle tree,
  inclusion proofs, the one :class:`~audit.trail.chain.Checkpoint` type, and the
  one verifier (:func:`~audit.trail.chain.verify_chain`).
- ``keys``: the Ed25519 signing key and the pseudonymisation key files.
- ``store``: the trail's only SQL (two append-only tables).
- ``log``: :class:`AuditLog`, the API: append, read, checkpoint, verify.
- ``review``: the two-person rule over review records (``AuditLog.review`` /
  ``AuditLog.match_status`` delegate to it).
- ``export``: plain CSV / JSON Lines / Parquet exports, optionally pseudonymised.
- ``excerpt``: verifiable excerpts (records, a signed checkpoint and inclusion
  proofs) a third party checks with only the public key.

Errors are :class:`audit.errors.AuditError` subclasses.
"""

from audit.trail.chain import VerifyReport
from audit.trail.excerpt import ExcerptReport, verify_excerpt, write_excerpt
from audit.trail.export import ExportSummary, export_records, load_pseudonym_key
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.records import AuditRecord
from audit.trail.review import CandidateStatus, MatchStatus
from audit.trail.store import AuditFilter

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
