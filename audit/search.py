"""Audit search: the records an auditor asks for, the link that names that question, and the CSV of the answer.

:class:`RecordQuery` is one question to the log (who ran it, against which gallery,
what came back, who reviewed it, when, at which threshold, any text), in the words a
link uses: :meth:`RecordQuery.from_params` reads a page's query parameters (bad values
are a :class:`~core.errors.BadInput` naming the parameter), :meth:`RecordQuery.to_params`
writes them back. The parameter names are the dashboard's link vocabulary (the Overview's
tiles link to the Match log with them):

=============  ==================================================================
``operator``   the account that ran the record
``gallery``    the gallery searched
``action``     ``search``, ``verify``, ``review`` ... (``any``: every action)
``case``       the case reference
``outcome``    ``candidates`` (a query that returned at least one candidate) or
               ``none`` (a query that ran and returned none)
``review``     ``pending``, ``confirmed`` or ``rejected``: a query with at least one
               candidate in that two-person-rule status
``looser``     ``1``: run at a threshold looser than the deployment's policy
               (``policy=within|looser|beyond_limit`` names any status)
``since``      ``YYYY-MM-DD``, UTC, inclusive
``until``      ``YYYY-MM-DD``, UTC, inclusive (the whole day)
``reviewer``   a query this account reviewed, or this account's own review records
``subject``    a record naming this subject id among its candidates
``threshold``  at most this decision threshold (a distance)
``q``          free text, case-insensitive, in the purpose, case, legal basis,
               operator, reviewer, note, gallery, action, outcome or a candidate's
               subject id
=============  ==================================================================

``probe_group`` (``sex=F``) names the searches whose operator stated that probe's group
(:mod:`audit.probe_group`); the Demographic performance page links a group's rates to them.

:func:`find_records` answers a query (the SQL filters of
:class:`~audit.trail.store.AuditFilter` first, then the rest on the decoded records);
:func:`export_view` turns exactly the rows an interface shows into CSV with safe cells
(:mod:`audit.privacy_csv`) and records it as an ``export`` (with the query's parameters,
the records' seqs and the file's SHA-256), so the export history lists it beside the
Exports page's exports (:func:`export_history`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, Literal, cast

from audit.accounts import normalize_name
from audit.privacy_csv import safe_rows
from audit.session import Audited, AuditSession
from audit.trail import AuditEntry, AuditFilter, AuditLog, AuditRecord
from core.errors import BadInput

__all__ = ["LINK_PARAMS", "RecordQuery", "ViewExport", "export_history", "export_view", "find_records"]

Outcome = Literal["candidates", "none"]
Review = Literal["pending", "confirmed", "rejected"]
Policy = Literal["within", "looser", "beyond_limit"]

OUTCOMES: tuple[str, ...] = ("candidates", "none")
REVIEWS: tuple[str, ...] = ("pending", "confirmed", "rejected")
POLICIES: tuple[str, ...] = ("within", "looser", "beyond_limit")
#: Actions whose records are queries (they have candidates or a verdict).
QUERY_ACTIONS = ("search", "verify", "search_video")
#: Every query parameter :meth:`RecordQuery.from_params` reads.
LINK_PARAMS = ("operator", "gallery", "action", "case", "outcome", "review", "looser", "policy", "since", "until",
               "reviewer", "subject", "threshold", "q", "probe_group")


@dataclass(frozen=True)
class RecordQuery:
    """One question to the audit log; every field that is set must hold (None = any).

    ``since`` and ``until`` are UTC dates, both inclusive; ``threshold`` is the loosest
    decision threshold (a distance) a record may have been run at.
    """

    operator: str | None = None
    gallery: str | None = None
    action: str | None = None
    case_ref: str | None = None
    outcome: Outcome | None = None
    review: Review | None = None
    policy: Policy | None = None
    since: date | None = None
    until: date | None = None
    reviewer: str | None = None
    subject: str | None = None
    threshold: float | None = None
    q: str | None = None
    probe_group: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("outcome", OUTCOMES), ("review", REVIEWS), ("policy", POLICIES)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise BadInput(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise BadInput(f"since {self.since.isoformat()} is after until {self.until.isoformat()}: "
                           "no record can match")
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0 < self.threshold <= 2):
            raise BadInput(f"threshold: {self.threshold!r} is not a distance between 0 and 2")

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, action: str | None = None) -> RecordQuery:
        """Return the query a link's parameters name (module docstring); other parameters are not read.

        ``action`` is the action when the link names none (``action=any`` means every action).

        Raises
        ------
        BadInput
            A value that is not one the parameter takes (the message names the parameter).
        """
        def text(name: str) -> str | None:
            value = params.get(name)
            return None if value is None or not str(value).strip() else str(value).strip()

        def day(name: str) -> date | None:
            value = text(name)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise BadInput(f"{name}: {value[:40]!r} is not a date (use YYYY-MM-DD)") from None

        looser = text("looser")
        if looser not in (None, "1", "0"):
            raise BadInput(f"looser: {looser[:40]!r} is not 1 or 0")
        policy = text("policy") or ("looser" if looser == "1" else None)
        if looser == "1" and policy != "looser":
            raise BadInput(f"looser=1 contradicts policy={policy}")
        limit = text("threshold")
        try:
            threshold = None if limit is None else float(limit)
        except ValueError:
            raise BadInput(f"threshold: {str(limit)[:40]!r} is not a number") from None
        chosen = text("action") or action
        return cls(
            operator=text("operator"), gallery=text("gallery"), action=None if chosen == "any" else chosen,
            case_ref=text("case"), outcome=cast(Outcome | None, text("outcome")),
            review=cast(Review | None, text("review")), policy=cast(Policy | None, policy),
            since=day("since"), until=day("until"), reviewer=text("reviewer"), subject=text("subject"),
            threshold=threshold, q=text("q"), probe_group=text("probe_group"),
        )

    def to_params(self, *, action: str | None = None) -> dict[str, str]:
        """Return the link parameters of this query (``action`` left out when it is the default ``action``)."""
        out: dict[str, str] = {}
        names = {"case_ref": "case"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "action":
                if value != action:
                    out["action"] = "any" if value is None else value
            elif f.name == "policy" and value == "looser":
                out["looser"] = "1"
            elif value is not None:
                out[names.get(f.name, f.name)] = value.isoformat() if isinstance(value, date) else f"{value:g}" \
                    if isinstance(value, float) else str(value)
        return out

    def store_filter(self) -> AuditFilter:
        """Return the part of the query the store filters in SQL."""
        return AuditFilter(
            operator=self.operator, case_ref=self.case_ref, gallery=self.gallery, action=self.action,
            since=None if self.since is None else self.since.isoformat(),
            until=None if self.until is None else (self.until + timedelta(days=1)).isoformat(),
        )

    def matches(self, r: AuditRecord) -> bool:
        """Whether the record itself meets the query (everything but ``review`` and the reviews of ``reviewer``)."""
        details = r.details or {}
        if self.outcome is not None:
            if r.action not in QUERY_ACTIONS:
                return False
            ran = r.outcome in ("ok", "no_match")
            if (self.outcome == "candidates") != bool(r.candidates) or (self.outcome == "none" and not ran):
                return False
        if self.policy is not None:
            policy = details.get("threshold_policy")
            if not isinstance(policy, dict) or policy.get("status") != self.policy:
                return False
        if self.subject is not None and self.subject not in {c.subject_id for c in r.candidates}:
            return False
        if self.threshold is not None:
            threshold = details.get("threshold")
            if not isinstance(threshold, str | int | float) or float(threshold) > self.threshold:
                return False
        if self.probe_group is not None and details.get("probe_group") != self.probe_group:
            return False
        if self.q is not None:
            needle = self.q.casefold()
            words = [r.purpose, r.case_ref, r.legal_basis, r.operator, r.reviewer, r.note, r.action, r.outcome,
                     r.gallery.name if r.gallery else None, *(c.subject_id for c in r.candidates)]
            if not any(w is not None and needle in str(w).casefold() for w in words):
                return False
        return True


def find_records(log: AuditLog, query: RecordQuery,
                 statuses: Callable[[list[int]], Mapping[int, frozenset[str]]] | None = None) -> list[AuditEntry]:
    """Return the records meeting ``query``, in seq order.

    ``reviewer`` keeps the queries that account reviewed (a ``review`` record of theirs
    names the query) and the account's own review records; ``review`` keeps the queries
    with a candidate in that two-person-rule status (:meth:`AuditLog.match_status`, or
    ``statuses``: seqs -> the statuses of each one's candidates, for a caller that caches them).
    """
    entries = [e for e in log.list(query.store_filter()) if query.matches(e.record)]
    if query.reviewer is not None:
        name = normalize_name(query.reviewer)
        reviewed = {e.record.target_seq for e in log.list(AuditFilter(action="review"))
                    if e.record.reviewer is not None and normalize_name(e.record.reviewer) == name}
        entries = [e for e in entries if e.seq in reviewed
                   or (e.record.reviewer is not None and normalize_name(e.record.reviewer) == name)]
    if query.review is not None:
        reviewable = [e.seq for e in entries if e.record.action in QUERY_ACTIONS and e.record.outcome == "ok"]
        found = statuses(reviewable) if statuses is not None else {
            seq: frozenset(c.status for c in log.match_status(seq).candidates) for seq in reviewable}
        entries = [e for e in entries if query.review in found.get(e.seq, frozenset())]
    return entries


@dataclass(frozen=True)
class ViewExport:
    """The CSV of what an interface showed, as recorded."""

    data: bytes
    records: int
    sha256: str
    file_name: str


def export_view(session: AuditSession, query: RecordQuery, columns: Sequence[str],
                rows: Sequence[Mapping[str, Any]], seqs: Sequence[int], *, source: str) -> Audited[ViewExport]:
    """Write exactly ``rows`` (cells under ``columns``, in that order) as CSV; record it as an ``export``.

    Every text cell is made safe for spreadsheets (:func:`audit.privacy_csv.safe_rows`).
    The record holds the query's link parameters, the seqs of the records shown, the
    number of rows and the file's SHA-256.

    Raises
    ------
    NotAuthenticated, Forbidden
        The session may not export (refused and recorded).
    MissingContext
        The session's context has no purpose (refused and recorded).
    BadInput
        ``rows`` and ``seqs`` differ in length, or a row lacks a column (nothing written; recorded).
    """
    asked = {"format": "csv", "source": source, "filters": query.to_params(), "records": len(rows),
             "seqs": [int(s) for s in seqs]}
    session.check("export", asked)

    def call() -> ViewExport:
        if len(rows) != len(seqs):
            raise BadInput(f"{len(rows)} rows but {len(seqs)} record numbers: the export would not be what is shown")
        missing = sorted({c for row in rows for c in columns if c not in row})
        if missing:
            raise BadInput(f"rows lack the column(s) {', '.join(missing)}")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(safe_rows({c: row[c] for c in columns} for row in rows))
        data = buffer.getvalue().encode("utf-8")
        return ViewExport(data, len(rows), hashlib.sha256(data).hexdigest(), f"facetrail-{source}.csv")

    return session.run("export", call,
                       lambda v: {"details": {**asked, "records": v.records, "sha256": v.sha256,
                                              "path": v.file_name}},
                       lambda _: {"details": asked})


def export_history(log: AuditLog) -> list[dict[str, Any]]:
    """Every export recorded (Exports page, match-log views, the CLI), newest first: who, when, what, how many.

    Refused exports are listed too (``outcome`` says so).
    """
    rows: list[dict[str, Any]] = []
    entries = [*log.list(AuditFilter(action="export")),
               *(e for e in log.list(AuditFilter(action="refused"))
                 if (e.record.details or {}).get("attempted") == "export")]
    for e in sorted(entries, key=lambda e: e.seq, reverse=True):
        r = e.record
        details = r.details or {}
        rows.append({
            "seq": r.seq, "time": r.started_at, "operator": r.operator, "purpose": r.purpose,
            "outcome": r.outcome, "format": details.get("format"), "source": details.get("source", "exports"),
            "records": details.get("records"), "sha256": details.get("sha256"),
            "filters": details.get("filters") or {}, "reason": details.get("reason"),
        })
    return rows
