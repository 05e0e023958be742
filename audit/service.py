"""The audited front door: every engine action runs inside an :class:`AuditContext` and leaves a record.

:class:`AuditedEngine` wraps the recognition engine and the gallery store. Each
method

1. checks the context (no operator or no purpose: a ``refused`` record is
   appended and :class:`~audit.errors.MissingContext` raised);
2. times the engine call;
3. appends the record (outcome ``ok``, ``no_match`` or the error's ``code``)
   **before** returning the result or re-raising the error, so a result the
   caller saw always has its record.

Every method returns an :class:`Audited` pair ``(result, entry)``; ``.seq`` is
the record's sequence number. The service records; it does not compute.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from audit.errors import MissingContext
from audit.log import AuditEntry, AuditLog
from audit.records import utc_now_iso
from core.errors import RecognitionError
from core.image import sha256_file

__all__ = ["Audited", "AuditContext", "AuditedEngine"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AuditContext:
    """Who runs an action, why, and for which case."""

    operator: str | None
    """The person accountable for the action."""
    purpose: str | None
    """Why the action runs."""
    case_ref: str | None = None
    """Case or file reference."""
    legal_basis: str | None = None
    """Legal basis (optional)."""

    @classmethod
    def from_env(
        cls,
        operator: str | None = None,
        purpose: str | None = None,
        case_ref: str | None = None,
        legal_basis: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AuditContext:
        """Fill missing values from ``FACETRAIL_OPERATOR``, ``FACETRAIL_PURPOSE``, ``FACETRAIL_CASE``, ``FACETRAIL_LEGAL_BASIS``."""
        env = os.environ if environ is None else environ
        return cls(
            operator or env.get("FACETRAIL_OPERATOR") or None,
            purpose or env.get("FACETRAIL_PURPOSE") or None,
            case_ref or env.get("FACETRAIL_CASE") or None,
            legal_basis or env.get("FACETRAIL_LEGAL_BASIS") or None,
        )

    def missing(self) -> list[str]:
        """Return the names of required fields that are empty."""
        return [n for n in ("operator", "purpose") if not (getattr(self, n) or "").strip()]

    def fields(self) -> dict[str, Any]:
        """Return the record fields of the context."""
        return {
            "operator": self.operator,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "legal_basis": self.legal_basis,
        }


@dataclass(frozen=True)
class Audited(Generic[T]):
    """A result together with the audit record committed for it."""

    result: T
    """What the engine returned."""
    entry: AuditEntry
    """The committed record."""

    @property
    def seq(self) -> int:
        """Sequence number of the record."""
        return self.entry.seq


def _digest(source: Any) -> str | None:
    """Best-effort SHA-256 of a probe that failed before the engine could identify it."""
    if isinstance(source, (bytes, bytearray)):
        return hashlib.sha256(source).hexdigest()
    if isinstance(source, (str, os.PathLike)):
        try:
            return sha256_file(source) if Path(source).is_file() else None
        except OSError:
            return None
    return None


def _config(engine: Any) -> dict[str, Any] | None:
    config = getattr(engine, "config", None)
    return None if config is None else config.to_dict()


class AuditedEngine:
    """An engine whose every action is recorded in an :class:`AuditLog`.

    Parameters
    ----------
    engine
        The recognition engine (``config``, ``verify``, ``search``).
    galleries
        The gallery store (``load``, ``info``, ``enroll``, ``delete_subject``, ``delete_face``).
    log
        The audit log.
    context
        Operator, purpose and case of every action run through this object.
    """

    def __init__(self, engine: Any, galleries: Any, log: AuditLog, context: AuditContext) -> None:
        self.engine = engine
        self.galleries = galleries
        self.log = log
        self.context = context

    # -- plumbing -------------------------------------------------------------------------------

    def check_context(self, action: str, extra: Mapping[str, Any] | None = None) -> None:
        """Refuse ``action`` (recording the refusal) unless the context names an operator and a purpose.

        Raises
        ------
        MissingContext
            If the operator or the purpose is missing.
        """
        missing = self.context.missing()
        if missing:
            reason = f"{action} refused: no {' and no '.join(missing)} given"
            self.log.append({
                **self.context.fields(),
                "action": "refused",
                "outcome": MissingContext.code,
                "details": {"attempted": action, "reason": reason, **(extra or {})},
            })
            raise MissingContext(reason + " (pass --operator/--purpose or set FACETRAIL_OPERATOR/FACETRAIL_PURPOSE)")

    def _run(
        self,
        action: str,
        call: Callable[[], T],
        describe: Callable[[T], dict[str, Any]],
        on_error: Callable[[], dict[str, Any]],
    ) -> Audited[T]:
        """Time ``call``, record success (``describe(result)``) or failure (``on_error()``), return or re-raise."""
        started = utc_now_iso()
        t0 = time.perf_counter()
        try:
            result = call()
        except Exception as err:
            latency = (time.perf_counter() - t0) * 1000.0
            code = err.code if isinstance(err, RecognitionError) else "internal_error"
            fields = on_error()
            fields["details"] = {**fields.get("details", {}), "error": f"{type(err).__name__}: {err}"}
            self.log.append({
                **self.context.fields(),
                "model_config": _config(self.engine),
                **fields,
                "action": action,
                "outcome": code,
                "started_at": started,
                "ended_at": utc_now_iso(),
                "latency_ms": latency,
            })
            raise
        latency = (time.perf_counter() - t0) * 1000.0
        fields = describe(result)
        entry = self.log.append({
            **self.context.fields(),
            **fields,
            "action": action,
            "started_at": started,
            "ended_at": utc_now_iso(),
            "latency_ms": latency,
        })
        return Audited(result, entry)

    def _gallery_ref(self, name: str) -> dict[str, Any] | None:
        try:
            info = self.galleries.info(name)
        except RecognitionError:
            return None
        return {"name": info.name, "fingerprint": info.fingerprint, "size": info.size}

    # -- queries --------------------------------------------------------------------------------

    def verify(self, a: Any, b: Any, *, threshold: float | None = None) -> Audited[Any]:
        """Compare two images (1:1) and record it; outcome ``ok`` when verified, else ``no_match``.

        Raises
        ------
        MissingContext
            No operator or purpose (a ``refused`` record was appended).
        RecognitionError
            Whatever the engine raised (recorded with its ``code``).
        """
        self.check_context("verify")

        def describe(r: Any) -> dict[str, Any]:
            return {
                "outcome": "ok" if r.verified else "no_match",
                "model_config": r.config.to_dict(),
                "probe_sha256": [r.a.image_sha256, r.b.image_sha256],
                "faces_found": r.a.faces_detected + r.b.faces_detected,
                "details": {
                    "verified": bool(r.verified),
                    "distance": r.distance,
                    "similarity": r.similarity,
                    "threshold": r.threshold,
                    "faces_detected": [r.a.faces_detected, r.b.faces_detected],
                },
            }

        def on_error() -> dict[str, Any]:
            digests = [_digest(a), _digest(b)]
            return {"probe_sha256": None if None in digests else digests,
                    "details": {"threshold_requested": threshold}}

        return self._run("verify", lambda: self.engine.verify(a, b, threshold=threshold), describe, on_error)

    def search(
        self, gallery_name: str, probe: Any, *, top_k: int = 10, threshold: float | None = None
    ) -> Audited[Any]:
        """Search a gallery (1:N) and record it; outcome ``ok`` with candidates, else ``no_match``.

        Raises
        ------
        MissingContext
            No operator or purpose (a ``refused`` record was appended).
        RecognitionError
            Whatever the engine or gallery store raised (recorded with its ``code``).
        """
        self.check_context("search", {"gallery_name": gallery_name})

        def call() -> Any:
            loaded = self.galleries.load(gallery_name)
            return self.engine.search(loaded, probe, top_k=top_k, threshold=threshold)

        def describe(r: Any) -> dict[str, Any]:
            return {
                "outcome": "ok" if r.candidates else "no_match",
                "gallery": r.gallery,
                "model_config": r.config.to_dict(),
                "probe_sha256": [r.image_sha256],
                "faces_found": r.faces_detected,
                "candidates": list(r.candidates),
                "details": {"top_k": top_k, "threshold": r.threshold},
            }

        def on_error() -> dict[str, Any]:
            digest = _digest(probe)
            return {"gallery": self._gallery_ref(gallery_name), "probe_sha256": None if digest is None else [digest],
                    "details": {"gallery_name": gallery_name, "top_k": top_k, "threshold_requested": threshold}}

        return self._run("search", call, describe, on_error)

    # -- changes --------------------------------------------------------------------------------

    def enroll(self, gallery_name: str, items: Sequence[Any]) -> Audited[Any]:
        """Enrol faces (``core.gallery.EnrollItem``) into a gallery and record it.

        Raises
        ------
        MissingContext
            No operator or purpose.
        RecognitionError
            Whatever the gallery store raised (recorded with its ``code``).
        """
        self.check_context("enroll", {"gallery_name": gallery_name})
        digests = sorted({i.embedding.image_sha256 for i in items})
        subjects = sorted({str(i.subject_id) for i in items})

        def describe(r: Any) -> dict[str, Any]:
            new, existing = r
            return {
                "outcome": "ok",
                "gallery": self._gallery_ref(gallery_name),
                "probe_sha256": digests or None,
                "details": {"subject_ids": subjects, "new_face_ids": list(new),
                            "existing_face_ids": list(existing)},
            }

        return self._run(
            "enroll",
            lambda: self.galleries.enroll(gallery_name, items),
            describe,
            lambda: {"gallery": self._gallery_ref(gallery_name), "probe_sha256": digests or None,
                     "details": {"gallery_name": gallery_name, "subject_ids": subjects}},
        )

    def _delete(self, gallery_name: str, what: str, value: str) -> Audited[Any]:
        self.check_context("delete", {"gallery_name": gallery_name, what: value})
        method = self.galleries.delete_subject if what == "subject_id" else self.galleries.delete_face

        def describe(r: Any) -> dict[str, Any]:
            return {
                "outcome": "ok",
                "gallery": self._gallery_ref(gallery_name),
                "details": {what: value, "deleted_face_ids": list(r)},
            }

        return self._run(
            "delete",
            lambda: method(gallery_name, value),
            describe,
            lambda: {"gallery": self._gallery_ref(gallery_name),
                     "details": {"gallery_name": gallery_name, what: value}},
        )

    def delete_subject(self, gallery_name: str, subject_id: str) -> Audited[Any]:
        """Erase every face of a subject and record it (the record keeps ids, never images)."""
        return self._delete(gallery_name, "subject_id", subject_id)

    def delete_face(self, gallery_name: str, face_id: str) -> Audited[Any]:
        """Erase one face and record it."""
        return self._delete(gallery_name, "face_id", face_id)

    # -- records of other actions -----------------------------------------------------------------

    def record_export(self, details: Mapping[str, Any], outcome: str = "ok") -> AuditEntry:
        """Record an export (format, path, filters, record count, file SHA-256, ...).

        Raises
        ------
        MissingContext
            No operator or purpose.
        """
        self.check_context("export", dict(details))
        return self.log.append({**self.context.fields(), "action": "export", "outcome": outcome,
                                "details": dict(details)})

    def record_evaluation(
        self, details: Mapping[str, Any], model_config: Mapping[str, Any] | None = None, outcome: str = "ok"
    ) -> AuditEntry:
        """Record an evaluation run (dataset, metrics summary, ...).

        Raises
        ------
        MissingContext
            No operator or purpose.
        """
        self.check_context("evaluate", dict(details))
        return self.log.append({
            **self.context.fields(),
            "action": "evaluate",
            "outcome": outcome,
            "model_config": None if model_config is None else dict(model_config),
            "details": dict(details),
        })
