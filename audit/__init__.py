"""facetrail's audit trail and measurement of error rates.

- The trail: :class:`AuditLog` (append-only, hash-chained, Ed25519-signed
  checkpoints over RFC 6962 Merkle trees), :class:`AuditedEngine` (the audited
  front door to the engine), exports and verifiable excerpts.
- The measurement: datasets (:func:`load_manifest`, :func:`load_lfw`),
  NIST-style per-group FMR/FNMR with subject-bootstrap intervals
  (:func:`evaluate_dataset`, :class:`EvaluationReport`), calibration
  (:func:`calibrate`) and stored evaluation runs (:class:`EvaluationStore`).

``audit`` never imports streamlit.
"""

from audit.chain import VerifyReport
from audit.datasets import Dataset, ValidationReport, load_lfw, load_manifest
from audit.errors import (
    AuditError,
    ChainIntegrityError,
    ExcerptError,
    KeyFileError,
    MissingContext,
    RecordNotFound,
    ReviewRefused,
    StoreClosed,
)
from audit.eval_store import EvaluationStore
from audit.evaluate import (
    Calibration,
    EmbeddedDataset,
    EvaluationConfig,
    EvaluationReport,
    FalseCandidateChance,
    GroupFrame,
    ThresholdSpec,
    calibrate,
    embed_dataset,
    evaluate_dataset,
    evaluate_embedded,
    evaluate_embeddings,
    parse_threshold,
    ten_fold_accuracy,
)
from audit.export import (
    ExcerptReport,
    ExportSummary,
    export_records,
    load_pseudonym_key,
    verify_excerpt,
    write_excerpt,
)
from audit.identification import identification_rates
from audit.log import AuditEntry, AuditFilter, AuditLog, CandidateStatus, MatchStatus
from audit.records import AuditRecord
from audit.service import AuditContext, Audited, AuditedEngine

__all__ = [
    "AuditContext",
    "AuditEntry",
    "AuditError",
    "AuditFilter",
    "AuditLog",
    "AuditRecord",
    "Audited",
    "AuditedEngine",
    "Calibration",
    "CandidateStatus",
    "ChainIntegrityError",
    "Dataset",
    "EmbeddedDataset",
    "EvaluationConfig",
    "EvaluationReport",
    "EvaluationStore",
    "ExcerptError",
    "ExcerptReport",
    "ExportSummary",
    "FalseCandidateChance",
    "GroupFrame",
    "KeyFileError",
    "MatchStatus",
    "MissingContext",
    "RecordNotFound",
    "ReviewRefused",
    "StoreClosed",
    "ThresholdSpec",
    "ValidationReport",
    "VerifyReport",
    "calibrate",
    "embed_dataset",
    "evaluate_dataset",
    "evaluate_embedded",
    "evaluate_embeddings",
    "export_records",
    "identification_rates",
    "load_lfw",
    "load_manifest",
    "load_pseudonym_key",
    "parse_threshold",
    "ten_fold_accuracy",
    "verify_excerpt",
    "write_excerpt",
]
