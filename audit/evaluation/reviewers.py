"""Reviewers' own error rates, measured on the closed blind batches of the trail (:mod:`audit.blind`).

Per reviewer account, over the decisions of every revealed batch (or of the batches named):

* **false-confirm rate on fillers**: confirmations of filler items (known non-matches) over the
  filler items the reviewer decided, with a Wilson interval over those items;
* **agreement with the other reviewers**: over every item of a batch that this reviewer and
  another reviewer both decided (real candidates and fillers alike), the share of (item, other
  reviewer) pairs with the same decision, with a Wilson interval over those pairs (with two
  reviewers, one pair per item);
* **time per decision**: the seconds from an item being served to its decision (the
  ``blind_review`` record's latency), mean and median, with a percentile bootstrap interval of
  the mean over the reviewer's decisions (seed 0, so it is reproducible).

Everything is read from the trail: the ``blind_reveal`` records (which decision was on which
item, and whether it was a filler) and the ``blind_review`` records (decision and latency), so
anyone holding the log reproduces every count. :func:`audited_reviewer_rates` is the audited
way to compute them (auditors only; recorded as a ``review_rates`` record that holds the
batches, the log size and the SHA-256 of the result, not the rates: reviewers may read the log).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.evaluation.bootstrap import percentile_interval
from audit.evaluation.identification import wilson_interval
from audit.trail.store import AuditFilter

if TYPE_CHECKING:
    from audit.session import AuditSession
    from audit.trail.log import AuditEntry, AuditLog

__all__ = ["ReviewerRate", "ReviewerRates", "audited_reviewer_rates", "reviewer_rates"]

#: The purpose recorded when the caller gave none.
PURPOSE = "measuring reviewers (blind review with fillers)"

#: Bootstrap resamples of the mean time per decision.
TIME_RESAMPLES = 2000


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class ReviewerRate:
    """One reviewer's measured rates (rates None where there is nothing to count)."""

    reviewer: str
    decisions: int
    """Decisions in the measured batches."""
    filler_decisions: int
    """Of those, on fillers."""
    false_confirms: int
    """Fillers the reviewer confirmed."""
    false_confirm_rate: float | None
    false_confirm_interval: tuple[float | None, float | None]
    candidate_decisions: int
    """Decisions on real candidates."""
    candidate_confirms: int
    """Real candidates the reviewer confirmed (no ground truth: not an error rate)."""
    agreement_pairs: int
    """(item, other reviewer) pairs where both decided the item."""
    agreements: int
    """Of those, with the same decision."""
    agreement_rate: float | None
    agreement_interval: tuple[float | None, float | None]
    mean_seconds: float | None
    """Mean time per decision."""
    median_seconds: float | None
    mean_seconds_interval: tuple[float | None, float | None]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "reviewer": self.reviewer, "decisions": self.decisions,
            "filler_decisions": self.filler_decisions, "false_confirms": self.false_confirms,
            "false_confirm_rate": self.false_confirm_rate,
            "false_confirm_interval": list(self.false_confirm_interval),
            "candidate_decisions": self.candidate_decisions, "candidate_confirms": self.candidate_confirms,
            "agreement_pairs": self.agreement_pairs, "agreements": self.agreements,
            "agreement_rate": self.agreement_rate, "agreement_interval": list(self.agreement_interval),
            "mean_seconds": self.mean_seconds, "median_seconds": self.median_seconds,
            "mean_seconds_interval": list(self.mean_seconds_interval),
        }


@dataclass(frozen=True)
class ReviewerRates:
    """Every reviewer's rates over the measured batches."""

    batches: tuple[str, ...]
    """Ids of the revealed batches measured."""
    confidence: float
    reviewers: tuple[ReviewerRate, ...]
    """Sorted by account name."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"batches": list(self.batches), "confidence": self.confidence,
                "reviewers": [r.to_dict() for r in self.reviewers]}

    def sha256(self) -> str:
        """SHA-256 of the sorted-keys JSON of :meth:`to_dict` (what the ``review_rates`` record holds)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Decision:
    batch: str
    index: int
    reviewer: str
    filler: bool
    confirm: bool
    seconds: float | None


def _decisions(log: AuditLog, batches: Sequence[str] | None) -> tuple[list[str], list[_Decision]]:
    """Return the revealed batches measured and their decisions (all batches, or those named), from the trail."""
    wanted = None if batches is None else set(batches)
    measured: list[str] = []
    out: list[_Decision] = []
    for e in log.list(AuditFilter(action="blind_reveal")):
        details = e.record.details
        batch = str(details.get("batch_id"))
        if wanted is not None and batch not in wanted:
            continue
        measured.append(batch)
        for d in details.get("decisions") or ():
            r = log.get(int(d["review_seq"])).record
            if r.action != "blind_review" or r.reviewer is None or r.details.get("item") != d.get("item"):
                continue
            seconds = None if r.latency_ms is None else float(r.latency_ms) / 1000.0
            out.append(_Decision(batch, int(d["index"]), r.reviewer, d["filler"] is True, r.decision == "confirm",
                                 seconds))
    return measured, out


def _interval(k: int, n: int, confidence: float) -> tuple[float | None, float | None]:
    lo, hi = wilson_interval(k, n, confidence)
    return _num(lo), _num(hi)


def _mean_interval(seconds: list[float], confidence: float) -> tuple[float | None, float | None]:
    if not seconds:
        return None, None
    values = np.asarray(seconds, dtype=np.float64)
    rng = np.random.default_rng(0)
    draws = values[rng.integers(0, len(values), size=(TIME_RESAMPLES, len(values)))].mean(axis=1)
    lo, hi = percentile_interval(draws, confidence)
    return float(lo), float(hi)


def reviewer_rates(log: AuditLog, batches: Sequence[str] | None = None, *,
                   confidence: float = 0.95) -> ReviewerRates:
    """Measure every reviewer on the revealed blind batches of ``log`` (all of them, or ``batches``).

    Batches still open are not measured (their fillers are sealed).

    Raises
    ------
    ValueError
        If ``confidence`` is not strictly between 0 and 1.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    measured, decisions = _decisions(log, batches)
    by_item: dict[tuple[str, int], dict[str, bool]] = defaultdict(dict)
    for d in decisions:
        by_item[(d.batch, d.index)][d.reviewer] = d.confirm
    rates = []
    for name in sorted({d.reviewer for d in decisions}):
        mine = [d for d in decisions if d.reviewer == name]
        fillers = [d for d in mine if d.filler]
        false_confirms = sum(d.confirm for d in fillers)
        pairs = agree = 0
        for d in mine:
            for other, confirm in by_item[(d.batch, d.index)].items():
                if other != name:
                    pairs += 1
                    agree += confirm == d.confirm
        seconds = [d.seconds for d in mine if d.seconds is not None]
        candidates = [d for d in mine if not d.filler]
        rates.append(ReviewerRate(
            name, len(mine), len(fillers), false_confirms,
            false_confirms / len(fillers) if fillers else None, _interval(false_confirms, len(fillers), confidence),
            len(candidates), sum(d.confirm for d in candidates),
            pairs, agree, agree / pairs if pairs else None, _interval(agree, pairs, confidence),
            statistics.fmean(seconds) if seconds else None, statistics.median(seconds) if seconds else None,
            _mean_interval(seconds, confidence),
        ))
    return ReviewerRates(tuple(measured), confidence, tuple(rates))


def audited_reviewer_rates(session: AuditSession, batches: Sequence[str] | None = None, *,
                           confidence: float = 0.95) -> tuple[ReviewerRates, AuditEntry]:
    """Measure the reviewers (:func:`reviewer_rates`) as an auditor, and record the computation.

    The ``review_rates`` record holds the batches measured, the log size the rates were read at,
    the reviewers and their decision counts, and the SHA-256 of the result; the rates themselves
    are shown to auditors (CLI, dashboard), not written where reviewers read.

    Raises
    ------
    NotAuthenticated, Forbidden, MissingContext
        From the gate (recorded): only auditors measure reviewers.
    ValueError
        A bad ``confidence``.
    """
    if not (session.context.purpose or "").strip():
        session = session.with_context(replace(session.context, purpose=PURPOSE))
    asked = {"batches": None if batches is None else list(batches), "confidence": confidence}
    session.check("review_rates", asked)
    size = session.log.size()
    rates = reviewer_rates(session.log, batches, confidence=confidence)
    entry = session.record("review_rates", {"outcome": "ok", "details": {
        "kind": "review_rates", "batches": list(rates.batches), "log_size": size, "confidence": confidence,
        "decisions": {r.reviewer: r.decisions for r in rates.reviewers}, "result_sha256": rates.sha256(),
    }})
    return rates, entry
