"""Errors of the audit package: the trail, the session gate, reviews, key files.

Every failure the audit package raises on purpose is an :class:`AuditError`. Like
:mod:`core.errors`, each class has a short, stable ``code`` used in JSON output
and in the ``outcome`` of audit records. Domain failures deliberately do not
subclass :class:`ValueError`; ``ValueError`` stays for bad arguments.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "ChainIntegrityError",
    "ExcerptError",
    "MissingContext",
    "ReviewRefused",
    "RecordNotFound",
    "KeyFileError",
    "SeqTaken",
]


class AuditError(Exception):
    """Base class of every error the audit trail raises on purpose."""

    code = "audit_error"


class ChainIntegrityError(AuditError):
    """The log (or an excerpt of it) fails verification.

    Parameters
    ----------
    seq
        The first sequence number at which the log departs from a valid chain
        (for checkpoint faults: the checkpoint's sequence number).
    kind
        What is wrong. In the log: ``hash_mismatch``, ``prev_mismatch``, ``seq_gap``,
        ``duplicate_seq``, ``reordered``, ``truncated``, ``bad_record``; in its
        checkpoints: ``bad_signature``, ``checkpoint_mismatch``, ``checkpoint_chain``;
        in an excerpt also ``bad_proof``, ``missing_record``, ``unexpected_record``.
    expected, found
        What verification expected and what it found (hex digests, numbers).
    """

    code = "chain_integrity"

    def __init__(self, seq: int, kind: str, expected: str = "", found: str = "", detail: str = "") -> None:
        self.seq = seq
        self.kind = kind
        self.expected = expected
        self.found = found
        self.detail = detail
        message = f"audit log fails verification at seq {seq}: {kind}"
        if expected or found:
            message += f" (expected {expected or '-'}, found {found or '-'})"
        if detail:
            message += f"; {detail}"
        super().__init__(message)

    def to_dict(self) -> dict[str, object]:
        """Return the fault as a JSON-ready dict."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "expected": self.expected,
            "found": self.found,
            "detail": self.detail,
        }


class ExcerptError(AuditError):
    """An excerpt file cannot be read (not JSON, wrong format version, missing parts)."""

    code = "bad_excerpt"


class MissingContext(AuditError):
    """An audited action was attempted without an operator or a purpose; the refusal is recorded."""

    code = "missing_context"


class ReviewRefused(AuditError):
    """A review cannot be accepted (the operator reviewing their own query, no such candidate, ...)."""

    code = "review_refused"


class RecordNotFound(AuditError):
    """No audit record has that sequence number."""

    code = "record_not_found"


class KeyFileError(AuditError):
    """The signing or pseudonymisation key file cannot be created, read or parsed."""

    code = "key_file_error"


class SeqTaken(AuditError):
    """The sequence number is already taken (another writer appended first); re-read the head and retry."""

    code = "seq_taken"
