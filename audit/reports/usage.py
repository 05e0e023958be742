"""Blocks of a report read from the log: usage, review outcomes, refusals and anomalies.

Each function turns the frames of :class:`~audit.reports.query.LogCounts` into
:mod:`audit.reports.model` blocks, showing identities and counts through
:class:`~audit.reports.privacy.Privacy` (pseudonyms and suppression in public reports,
noisy usage counts with a privacy budget). They add nothing to what was counted.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from audit.reports.config import ReportConfig
from audit.reports.model import Block, Fact, Facts, Figure, Missing, Table, Text, not_available
from audit.reports.privacy import Privacy
from audit.reports.query import LogCounts
from audit.trail.records import ACTIONS
from core.config import ModelConfig, ThresholdSource
from core.thresholds import ThresholdStore, apply_default_threshold, apply_search_threshold

__all__ = ["anomaly_blocks", "review_blocks", "usage_blocks", "video_recorded", "ThresholdPolicy"]

_ACTION_LABEL = {"search": "searches (1:N)", "verify": "verifications (1:1)", "search_video": "video jobs"}


def video_recorded() -> bool:
    """Whether this deployment's trail has a record action for video jobs."""
    return "search_video" in ACTIONS


def _actions() -> tuple[str, ...]:
    return ("search", "verify", "search_video") if video_recorded() else ("search", "verify")


def _by(frame: pd.DataFrame, key: str, p: Privacy, show: Callable[[Any], str] = str) -> list[dict[str, Any]]:
    """Count uses per value of ``key`` (all query actions), largest first; small public cells merged into one row."""
    if frame.empty:
        return []
    sums = frame.groupby(frame[key].fillna("(none)"), dropna=False)["uses"].sum().sort_values(ascending=False)
    rows, other, merged = [], 0, 0
    for value, uses in sums.items():
        shown = p.usage(int(uses))
        if p.public and key == "purpose" and (isinstance(shown, str) or shown < p.k):
            other += int(shown) if isinstance(shown, int) else 0
            merged += 1
            continue
        rows.append({key: show(value), "uses": shown})
    if merged:
        rows.append({key: f"other purposes, each with fewer than {p.k} uses ({merged})", "uses": p.count(other)})
    return rows


def usage_blocks(counts: LogCounts, p: Privacy) -> list[Block]:
    """Build the usage blocks. Uses in the period: totals, by month, purpose, gallery and operator; searches with candidates."""
    usage = counts.usage
    actions = _actions()
    totals = [Fact(a, _ACTION_LABEL[a], p.usage(int(usage.loc[usage["action"] == a, "uses"].sum()))) for a in actions]
    blocks: list[Block] = [Facts("usage_totals", tuple(totals), "Uses in the period")]
    if not video_recorded():
        blocks.append(Missing("video_jobs", "video jobs", not_available(
            "video searches are not audited records here yet (issue 13, the audited video search)")))
    months = []
    for month in sorted(set(usage["month"])):
        sel = usage[usage["month"] == month]
        months.append({"month": month, **{a: p.usage(int(sel.loc[sel["action"] == a, "uses"].sum())) for a in actions}})
    blocks.append(Table("usage_by_month", "Uses per month (UTC)", (("month", "month"),) +
                        tuple((a, _ACTION_LABEL[a]) for a in actions), tuple(months), empty="no use in this period"))
    blocks.append(Figure("usage_figure", "Uses over time", "usage_over_time",
                         {"months": [m["month"] for m in months],
                          "series": {_ACTION_LABEL[a]: [m[a] if isinstance(m[a], int) else 0 for m in months]
                                     for a in actions}},
                         "Searches, verifications and video jobs per month (suppressed cells drawn as 0)."))
    blocks.append(Table("usage_by_purpose", "Uses by stated purpose", (("purpose", "purpose"), ("uses", "uses")),
                        tuple(_by(usage, "purpose", p)), empty="no use in this period"))
    searches = usage[usage["action"] != "verify"]
    blocks.append(Table("usage_by_gallery", "Searches by reference database (gallery)",
                        (("gallery", "gallery"), ("uses", "searches")), tuple(_by(searches, "gallery", p)),
                        empty="no search in this period"))
    blocks.append(Table("usage_by_operator", "Uses by operator" + (" (pseudonymised)" if p.public else ""),
                        (("operator", "operator"), ("uses", "uses")), tuple(_by(usage, "operator", p, p.operator)),
                        empty="no use in this period"))
    s = usage[usage["action"] == "search"]
    ok, none = int(s.loc[s["outcome"] == "ok", "uses"].sum()), int(s.loc[s["outcome"] == "no_match", "uses"].sum())
    failed = int(s["uses"].sum()) - ok - none
    share = round(100.0 * ok / (ok + none), 1) if ok + none else None
    blocks.append(Facts("search_outcomes", (
        Fact("with_candidates", "searches that returned candidates", p.count(ok)),
        Fact("without_candidates", "searches that returned no candidate", p.count(none)),
        Fact("failed", "searches that failed (no face, unreadable image, ...)", p.count(failed)),
        Fact("share_with_candidates", "share of completed searches with candidates",
             "no completed search" if share is None else share, "" if share is None else "%"),
    ), "Search outcomes"))
    return blocks


def _durations(seconds: pd.Series) -> tuple[list[float], str]:
    """Median, 90th percentile and longest, in hours (minutes when the longest is under two hours)."""
    unit, per = ("hours", 3600.0) if float(seconds.max()) >= 7200.0 else ("minutes", 60.0)
    return [round(float(v) / per, 2) for v in (seconds.quantile(0.5), seconds.quantile(0.9), seconds.max())], unit


def review_blocks(counts: LogCounts, p: Privacy) -> list[Block]:
    """Review outcomes of candidates under the two-person rule, and the time reviews took."""
    items = counts.items
    n = {s: int((items["status"] == s).sum()) for s in ("confirmed", "rejected", "vetoed", "pending")}
    total = len(items)
    decided = n["confirmed"] + n["rejected"] + n["vetoed"]
    facts = [Fact("candidates", "candidates (and verified pairs) to review", p.count(total))]
    facts += [Fact(s, {"confirmed": "confirmed by two reviewers (neither the operator)",
                       "rejected": "rejected by a reviewer",
                       "vetoed": "vetoed: rejected by a reviewer though another had confirmed",
                       "pending": "pending (fewer than two confirmations, no rejection)"}[s], p.count(v))
              for s, v in n.items()]
    share = round(100.0 * decided / total, 1) if total else None
    facts.append(Fact("share_completed", "share completed under the two-person rule (confirmed, rejected or vetoed)",
                      "no candidate" if share is None else share, "" if share is None else "%"))
    seconds = items.loc[items["review_seconds"].notna(), "review_seconds"].astype(float)
    values: list[float] | list[str]
    if decided and not seconds.empty:
        values, unit = _durations(seconds)
    else:
        values, unit = ["no decision"] * 3, ""
    time_facts = (
        Fact("decided", "candidates decided", p.count(decided)),
        Fact("median", "median time from query to decision", values[0], unit),
        Fact("p90", "90th percentile", values[1], unit),
        Fact("longest", "longest", values[2], unit),
    )
    return [
        Facts("review_outcomes", tuple(facts), "Review outcomes (status as of the log state this report counts)"),
        Facts("review_time", time_facts, "Time to review"),
        Figure("review_figure", "Review outcomes", "review_outcomes",
               {"outcomes": {s: (v if isinstance(p.count(v), int) else 0) for s, v in n.items()}},
               "Candidates of the period's queries by review status (suppressed cells drawn as 0)."),
    ]


class ThresholdPolicy:
    """The deployment's calibrated default threshold for a configuration (and gallery), as it is now."""

    def __init__(self, store: ThresholdStore, model_config: Callable[[int], dict[str, Any] | None]) -> None:
        self.store = store
        self.model_config = model_config
        self._cache: dict[tuple[Any, ...], float | None] = {}

    def default(self, row: pd.Series) -> float | None:
        """Return the calibrated default for the row's configuration (and gallery, for searches), or ``None`` if unknown."""
        key = (row["action"], row["embedding_key"], row["gallery_size"], row["fingerprint"])
        if key not in self._cache:
            self._cache[key] = self._default(row)
        return self._cache[key]

    def _default(self, row: pd.Series) -> float | None:
        raw = self.model_config(int(row["example_seq"]))
        try:
            config = ModelConfig.from_dict(dict(raw or {}))
        except (KeyError, ValueError, TypeError):
            return None  # a configuration the record does not describe fully: the policy is unknown (said)
        base = config.with_threshold(config.threshold, ThresholdSource("deepface_builtin", "looked up by a report"))
        default = apply_default_threshold(base, self.store)
        if row["action"] == "search" and not pd.isna(row["gallery_size"]):
            default = apply_search_threshold(default, self.store, int(row["gallery_size"]),
                                             None if pd.isna(row["fingerprint"]) else str(row["fingerprint"]))
        return default.threshold if default.threshold_source.kind == "calibrated" else None


def _threshold_rows(counts: LogCounts, policy: ThresholdPolicy, p: Privacy) -> tuple[list[dict[str, Any]], int]:
    rows, looser = [], 0
    for _, r in counts.thresholds.iterrows():
        default = policy.default(r)
        threshold = float(r["threshold"])
        loose = default is not None and r["source"] == "user" and threshold > default + 1e-9
        looser += int(r["uses"]) if loose else 0
        rows.append({"action": r["action"], "gallery": r["gallery"] if isinstance(r["gallery"], str) else "(none)",
                     "threshold": threshold, "source": r["source"] if isinstance(r["source"], str) else "(unstated)",
                     "policy_threshold": "unknown (no calibrated default)" if default is None else default,
                     "looser": "yes" if loose else "no", "uses": p.count(int(r["uses"]))})
    return rows, looser


def _out_of_hours(counts: LogCounts, config: ReportConfig, p: Privacy) -> Fact | Missing:
    hours, tz = config.working_hours, config.timezone
    if hours is None or tz is None:
        return Missing("out_of_hours", "queries out of working hours",
                       "missing from report.toml: policy.working_hours and policy.timezone")
    start, end = hours
    days = set(config.working_days)
    out = 0
    for hour, uses in counts.hours.groupby("hour")["uses"].sum().items():
        local = dt.datetime.strptime(str(hour), "%Y-%m-%dT%H:%M").replace(tzinfo=dt.UTC).astimezone(tz)
        minute = local.hour * 60 + local.minute
        if local.weekday() not in days or not start <= minute < end:
            out += int(uses)
    return Fact("out_of_hours", f"queries out of working hours ({config.get('policy.working_hours')} "
                                f"{config.get('policy.timezone')}, days {', '.join(config.get('policy.working_days') or ('Mon', 'Tue', 'Wed', 'Thu', 'Fri'))})",
                p.count(out))


def anomaly_blocks(counts: LogCounts, config: ReportConfig, policy: ThresholdPolicy, p: Privacy) -> list[Block]:
    """Refusals and anomalies: missing case references, self-review attempts, lockouts, loose thresholds, ..."""
    a = counts.anomalies
    thresholds, looser = _threshold_rows(counts, policy, p)
    exports = counts.exports
    carrying = exports[exports["unconfirmed"] > 0]
    repeated = config.repeated_subject_searches
    facts: list[Fact | Missing] = [
        Fact("refusals", "refused attempts (every refusal is recorded)", p.count(int(counts.refusals["refusals"].sum()))),
        Fact("queries_without_case", "queries run without a case reference", p.count(a["queries_without_case"])),
        Fact("refused_missing_case", "queries refused for a missing case reference", p.count(a["refused_missing_case"])),
        Fact("self_review_attempts", "attempts to review one's own query (refused)", p.count(a["self_review_attempts"])),
        Fact("failed_sign_ins", "failed sign-ins", p.count(a["failed_sign_ins"])),
        Fact("lockouts_begun", "sign-in lockouts begun (too many failures in a row)", p.count(a["lockouts_begun"])),
        Fact("refused_while_locked", "sign-ins refused during a lockout", p.count(a["refused_while_locked"])),
        Fact("user_thresholds", "queries at a threshold named by the operator", p.count(a["user_thresholds"])),
        Fact("looser_thresholds", "of which looser than the deployment's calibrated default", p.count(looser)),
        Fact("policy_looser", "searches looser than the threshold policy allows without a reason (run with a "
                              "written reason)", p.count(a["policy_looser"])),
        Fact("policy_refused", "searches refused by the threshold policy (past its hard limit, or looser without "
                               "a reason)", p.count(a["policy_refused"])),
        Fact("exports_unconfirmed", "exports that carried candidates not yet confirmed then", p.count(len(carrying))),
        Fact("unconfirmed_exported", "unconfirmed candidates in those exports",
             p.count(int(carrying["unconfirmed"].sum()))),
        _out_of_hours(counts, config, p),
        Fact("repeated_subjects", f"subjects returned as candidates by {repeated} or more searches",
             p.count(len(counts.repeated_subjects))),
        Fact("repeated_probes", f"probe images searched {repeated} or more times", p.count(len(counts.repeated_probes))),
    ]
    blocks: list[Block] = [
        Facts("anomalies", tuple(f for f in facts if isinstance(f, Fact)), "Refusals and anomalies"),
        *[f for f in facts if isinstance(f, Missing)],
        Missing("acted_on_unconfirmed", "matches acted on without confirmation", not_available(
            "facetrail records no action taken on a match outside it (only exports, counted above)")),
        Table("refusals_by_kind", "Refused attempts by action and reason code",
              (("attempted", "attempted action"), ("outcome", "reason code"), ("refusals", "refusals")),
              tuple({"attempted": r.attempted, "outcome": r.outcome, "refusals": p.count(int(r.refusals))}
                    for r in counts.refusals.itertuples()), empty="no refusal in this period"),
        Table("thresholds", "Thresholds used (cosine distance; larger is looser)",
              (("action", "action"), ("gallery", "gallery"), ("threshold", "threshold"), ("source", "source"),
               ("policy_threshold", "calibrated default now"), ("looser", "looser than default"), ("uses", "uses")),
              tuple(thresholds), empty="no query in this period",
              note="'user': named by the operator; 'calibrated': the deployment's default at the time."),
        Table("repeated_subjects_list", f"Subjects returned by {repeated} or more searches"
              + (" (pseudonymised)" if p.public else ""), (("subject", "subject"), ("searches", "searches")),
              tuple({"subject": p.subject(r.subject_id), "searches": p.count(int(r.searches))}
                    for r in counts.repeated_subjects.itertuples()), empty="none in this period"),
    ]
    return blocks


def period_text(since: dt.date, until: dt.date, counts: LogCounts) -> Text:
    """One sentence on what the counts cover."""
    return Text(f"Counts cover records that started from {since.isoformat()} to {until.isoformat()} inclusive (UTC), "
                f"among records 1 to {counts.tree_size} of the audit log (the state verified and checkpointed in "
                "the integrity section).")


def finite(value: Any) -> Any:
    """``None`` for NaN/inf (JSON has no NaN), the value otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
