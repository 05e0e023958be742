"""The Overview's counting: who searched whom, against which gallery, what came back, who confirmed, what waits.

:func:`overview_counts` reads the log once (:meth:`AuditLog.list`) and the two-person-rule
status of every query with candidates through the same :func:`audit.trail.review.match_status`
the match log filters with, so every number here is the number of records the match log
shows for the same filter:

- **searches** are ``search`` and ``search_video`` records (``verify`` is counted apart);
  *with candidates* is outcome ``ok``, *without* is ``no_match``, anything else (no face,
  a failure) is *other*. ``candidate_share`` is the share of searches with an answer (ok or
  no_match) that returned at least one candidate: it is not a match rate (a candidate is a
  lead for two reviewers, and at the calibrated threshold a search for someone not in the
  gallery may return one);
- **pending reviews** count queries (searches and verifications with outcome ok) with at
  least one candidate still pending, as the match log's ``review=pending`` does, and the
  pending candidates themselves, by the query's age in whole UTC days;
- **confirmations** count, per reviewer, the candidates whose status lists them among the
  confirming (or rejecting) reviewers: reviews the two-person rule counts, not attempts;
- **looser** counts queries run at a threshold looser than the deployment's policy
  (``details.threshold_policy.status == "looser"``, :mod:`audit.policy`), **refused** every
  ``refused`` record.

Each row carries the match-log filter that lists its records (:data:`LINK_NAMES`), as a dict
of query parameters; the page turns it into a link. Nothing here renders.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from audit.errors import RecordNotFound
from audit.evaluation.store import EvaluationStore
from audit.trail.log import AuditEntry, AuditLog
from audit.trail.records import AuditRecord
from audit.trail.review import MatchStatus, match_status
from audit.trail.store import AuditFilter

__all__ = [
    "AGE_BANDS", "LINK_NAMES", "DeployedRates", "OverviewCounts", "count_overview", "deployed_rates", "overview_counts",
]

#: Query parameters of the match log that the overview's links use.
LINK_NAMES = ("operator", "gallery", "outcome", "review", "looser", "since", "until", "record")

#: Pending-review age bands in whole UTC days since the query: (label, first day, last day or None).
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("today", 0, 0),
    ("1-6 days", 1, 6),
    ("7-29 days", 7, 29),
    ("30 days or more", 30, None),
)

_SEARCHES = ("search", "search_video")
_QUERIES = ("search", "search_video", "verify")


@dataclass(frozen=True)
class OverviewCounts:
    """What the Overview shows, as plain rows (tuples of dicts), each with its match-log ``link``."""

    records: int
    """Records read (the log's size)."""
    searches: int
    with_candidates: int
    without_candidates: int
    other_outcomes: int
    verifications: int
    refused: int
    looser: int
    """Queries run looser than the threshold policy (with a written reason)."""
    pending_queries: int
    """Queries with at least one candidate pending review."""
    pending_candidates: int
    confirmed_queries: int
    """Queries with at least one confirmed candidate (the match log's ``review=confirmed``)."""
    confirmed_candidates: int
    rejected_queries: int
    rejected_candidates: int
    by_operator: tuple[dict[str, Any], ...] = ()
    """``operator, searches, with_candidates, without_candidates, other, link``, most searches first."""
    by_gallery: tuple[dict[str, Any], ...] = ()
    """``gallery, size, searches, with_candidates, without_candidates, other, link``."""
    by_purpose: tuple[dict[str, Any], ...] = ()
    """``purpose`` (in full), ``queries``."""
    reviewers: tuple[dict[str, Any], ...] = ()
    """``reviewer, confirmed, rejected``: candidates each reviewer's counted decision is on."""
    pending_by_age: tuple[dict[str, Any], ...] = ()
    """``age, queries, candidates, link`` per :data:`AGE_BANDS` band."""
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    """The match-log filter of each headline number (``with_candidates``, ``without_candidates``, ...)."""

    @property
    def candidate_share(self) -> float | None:
        """Share of answered searches (ok or no_match) that returned at least one candidate (None: no search)."""
        answered = self.with_candidates + self.without_candidates
        return self.with_candidates / answered if answered else None


def _day(record: AuditRecord) -> dt.date:
    return dt.date.fromisoformat(record.started_at[:10])


def _band_link(today: dt.date, first: int, last: int | None) -> dict[str, str]:
    link = {"review": "pending", "until": (today - dt.timedelta(days=first)).isoformat()}
    if last is not None:
        link["since"] = (today - dt.timedelta(days=last)).isoformat()
    return link


def _tally(rows: dict[str, Counter[str]], key: str, record: AuditRecord) -> None:
    bucket = rows.setdefault(key, Counter())
    bucket["searches"] += 1
    bucket[{"ok": "with_candidates", "no_match": "without_candidates"}.get(record.outcome, "other")] += 1


def _search_rows(rows: dict[str, Counter[str]], name: str, sizes: Mapping[str, int] | None = None
                 ) -> tuple[dict[str, Any], ...]:
    out = []
    for key, c in sorted(rows.items(), key=lambda kv: (-kv[1]["searches"], kv[0])):
        row: dict[str, Any] = {name: key}
        if sizes is not None:
            row["size"] = sizes.get(key)
        row |= {k: c[k] for k in ("searches", "with_candidates", "without_candidates", "other")}
        row["link"] = {name: key}
        out.append(row)
    return tuple(out)


def count_overview(records: Iterable[AuditRecord], statuses: Iterable[MatchStatus], today: dt.date) -> OverviewCounts:
    """Count the Overview from records and the match status of their queries with candidates (module docstring).

    ``statuses`` must hold :func:`~audit.trail.review.match_status` of every query with outcome ok
    (others are ignored); ``today`` is the UTC date pending ages are counted from.
    """
    records = list(records)
    searches = [r for r in records if r.action in _SEARCHES]
    operators: dict[str, Counter[str]] = {}
    galleries: dict[str, Counter[str]] = {}
    sizes: dict[str, int] = {}
    for r in searches:
        _tally(operators, r.operator or "(none)", r)
        if r.gallery is not None:
            _tally(galleries, r.gallery.name, r)
            sizes[r.gallery.name] = r.gallery.size
    purposes = Counter(r.purpose or "(none)" for r in records if r.action in _QUERIES)
    by_seq = {r.seq: r for r in records}
    reviewers: dict[str, Counter[str]] = {}
    states: Counter[str] = Counter()
    pending: dict[int, int] = {}
    having: Counter[str] = Counter()
    for s in statuses:
        target = by_seq.get(s.seq)
        if target is None or target.outcome != "ok":
            continue
        for c in s.candidates:
            states[c.status] += 1
            for name in c.confirmations:
                reviewers.setdefault(name, Counter())["confirmed"] += 1
            for name in c.rejections:
                reviewers.setdefault(name, Counter())["rejected"] += 1
        having.update({c.status for c in s.candidates})
        waiting = sum(c.status == "pending" for c in s.candidates)
        if waiting:
            pending[s.seq] = waiting
    ages = []
    for label, first, last in AGE_BANDS:
        seqs = [q for q in pending if first <= (today - _day(by_seq[q])).days and
                (last is None or (today - _day(by_seq[q])).days <= last)]
        ages.append({"age": label, "queries": len(seqs), "candidates": sum(pending[q] for q in seqs),
                     "link": _band_link(today, first, last)})
    outcome = Counter(r.outcome for r in searches)
    return OverviewCounts(
        records=len(records),
        searches=len(searches),
        with_candidates=outcome["ok"],
        without_candidates=outcome["no_match"],
        other_outcomes=len(searches) - outcome["ok"] - outcome["no_match"],
        verifications=sum(r.action == "verify" for r in records),
        refused=sum(r.action == "refused" for r in records),
        looser=sum(r.action in _QUERIES and isinstance(r.details.get("threshold_policy"), dict)
                   and r.details["threshold_policy"].get("status") == "looser" for r in records),
        pending_queries=len(pending),
        pending_candidates=states["pending"],
        confirmed_queries=having["confirmed"],
        confirmed_candidates=states["confirmed"],
        rejected_queries=having["rejected"],
        rejected_candidates=states["rejected"],
        by_operator=_search_rows(operators, "operator"),
        by_gallery=_search_rows(galleries, "gallery", sizes),
        by_purpose=tuple({"purpose": p, "queries": n} for p, n in purposes.most_common()),
        reviewers=tuple({"reviewer": name, "confirmed": c["confirmed"], "rejected": c["rejected"]}
                        for name, c in sorted(reviewers.items(), key=lambda kv: (-kv[1]["confirmed"], kv[0]))),
        pending_by_age=tuple(ages),
        links={"with_candidates": {"outcome": "candidates"}, "without_candidates": {"outcome": "none"},
               "pending": {"review": "pending"}, "confirmed": {"review": "confirmed"},
               "rejected": {"review": "rejected"}, "looser": {"looser": "1"}},
    )


class _Snapshot:
    """The log as read once, answering the reads :func:`~audit.trail.review.match_status` makes, from memory.

    ``get`` by seq, and ``list`` filtered by ``action``, ``target_seq`` and ``after_seq`` exactly as the
    store filters them; any other filter field is refused (ValueError), so a change in what the review
    rule reads fails loudly here instead of counting from a different selection than the match log.
    """

    _FIELDS = frozenset({"action", "target_seq", "after_seq"})

    def __init__(self, entries: Sequence[AuditEntry]) -> None:
        self._entries = list(entries)
        self._by_seq = {e.record.seq: e for e in self._entries}
        self._by_action: dict[str, list[AuditEntry]] = {}
        for e in self._entries:
            self._by_action.setdefault(e.record.action, []).append(e)

    def get(self, seq: int) -> AuditEntry:
        try:
            return self._by_seq[seq]
        except KeyError:
            raise RecordNotFound(f"no audit record has seq {seq}") from None

    def list(self, filters: AuditFilter | None = None, limit: int | None = None) -> list[AuditEntry]:
        asked = (filters or AuditFilter()).to_dict()
        if set(asked) - self._FIELDS or limit is not None:
            raise ValueError(f"the overview's snapshot of the log filters by {sorted(self._FIELDS)} only, "
                             f"not {sorted(set(asked) - self._FIELDS)} (limit {limit})")
        rows = self._by_action.get(asked["action"], []) if "action" in asked else self._entries
        return [e for e in rows
                if ("target_seq" not in asked or e.record.target_seq == asked["target_seq"])
                and ("after_seq" not in asked or e.record.seq > asked["after_seq"])]


def overview_counts(log: AuditLog, today: dt.date | None = None) -> OverviewCounts:
    """Count the Overview over the whole log (``today``: the UTC date, by default now).

    The log is read once; every query's review status is :func:`audit.trail.review.match_status`
    over that reading (the rule the match log filters with), not one database round trip per query.
    """
    entries = log.list()
    snapshot = cast(AuditLog, _Snapshot(entries))
    records = [e.record for e in entries]
    statuses: Sequence[MatchStatus] = [match_status(snapshot, r.seq) for r in records
                                       if r.action in _QUERIES and r.outcome == "ok"]
    return count_overview(records, statuses, today or dt.datetime.now(dt.UTC).date())


@dataclass(frozen=True)
class DeployedRates:
    """The error rates of the configuration a gallery is searched with now (its latest search).

    The configuration and the recorded chance of a false candidate are the latest search's;
    the pairwise rates are the first evaluation of that configuration
    (:meth:`~audit.evaluation.store.EvaluationStore.for_model`: one that measured this gallery
    size first) at that threshold.
    """

    gallery: str
    gallery_size: int
    seq: int
    """The latest search of the gallery."""
    model: str | None
    threshold: float | None
    """The distance threshold that search used."""
    expected_fpir: float | None
    """The chance of a false candidate recorded on that search (None: none recorded)."""
    fpir_method: str | None
    evaluation: str | None
    """The evaluation's label (None: this configuration has not been evaluated)."""
    fmr: float | None
    impostor_pairs: int | None
    fnmr: float | None
    genuine_pairs: int | None
    rates_source: str | None = None
    """``evaluated``: the evaluation measured this threshold; ``histogram``: the FMR is read from its
    score histogram (exact to the bin width; no FNMR); None: no evaluation."""


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _latest_searches(records: Iterable[AuditRecord]) -> dict[str, AuditRecord]:
    latest: dict[str, AuditRecord] = {}
    for r in records:
        if r.action == "search" and r.outcome in ("ok", "no_match") and r.gallery is not None:
            latest[r.gallery.name] = r  # records come in seq order: the last one wins
    return latest


def deployed_rates(records: Iterable[AuditRecord], store: EvaluationStore) -> tuple[DeployedRates, ...]:
    """Return the error rates of each gallery's current configuration (see :class:`DeployedRates`)."""
    out = []
    for name, r in sorted(_latest_searches(records).items()):
        config = r.model_config or {}
        threshold = _number(r.details.get("threshold"))
        if threshold is None:
            threshold = _number(config.get("threshold"))
        recorded = r.details.get("expected_fpir")
        expected: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        size = r.gallery.size if r.gallery is not None else 0
        runs = store.for_model(str(config.get("embedding_key")), size) if config.get("embedding_key") else []
        fmr = fnmr = None
        impostors = genuine = None
        source = None
        fpir, method = _number(expected.get("fpir")), expected.get("method")
        if runs and threshold is not None:
            report = store.load(runs[0].run_id)
            rates = report.rates_frame()
            overall = rates[(rates["pairing"] == "all") & ((rates["threshold"] - threshold).abs() < 5e-7)]
            if not overall.empty:
                row = overall.iloc[0]
                fmr, fnmr, source = _number(row["fmr"]), _number(row["fnmr"]), "evaluated"
                impostors, genuine = int(row["impostor_pairs"]), int(row["genuine_pairs"])
            elif report.histogram_rows:
                fmr, source = report.false_match_rate_at(1.0 - threshold), "histogram"
                impostors = int(sum(h["impostor"] for h in report.histogram_rows if not dict(h["group"])))
            if fpir is None and (source == "evaluated" or report.histogram_rows):
                chance = report.chance_of_false_candidate(size, threshold)
                fpir, method = chance.value, f"{chance.method} from {runs[0].label}"
        out.append(DeployedRates(
            gallery=name, gallery_size=size, seq=r.seq, model=config.get("model"), threshold=threshold,
            expected_fpir=fpir, fpir_method=method, evaluation=runs[0].label if runs else None, fmr=fmr,
            impostor_pairs=impostors, fnmr=fnmr, genuine_pairs=genuine, rates_source=source))
    return tuple(out)
