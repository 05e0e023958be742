"""Human review of matches: the two-person rule (EU AI Act Art. 14(5)).

A candidate of a ``search`` (or the pair of a ``verify``) whose outcome is ``ok``
can be reviewed. A review is itself a record of the log (action ``review``,
pointing at the query by ``target_seq`` and at the candidate by
``target_face_id``); the status of a candidate is read from those records:

* ``rejected`` if **any** eligible reviewer rejected it (a reject is a veto and
  is final, whatever confirmations came before or after);
* ``confirmed`` if at least **two different** eligible reviewers confirmed it
  and nobody rejected it;
* ``pending`` otherwise.

Eligible means: not the operator of the query. The operator's own review is
refused, and the refusal is recorded as a ``refused`` record. The same reviewer
confirming twice counts once.

:class:`~audit.trail.log.AuditLog` offers :func:`review` and :func:`match_status`
as methods; this module holds the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit.errors import MissingContext, RecordNotFound, ReviewRefused
from audit.trail.records import DECISIONS
from audit.trail.store import AuditFilter

if TYPE_CHECKING:
    from audit.trail.log import AuditEntry, AuditLog

__all__ = ["REVIEWABLE_ACTIONS", "CandidateStatus", "MatchStatus", "match_status", "review"]

#: Actions whose ``ok`` results can be reviewed.
REVIEWABLE_ACTIONS = ("search", "verify")


@dataclass(frozen=True)
class CandidateStatus:
    """Review status of one candidate (``face_id`` None: the pair of a ``verify``)."""

    face_id: str | None
    subject_id: str | None
    rank: int
    status: str
    """``confirmed``, ``pending`` or ``rejected``."""
    confirmations: tuple[str, ...]
    """Distinct eligible reviewers who confirmed, sorted."""
    rejections: tuple[str, ...]
    """Distinct eligible reviewers who rejected, sorted."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "face_id": self.face_id,
            "subject_id": self.subject_id,
            "rank": self.rank,
            "status": self.status,
            "confirmations": list(self.confirmations),
            "rejections": list(self.rejections),
        }


@dataclass(frozen=True)
class MatchStatus:
    """Review status of every candidate of one query."""

    seq: int
    operator: str | None
    action: str
    candidates: tuple[CandidateStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "operator": self.operator,
            "action": self.action,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def _refuse(log: AuditLog, code: str, reason: str, fields: Mapping[str, Any]) -> AuditEntry:
    return log.append({**fields, "action": "refused", "outcome": code,
                       "details": {"attempted": "review", "reason": reason}})


def review(
    log: AuditLog, seq: int, reviewer: str, decision: str, note: str | None = None, face_id: str | None = None
) -> AuditEntry:
    """Record a human review of query ``seq`` (one candidate, named by ``face_id``).

    ``face_id`` may be omitted when the query has exactly one candidate (or
    is a ``verify``). Refusals are recorded before they are raised.

    Raises
    ------
    ValueError
        If ``decision`` is not ``confirm`` or ``reject``.
    MissingContext
        If ``reviewer`` is empty.
    RecordNotFound
        If there is no record ``seq``.
    ReviewRefused
        If the record is not a reviewable match, the candidate is unknown or
        ambiguous, or the reviewer is the query's operator.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be 'confirm' or 'reject', got {decision!r}")
    base: dict[str, Any] = {"operator": reviewer or None, "purpose": "human review", "target_seq": seq,
                            "target_face_id": face_id, "reviewer": reviewer or None, "decision": decision,
                            "note": note}
    if not reviewer or not reviewer.strip():
        msg = f"a review of record {seq} needs a reviewer name"
        _refuse(log, MissingContext.code, msg, base)
        raise MissingContext(msg)
    try:
        target = log.get(seq).record
    except RecordNotFound as err:
        _refuse(log, RecordNotFound.code, str(err), base)
        raise
    base["case_ref"] = target.case_ref

    def refuse(msg: str) -> ReviewRefused:
        _refuse(log, ReviewRefused.code, msg, base)
        return ReviewRefused(msg)

    if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
        raise refuse(f"record {seq} is a {target.action} with outcome {target.outcome!r}; "
                     "only search and verify results with outcome 'ok' can be reviewed")
    if target.action == "search":
        faces = [c.face_id for c in target.candidates]
        if face_id is None:
            if len(faces) != 1:
                raise refuse(f"record {seq} has {len(faces)} candidates; name one with face_id")
            face_id = faces[0]
            base["target_face_id"] = face_id
        elif face_id not in faces:
            raise refuse(f"record {seq} has no candidate with face_id {face_id!r}")
    elif face_id is not None:
        raise refuse(f"record {seq} is a verify: review the pair without a face_id")
    if target.operator is not None and reviewer == target.operator:
        raise refuse(f"{reviewer!r} ran query {seq} and cannot review it (two-person rule)")
    return log.append({**base, "action": "review", "outcome": "ok"})


def match_status(log: AuditLog, seq: int) -> MatchStatus:
    """Return the review status (confirmed / pending / rejected) of each candidate of query ``seq``.

    Raises
    ------
    RecordNotFound
        If there is no record ``seq``.
    """
    target = log.get(seq).record
    if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
        return MatchStatus(seq, target.operator, target.action, ())
    reviews = [
        e.record
        for e in log.list(AuditFilter(action="review", target_seq=seq, after_seq=seq))
        if e.record.target_seq == seq and e.record.action == "review"
    ]
    keys: Sequence[tuple[str | None, str | None, int]]
    if target.action == "search":
        keys = [(c.face_id, c.subject_id, c.rank) for c in target.candidates]
    else:
        keys = [(None, None, 1)]
    out = []
    for face_id, subject_id, rank in keys:
        confirms: set[str] = set()
        rejects: set[str] = set()
        for r in reviews:
            if r.target_face_id != face_id or r.reviewer is None or r.reviewer == target.operator:
                continue
            (confirms if r.decision == "confirm" else rejects).add(r.reviewer)
        status = "rejected" if rejects else ("confirmed" if len(confirms) >= 2 else "pending")
        out.append(CandidateStatus(face_id, subject_id, rank, status, tuple(sorted(confirms)),
                                   tuple(sorted(rejects))))
    return MatchStatus(seq, target.operator, target.action, tuple(out))
