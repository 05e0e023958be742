"""The one gate every audited action passes: who acts (authenticated), why, and the record it leaves.

An :class:`AuditSession` binds an authenticated :class:`~audit.accounts.Actor` and an
:class:`AuditContext` (purpose, case, legal basis) to an
:class:`~audit.trail.log.AuditLog`. Every interface (CLI, dashboard, Python API)
runs its actions through one:

1. :meth:`AuditSession.check` refuses an action, appending a ``refused`` record before
   raising, unless: an actor is signed in and its credential is still live
   (:class:`~audit.accounts.NotAuthenticated`; checked against the database at every
   action, so a revoked token or a disabled account stops at once), any operator the
   caller named is that actor (:class:`~audit.accounts.OperatorMismatch`), the actor's
   role has the action's permission (:data:`~audit.accounts.ACTION_PERMISSIONS`;
   :class:`~audit.accounts.Forbidden`), and the context names a purpose (and a case,
   where required; :class:`~audit.errors.MissingContext`);
2. :meth:`AuditSession.run` times the work and appends exactly one record for it,
   ``ok``/``no_match`` from the result or the error's ``code``, **before** the result
   is returned or the error re-raised, so a result anyone saw has its record. With
   ``atomic`` (a unit of work such as :meth:`AuditLog.transaction`) the work and its
   record commit in one transaction: a change without its record (or a record
   without its change) is never committed;
3. :meth:`AuditSession.record` appends the record of an action whose work was done
   elsewhere, with its real start time;
4. :meth:`AuditSession.review` records the actor's review of a match under the
   two-person rule (:mod:`audit.trail.review`; a non-blind review: the reviewer chose the
   query and saw its scores). Blind review with fillers passes the same gate through
   :mod:`audit.blind` (one item at a time, no score, rank or earlier verdict).

Every record's ``operator`` is the actor's account name (never free text) and its
``details.auth`` says how the actor authenticated (method and credential id).
The session records; it does not compute.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from audit.accounts import (
    PERMISSIONS,
    Actor,
    CredentialStore,
    Forbidden,
    NotAuthenticated,
    OperatorMismatch,
    normalize_name,
    permission_for,
)
from audit.errors import AuditError, MissingContext
from audit.trail import review as _review
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.records import utc_now_iso
from core.errors import RecognitionError

__all__ = ["AuditContext", "AuditSession", "Audited", "SIGN_IN_HINT"]

T = TypeVar("T")
P = TypeVar("P")

#: The gate accepts this process's own check of a credential made at most this long ago (seconds): a
#: burst of actions costs one read; a revocation made elsewhere takes effect within this time.
RECHECK_SECONDS = 1.0

#: How to sign in from Python (interfaces pass their own hint: the CLI names ``facetrail login``).
SIGN_IN_HINT = "sign in first: Runtime.sign_in(name, password) or Runtime.authenticate(token)"


@dataclass(frozen=True, kw_only=True)
class AuditContext:
    """Why an action runs and for which case (who runs it is the session's authenticated actor)."""

    purpose: str | None = None
    """Why the action runs."""
    case_ref: str | None = None
    """Case or file reference."""
    legal_basis: str | None = None
    """Legal basis (optional)."""
    case_required: bool = False
    """Whether this interface requires a case reference (the dashboard does): a missing one is refused."""
    claimed_operator: str | None = None
    """An operator name the caller gave (``--operator``, ``$FACETRAIL_OPERATOR``): it must be the signed-in
    account, or the action is refused. It is never recorded as the operator."""

    def missing(self) -> list[str]:
        """Return the names of required fields that are empty."""
        required = ("purpose", "case_ref") if self.case_required else ("purpose",)
        return [n for n in required if not (getattr(self, n) or "").strip()]

    def fields(self) -> dict[str, Any]:
        """Return the record fields of the context."""
        return {"purpose": self.purpose, "case_ref": self.case_ref, "legal_basis": self.legal_basis}


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
    """Return the ``outcome`` recorded for a failed action: the error's stable ``code``."""
    if isinstance(err, RecognitionError | AuditError):
        return err.code
    return str(getattr(err, "code", "internal_error"))


class AuditSession:
    """One authenticated actor's audited actions on one log.

    Parameters
    ----------
    log
        The audit log every record goes to.
    context
        Purpose, case and legal basis of every action run through this session.
    actor
        Who acts (``None``: nobody signed in; every :meth:`check` is then refused and recorded).
    credentials
        Where the actor's credential is checked at every :meth:`check` (default: the log's database).
    unauthenticated
        Why there is no actor, when known (an expired saved session, say): said in the refusal.
    hint
        How to sign in on this interface (appended to a :class:`~audit.accounts.NotAuthenticated` message).
    fault_hook
        Called with a named point of :meth:`run` (``after_change``, ``after_record``, ``after_commit``):
        the seam crash tests kill the process at. ``None`` in normal use.
    """

    def __init__(
        self, log: AuditLog, context: AuditContext, actor: Actor | None = None, *,
        credentials: CredentialStore | None = None, unauthenticated: str | None = None, hint: str = SIGN_IN_HINT,
        fault_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.log = log
        self.context = context
        self.actor = actor
        self.credentials = credentials or CredentialStore(log.db)
        self.unauthenticated = unauthenticated
        self.hint = hint
        self.fault_hook = fault_hook

    def with_context(self, context: AuditContext) -> AuditSession:
        """Return the same actor (and credential checks) acting for another context."""
        return AuditSession(self.log, context, self.actor, credentials=self.credentials,
                            unauthenticated=self.unauthenticated, hint=self.hint, fault_hook=self.fault_hook)

    def _actor_fields(self) -> dict[str, Any]:
        return {"operator": None if self.actor is None else self.actor.name}

    def refuse(self, action: str, code: str, reason: str, details: Mapping[str, Any] | None = None,
               **fields: Any) -> AuditEntry:
        """Append the ``refused`` record of an attempted ``action`` (``details.attempted``, ``details.reason``)."""
        extra: dict[str, Any] = {}
        if self.actor is not None:
            extra["auth"] = self.actor.auth_fields()
        if self.context.claimed_operator is not None:
            extra["claimed_operator"] = self.context.claimed_operator
        return self.log.append({
            **self.context.fields(),
            **fields,
            **self._actor_fields(),
            "action": "refused",
            "outcome": code,
            "details": {**(details or {}), **extra, "attempted": action, "reason": reason},
        })

    def _authenticated(self, action: str, details: Mapping[str, Any] | None) -> Actor:
        """Return the actor, its credential checked now; refuse (recorded) if there is none or it is no longer live."""
        actor, reason = self.actor, self.unauthenticated or "not signed in"
        if actor is not None:
            try:
                fresh = self.credentials.resolve(actor.token, max_age=RECHECK_SECONDS)
            except NotAuthenticated as err:
                reason = str(err)
                self.actor = None
                self.refuse(action, NotAuthenticated.code, reason,
                            {**(details or {}), "credential": actor.credential_id, "account": actor.name})
                raise NotAuthenticated(f"{reason}: {self.hint}") from err
            if fresh.name == actor.name:
                self.actor = fresh
                return fresh
            reason = "the credential does not belong to this account"
        self.actor = None
        self.refuse(action, NotAuthenticated.code, reason, details)
        raise NotAuthenticated(f"{reason}: {self.hint}")

    def check(self, action: str, details: Mapping[str, Any] | None = None, *, permission: str | None = None) -> Actor:
        """Refuse ``action`` (recording the refusal) unless an authenticated actor may run it with this context.

        Parameters
        ----------
        action
            The audited action (a key of :data:`audit.accounts.ACTION_PERMISSIONS`).
        details
            Facts about the attempt, recorded with a refusal.
        permission
            Check this permission instead of the action's own (:mod:`audit.access` uses it for
            changing another account's password).

        Returns
        -------
        Actor
            The actor, with the role its account has now.

        Raises
        ------
        NotAuthenticated
            Nobody signed in, or the session or token is no longer live.
        OperatorMismatch
            The context names another operator than the signed-in account.
        Forbidden
            The actor's role may not run the action.
        MissingContext
            No purpose (or no case reference where one is required).
        """
        actor = self._authenticated(action, details)
        claim = self.context.claimed_operator
        if claim is not None and normalize_name(claim) != actor.name:
            reason = (f"{action} refused: {claim!r} was given as the operator or reviewer, but the signed-in "
                      f"account is {actor.name!r}; sign in as {normalize_name(claim)!r}, or leave the name out")
            self.refuse(action, OperatorMismatch.code, reason, details)
            raise OperatorMismatch(reason)
        needed = permission if permission is not None else permission_for(action)
        if needed is not None and not actor.can(needed):
            reason = (f"{action} refused: {actor.name}'s role ({actor.role}) lacks the permission {needed!r} "
                      f"(held by: {', '.join(sorted(PERMISSIONS[needed]))})")
            self.refuse(action, Forbidden.code, reason, details)
            raise Forbidden(reason)
        missing = self.context.missing()
        if missing:
            names = [n.replace("case_ref", "case reference") for n in missing]
            reason = f"{action} refused: no {' and no '.join(names)} given"
            self.refuse(action, MissingContext.code, reason, details)
            raise MissingContext(reason + " (pass --purpose/--case or set FACETRAIL_PURPOSE/FACETRAIL_CASE)")
        return actor

    def record(self, action: str, fields: Mapping[str, Any], *, started_at: str | None = None,
               latency_ms: float | None = None) -> AuditEntry:
        """Append the record of ``action`` done elsewhere (``fields`` holds outcome, details, ...).

        The record's ``operator`` is the actor's name whatever ``fields`` says (``None`` only
        for the very first account, created before anyone could sign in).
        """
        now = utc_now_iso()
        details = dict(fields.get("details") or {})
        if self.actor is not None:
            details["auth"] = self.actor.auth_fields()
        return self.log.append({
            **self.context.fields(),
            "outcome": "ok",
            **fields,
            **self._actor_fields(),
            "details": details,
            "action": action,
            "started_at": started_at or now,
            "ended_at": now,
            **({} if latency_ms is None else {"latency_ms": latency_ms}),
        })

    def review(self, seq: int, decision: str, *, note: str | None = None, face_id: str | None = None,
               reason: str | None = None, reverse: bool = False) -> AuditEntry:
        """Record this actor's review of query ``seq`` under the two-person rule (:func:`audit.trail.review.review`).

        Raises
        ------
        ValueError, NotAuthenticated, OperatorMismatch, Forbidden, RecordNotFound, ReviewRefused
            As :func:`audit.trail.review.review` (refusals are recorded first).
        """
        return _review.review(self, seq, decision, note=note, face_id=face_id, reason=reason, reverse=reverse)

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    def run(
        self,
        action: str,
        call: Callable[[], T],
        describe: Callable[[T], dict[str, Any]],
        on_error: Callable[[BaseException], dict[str, Any]],
        *,
        atomic: Callable[[], AbstractContextManager[Any]] | None = None,
        after_commit: Callable[[T], None] | None = None,
    ) -> Audited[T]:
        """Run ``call`` and record it: ``describe(result)`` on success, ``on_error(err)`` on failure.

        The caller must have passed :meth:`check`. Every failure is recorded (with the
        error's ``code``; ``internal_error`` for anything that is not a facetrail error)
        and re-raised unchanged.

        Parameters
        ----------
        atomic
            Opens the unit of work in which ``call`` runs and its record is appended (a gallery
            change, an account change: e.g. ``log.transaction``): both commit, or neither does,
            and a failure is then recorded on its own.
        after_commit
            Called with the result once the transaction committed (a checkpoint that cannot
            run inside it, say).
        """
        return self.run_staged(action, lambda: None, lambda _: call(), describe, on_error, atomic=atomic,
                               after_commit=after_commit)

    def run_staged(
        self,
        action: str,
        prepare: Callable[[], P],
        change: Callable[[P], T],
        describe: Callable[[T], dict[str, Any]],
        on_error: Callable[[BaseException], dict[str, Any]],
        *,
        atomic: Callable[[], AbstractContextManager[Any]] | None = None,
        after_commit: Callable[[T], None] | None = None,
    ) -> Audited[T]:
        """:meth:`run` in two stages: ``prepare()`` (slow work, outside any transaction), then ``change``.

        ``change(prepared)`` and the record commit together (with ``atomic``); the record's
        start time and latency cover both stages, and a failure of either is recorded.
        """
        started = utc_now_iso()
        t0 = time.perf_counter()
        try:
            prepared = prepare()
            with atomic() if atomic is not None else contextlib.nullcontext():
                result = change(prepared)
                fields = describe(result)
                self._fault("after_change")
                entry = self.record(action, fields, started_at=started,
                                    latency_ms=(time.perf_counter() - t0) * 1000.0)
                self._fault("after_record")
        except Exception as err:  # recorded (after any rollback), then re-raised unchanged (never swallowed)
            failed = on_error(err)
            failed["details"] = {**failed.get("details", {}), "error": f"{type(err).__name__}: {err}"}
            self.record(action, {**failed, "outcome": error_code(err)}, started_at=started,
                        latency_ms=(time.perf_counter() - t0) * 1000.0)
            raise
        self._fault("after_commit")
        if after_commit is not None:
            after_commit(result)
        return Audited(result, entry)
