"""The audit trail: who searched whom, in an append-only, hash-chained, signed log.

Read it bottom-up; each module imports only the ones above it:

- ``records``: :class:`AuditRecord` and its canonical encoding (fixed decimals, no
  floats), the record's own ``Candidate``/``GalleryRef`` wire types.
- ``convert``: the one conversion from the engine's result types
  (:mod:`core.results`) to record fields.
- ``chain``: pure RFC 6962 over bytes: the entry-hash formula, the Merkle tree,
  inclusion and consistency proofs, and the chain walk
  (:func:`~audit.trail.chain.verify_chain`); its ``Checkpoint`` is the format of
  schema versions 1-3, read no more.
- ``notes``: C2SP signed notes: the checkpoint every record is stored with, its
  Ed25519 signature (the log's origin as key name), witness cosignatures, verifier keys.
- ``keys``: the Ed25519 signing key and the pseudonymisation key files (outside the database).
- ``store``: the trail's only SQL (append-only tables).
- ``log``: :class:`AuditLog`, the API: append (each record signed), read, checkpoint,
  consistency proofs, key rotation.
- ``verify``: the one verifier of the stored log: names the first record that differs
  from what was signed, and the kind of fault.
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
from audit.trail.notes import Checkpoint, NoteKey, parse_checkpoint, parse_vkey, verify_checkpoint
from audit.trail.records import AuditRecord
from audit.trail.review import CandidateStatus, MatchStatus
from audit.trail.store import AuditFilter

__all__ = [
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "NoteKey",
    "CandidateStatus",
    "ExcerptReport",
    "ExportSummary",
    "MatchStatus",
    "VerifyReport",
    "export_records",
    "load_pseudonym_key",
    "parse_checkpoint",
    "parse_vkey",
    "verify_checkpoint",
    "verify_excerpt",
    "write_excerpt",
]
