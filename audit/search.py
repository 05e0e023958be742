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

:func:`find_seqs` answers a query without decoding a record where it can (the SQL filters of
:class:`~audit.trail.store.AuditFilter`, then a SQL projection of the unsealed fields,
:meth:`AuditLog.facts`; only ``subject`` and ``q`` open records); :func:`find_page` opens
one page of the answer (the Match log's table), :func:`find_records` all of it;
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
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import Any, Literal, cast

from audit.accounts import normalize_name
from audit.privacy_csv import safe_rows
from audit.session import Audited, AuditSession
from audit.trail import AuditEntry, AuditFilter, AuditLog, AuditRecord
from audit.trail.store import RecordFacts
from core.errors import BadInput

__all__ = ["LINK_PARAMS", "PER_PAGE", "LogFacts", "RecordPage", "RecordQuery", "ViewExport", "export_history", "export_view",
           "find_page", "find_records", "find_seqs"]

Outcome = Literal["candidates", "none"]
Review = Literal["pending", "confirmed", "rejected"]
Policy = Literal["within", "looser", "beyond_limit"]

OUTCOMES: tuple[str, ...] = ("candidates", "none")
REVIEWS: tuple[str, ...] = ("pending", "confirmed", "rejected")
POLICIES: tuple[str, ...] = ("within", "looser", "beyond_limit")
#: Actions whose records are queries (they have candidates or a verdict).
QUERY_ACTIONS = ("search", "verify", "search_video")
#: Records per page of :func:`find_page` (the Match log's table).
PER_PAGE = 50
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
        policy = details.get("threshold_policy")
        threshold = details.get("threshold")
        facts = RecordFacts(
            r.seq, r.action, r.outcome, r.operator, r.reviewer, r.target_seq,
            policy.get("status") if isinstance(policy, dict) else None,
            str(threshold) if isinstance(threshold, str | int | float) else None, len(r.candidates),
            probe_group=probe_group if isinstance(probe_group := details.get("probe_group"), str) else None)
        return self.facts_match(facts) and self.record_matches(r)

    @property
    def reads_records(self) -> bool:
        """Whether answering needs the records opened (``subject`` and ``q`` read sealed fields), not only their facts."""
        return self.subject is not None or self.q is not None

    def store_matcher(self) -> Callable[[RecordFacts], bool]:
        """Return whether a record's facts meet the part :meth:`store_filter` asks of the store (as its SQL compares)."""
        store = self.store_filter()
        wanted = [(name, value) for name in ("operator", "case_ref", "gallery", "action")
                  if (value := getattr(store, name)) is not None]
        since, until = store.since, store.until

        def matches(f: RecordFacts) -> bool:
            if any(getattr(f, name) != value for name, value in wanted):
                return False
            if since is not None and (f.started_at is None or f.started_at < since):
                return False
            return until is None or (f.started_at is not None and f.started_at < until)

        return matches

    def facts_match(self, f: RecordFacts) -> bool:
        """Whether a record's :class:`~audit.trail.store.RecordFacts` meet the query's record-level fields.

        ``outcome``, ``policy``, ``threshold`` and ``probe_group``: none of them is sealed.
        """
        if self.outcome is not None:
            if f.action not in QUERY_ACTIONS:
                return False
            ran = f.outcome in ("ok", "no_match")
            if (self.outcome == "candidates") != (f.candidates > 0) or (self.outcome == "none" and not ran):
                return False
        if self.policy is not None and f.policy != self.policy:
            return False
        if self.threshold is not None:
            try:
                threshold = float(f.threshold) if f.threshold is not None else math.nan
            except ValueError:
                threshold = math.nan  # not a number: no threshold to compare (nan compares false)
            if not threshold <= self.threshold:
                return False
        return self.probe_group is None or f.probe_group == self.probe_group

    def record_matches(self, r: AuditRecord) -> bool:
        """Whether an opened record meets ``subject`` and ``q`` (the parts that read sealed fields)."""
        if self.subject is not None and self.subject not in {c.subject_id for c in r.candidates}:
            return False
        if self.q is not None:
            needle = self.q.casefold()
            words = [r.purpose, r.case_ref, r.legal_basis, r.operator, r.reviewer, r.note, r.action, r.outcome,
                     r.gallery.name if r.gallery else None, *(c.subject_id for c in r.candidates)]
            if not any(w is not None and needle in str(w).casefold() for w in words):
                return False
        return True


Statuses = Callable[[list[int]], Mapping[int, frozenset[str]]]


class LogFacts:
    """The :class:`~audit.trail.store.RecordFacts` of a whole log, kept by one reader and read on from where it was.

    A stored record never changes and the log only grows, so a reader (one dashboard
    session, which may read the log) reads each record's facts once: :meth:`current`
    reads only the records appended since its last call. If the log is not the one read
    before (another log id, or the last record read is no longer the same bytes: a
    restored or replaced database), everything is read again. Facts hold no sealed field.
    """

    def __init__(self) -> None:
        self._log_id: str | None = None
        self._facts: list[RecordFacts] = []
        self._last: tuple[int, bytes] | None = None  # seq and entry hash of the last record read

    def current(self, log: AuditLog) -> list[RecordFacts]:
        """Return the facts of every record of ``log``, in seq order (reading only what is new)."""
        head = log.store.head()
        if self._log_id != log.log_id or (self._last is not None and (
                head is None or head[0] < self._last[0]
                or (row := log.store.get(self._last[0])) is None or row.entry_hash != self._last[1])):
            self._log_id, self._facts, self._last = log.log_id, [], None
        if head is not None and (self._last is None or head[0] > self._last[0]):
            after = self._last[0] if self._last is not None else None
            self._facts.extend(log.facts(AuditFilter(after_seq=after)))
            row = log.store.get(self._facts[-1].seq) if self._facts else None
            self._last = None if row is None else (row.seq, row.entry_hash)
        return self._facts

    def choices(self, log: AuditLog) -> dict[str, list[str]]:
        """Return the distinct operators, reviewers, galleries, actions and case references of ``log``, sorted."""
        facts = self.current(log)
        return {name: sorted({v for f in facts if (v := getattr(f, name)) is not None})
                for name in ("operator", "reviewer", "gallery", "action", "case_ref")}


def find_seqs(log: AuditLog, query: RecordQuery, statuses: Statuses | None = None,
              known: LogFacts | None = None) -> list[int]:
    """Return the seqs of the records meeting ``query``, in seq order, opening as few records as it can.

    The store's SQL filters (:meth:`RecordQuery.store_filter`) and a projection of the
    unsealed fields (:meth:`AuditLog.facts`) answer every filter but ``subject`` and ``q``,
    without decoding a record; only for those two are the records that passed the rest
    opened (their sealed fields read). ``reviewer`` keeps the queries that account reviewed
    (a ``review`` record of theirs names the query) and the account's own review records;
    ``review`` keeps the queries with a candidate in that two-person-rule status
    (:meth:`AuditLog.match_status`, or ``statuses``: seqs -> the statuses of each one's
    candidates, for a caller that caches them). ``known``: the facts a reader keeps
    (:class:`LogFacts`), so that only the records appended since are read.
    """
    every = known.current(log) if known is not None else None
    stored = query.store_matcher()
    facts = ([f for f in every if stored(f) and query.facts_match(f)] if every is not None
             else [f for f in log.facts(query.store_filter()) if query.facts_match(f)])
    if query.reviewer is not None:
        name = normalize_name(query.reviewer)
        reviews = ([f for f in every if f.action == "review"] if every is not None
                   else log.facts(AuditFilter(action="review")))
        reviewed = {f.target_seq for f in reviews if f.reviewer is not None and normalize_name(f.reviewer) == name}
        facts = [f for f in facts if f.seq in reviewed or (f.reviewer is not None and normalize_name(f.reviewer) == name)]
    if query.review is not None:
        reviewable = [f.seq for f in facts if f.action in QUERY_ACTIONS and f.outcome == "ok"]
        found = statuses(reviewable) if statuses is not None else {
            seq: frozenset(c.status for c in log.match_status(seq).candidates) for seq in reviewable}
        facts = [f for f in facts if query.review in found.get(f.seq, frozenset())]
    seqs = [f.seq for f in facts]
    if query.reads_records:
        seqs = [e.seq for e in log.entries(seqs) if query.record_matches(e.record)]
    return seqs


def find_records(log: AuditLog, query: RecordQuery, statuses: Statuses | None = None) -> list[AuditEntry]:
    """Return the records meeting ``query``, in seq order (:func:`find_seqs`; all of them opened, each once)."""
    if not query.reads_records:
        return log.entries(find_seqs(log, query, statuses))
    passed = find_seqs(log, replace(query, subject=None, q=None), statuses)  # every filter the facts answer
    return [e for e in log.entries(passed) if query.record_matches(e.record)]


@dataclass(frozen=True)
class RecordPage:
    """One page of the records meeting a query: only these records were opened."""

    entries: tuple[AuditEntry, ...]
    """The page's records, in seq order."""
    total: int
    """How many records meet the query (on every page)."""
    page: int
    """This page's number, from 1."""
    pages: int
    """How many pages there are (at least 1, even with no record)."""
    per_page: int


def find_page(log: AuditLog, query: RecordQuery, page: int | None = None, *, per_page: int = PER_PAGE,
              statuses: Statuses | None = None, known: LogFacts | None = None) -> RecordPage:
    """Return page ``page`` (from 1; None: the last, newest one) of the records meeting ``query``, in seq order.

    Only the page's records are decoded and opened (besides those :func:`find_seqs` opens
    for ``subject`` and ``q``), so a page costs about the same in a log of any size; with
    ``known`` (:class:`LogFacts`) only the records appended since the last page are read at all.

    Raises
    ------
    BadInput
        ``page`` is not between 1 and the number of pages, or ``per_page`` is not positive.
    """
    if per_page < 1:
        raise BadInput(f"per_page: {per_page} is not a positive number of records")
    seqs = find_seqs(log, query, statuses, known)
    pages = max(1, math.ceil(len(seqs) / per_page))
    chosen = pages if page is None else page
    if not 1 <= chosen <= pages:
        raise BadInput(f"page: {chosen} is not a page of these records (1 to {pages})")
    shown = seqs[(chosen - 1) * per_page: chosen * per_page]
    return RecordPage(tuple(log.entries(shown)), len(seqs), chosen, pages, per_page)


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
