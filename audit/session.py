"""The one gate every audited action passes: who acts, why, and the record it leaves.

An :class:`AuditSession` binds an :class:`AuditContext` (operator, purpose, case,
legal basis) to an :class:`~audit.trail.log.AuditLog`. Every interface (CLI,
dashboard, Python API) runs its actions through one:

1. :meth:`AuditSession.check` refuses an action without an operator or a purpose,
   appending a ``refused`` record before raising :class:`~audit.errors.MissingContext`;
2. :meth:`AuditSession.run` times the work and appends exactly one record for it,
   ``ok``/``no_match`` from the result or the error's ``code``, **before** the
   result is returned or the error re-raised, so a result anyone saw has its record;
3. :meth:`AuditSession.record` appends the record of an action whose work was done
   elsewhere (an export, an evaluation run), with its real start time.

The session records; it does not compute.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from audit.errors import AuditError, MissingContext
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.records import utc_now_iso
from core.errors import RecognitionError

__all__ = ["AuditContext", "AuditSession", "Audited"]

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
    case_required: bool = False
    """Whether this interface requires a case reference (the dashboard does): a missing one is refused."""

    def missing(self) -> list[str]:
        """Return the names of required fields that are empty."""
        required = ("operator", "purpose", "case_ref") if self.case_required else ("operator", "purpose")
        return [n for n in required if not (getattr(self, n) or "").strip()]

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


def error_code(err: BaseException) -> str:
    """The ``outcome`` recorded for a failed action: the error's stable ``code``."""
    if isinstance(err, RecognitionError | AuditError):
        return err.code
    return str(getattr(err, "code", "internal_error"))


class AuditSession:
    """One actor's audited actions on one log.

    Parameters
    ----------
    log
        The audit log every record goes to.
    context
        Operator, purpose, case and legal basis of every action run through this session.
    """

    def __init__(self, log: AuditLog, context: AuditContext) -> None:
        self.log = log
        self.context = context

    def refuse(self, action: str, code: str, reason: str, details: Mapping[str, Any] | None = None,
               **fields: Any) -> AuditEntry:
        """Append the ``refused`` record of an attempted ``action`` (``details.attempted``, ``details.reason``)."""
        return self.log.append({
            **self.context.fields(),
            **fields,
            "action": "refused",
            "outcome": code,
            "details": {**(details or {}), "attempted": action, "reason": reason},
        })

    def check(self, action: str, details: Mapping[str, Any] | None = None) -> None:
        """Refuse ``action`` (recording the refusal) unless the context names an operator and a purpose.

        Raises
        ------
        MissingContext
            If the operator or the purpose is missing.
        """
        missing = self.context.missing()
        if missing:
            names = [n.replace("case_ref", "case reference") for n in missing]
            reason = f"{action} refused: no {' and no '.join(names)} given"
            self.refuse(action, MissingContext.code, reason, details)
            raise MissingContext(reason + " (pass --operator/--purpose or set FACETRAIL_OPERATOR/FACETRAIL_PURPOSE)")

    def record(self, action: str, fields: Mapping[str, Any], *, started_at: str | None = None,
               latency_ms: float | None = None) -> AuditEntry:
        """Append the record of ``action`` done elsewhere (``fields`` holds outcome, details, ...)."""
        now = utc_now_iso()
        return self.log.append({
            **self.context.fields(),
            "outcome": "ok",
            **fields,
            "action": action,
            "started_at": started_at or now,
            "ended_at": now,
            **({} if latency_ms is None else {"latency_ms": latency_ms}),
        })

    def run(
        self,
        action: str,
        call: Callable[[], T],
        describe: Callable[[T], dict[str, Any]],
        on_error: Callable[[BaseException], dict[str, Any]],
    ) -> Audited[T]:
        """Run ``call`` and record it: ``describe(result)`` on success, ``on_error(err)`` on failure.

        The caller must have passed :meth:`check`. Every failure is recorded (with the
        error's ``code``; ``internal_error`` for anything that is not a facetrail error)
        and re-raised unchanged.
        """
        started = utc_now_iso()
        t0 = time.perf_counter()
        try:
            result = call()
        except Exception as err:  # recorded, then re-raised unchanged (never swallowed)
            fields = on_error(err)
            fields["details"] = {**fields.get("details", {}), "error": f"{type(err).__name__}: {err}"}
            self.record(action, {**fields, "outcome": error_code(err)}, started_at=started,
                        latency_ms=(time.perf_counter() - t0) * 1000.0)
            raise
        entry = self.record(action, describe(result), started_at=started,
                            latency_ms=(time.perf_counter() - t0) * 1000.0)
        return Audited(result, entry)
