"""Assemble a report: the log state, the counts, the evaluations and the deployer's file into a template's sections.

:func:`build_report` is the one way a :class:`~audit.reports.model.Report` is made (the CLI,
the dashboard page and the tests call it through :func:`audit.reports.generate.generate_report`,
which records it). Order: verify the log and pin its state (:mod:`audit.reports.integrity`),
count records ``1..tree_size`` (:mod:`audit.reports.query`), read the evaluations, then fill
each section of the template (:mod:`audit.reports.templates`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from audit.evaluation.reviewers import reviewer_rates
from audit.evaluation.store import EvaluationStore
from audit.reports.accuracy import accuracy_blocks
from audit.reports.config import SCHEMA, ReportConfig
from audit.reports.integrity import LogState, pin_log_state
from audit.reports.model import Block, Fact, Facts, Missing, Report, Section, Table, Text, not_available
from audit.reports.privacy import Privacy
from audit.reports.query import MATCH_LIST, LogCounts, count_log
from audit.reports.templates import TEMPLATE_TITLES, TEMPLATES
from audit.reports.usage import ThresholdPolicy, anomaly_blocks, period_text, review_blocks, usage_blocks
from audit.trail.log import AuditLog
from audit.trail.records import utc_now_iso
from core.thresholds import ThresholdStore

__all__ = ["ReportRequest", "build_report"]


@dataclass(frozen=True)
class ReportRequest:
    """What report to build."""

    since: dt.date
    """First day of the period (UTC)."""
    until: dt.date
    """Last day of the period, inclusive (UTC)."""
    template: str
    """A key of :data:`audit.reports.templates.TEMPLATES`."""
    config: ReportConfig
    """The deployer's ``report.toml``."""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown report template {self.template!r}; choose one of {', '.join(TEMPLATES)}")
        if self.until < self.since:
            raise ValueError(f"the period ends ({self.until}) before it starts ({self.since})")

    @property
    def bounds(self) -> tuple[str, str]:
        """``since <= started_at < until`` as UTC ISO strings (``until`` is the day after the last)."""
        return self.since.isoformat(), (self.until + dt.timedelta(days=1)).isoformat()


@dataclass
class _Context:
    log: AuditLog
    request: ReportRequest
    privacy: Privacy
    state: LogState
    counts: LogCounts
    evaluations: EvaluationStore

    def model_config(self, seq: int) -> dict[str, Any] | None:
        return self.log.get(seq).record.model_config


def _toml_blocks(config: ReportConfig, keys: tuple[str, ...]) -> list[Block]:
    facts: list[Fact] = []
    out: list[Block] = []
    for key in keys:
        fields = {k.split("[].")[1]: v for k, v in SCHEMA.items() if k.startswith(key + "[].")}
        value = config.get(key)
        label = SCHEMA[key][1] if key in SCHEMA else next(iter(fields.values()))[1]
        if fields:
            if not value:
                out.append(Missing(key, key.split(".")[-1], f"missing from report.toml: {key}"))
            else:
                out.append(Table(key, key.replace(".", ": ").replace("_", " "),
                                 tuple((f, f) for f in fields), tuple({f: item.get(f, "(not given)") for f in fields}
                                                                      for item in value)))
        elif value is None or value == "" or value == ():
            out.append(Missing(key, label, f"missing from report.toml: {key}"))
        else:
            facts.append(Fact(key, label, ", ".join(value) if isinstance(value, tuple) else value))
    return ([Facts("toml_" + "_".join(k.replace(".", "_") for k in keys), tuple(facts))] if facts else []) + out


def _integrity(ctx: _Context) -> list[Block]:
    s, v = ctx.state, ctx.state.verify
    cp = s.checkpoint or {}
    fault = v.get("fault") or {}
    facts = [
        Fact("verified", "the log verifies (every record, hash and checkpoint recomputed)", "yes" if s.verified else "NO"),
        Fact("records_verified", "records verified", v.get("records")),
        Fact("checkpoints_checked", "checkpoints checked", v.get("checkpoints")),
        Fact("tree_size", "records this report counts (tree size)", s.tree_size),
        Fact("root", "Merkle root of those records (RFC 6962, hex)", s.root or "no checkpoint"),
        Fact("checkpoint_seq", "signed checkpoint at record", cp.get("seq", "none")),
        Fact("origin", "log origin (first line of its checkpoints)", cp.get("origin", "no checkpoint")),
        Fact("signing_key", "the log's signing key (verifier key)", ctx.log.vkey()),
        Fact("witnessed", "records covered by a witness cosignature", v.get("witnessed", 0)),
    ]
    blocks: list[Block] = [Facts("integrity_state", tuple(facts), "Verification and checkpoint")]
    if not s.verified:
        blocks.append(Text(f"The audit log FAILS verification at record {fault.get('seq')} ({fault.get('kind')}): "
                           f"{fault.get('detail') or 'a stored record differs from what was chained and signed'}. "
                           "This report's numbers were counted from the stored records as they are, including "
                           "records that do not verify: do not rely on them until the fault is explained."))
    if "note" in cp:
        blocks.append(Text("Checkpoint (signed note, as a verifier reads it):\n" + str(cp["note"])))
    if isinstance(s.cosignatures, str):
        blocks.append(Missing("cosignatures", "witness cosignatures", s.cosignatures))
    else:
        blocks.append(Table("cosignatures", "Witness cosignatures", tuple((k, k) for k in s.cosignatures[0]),
                            tuple(s.cosignatures)))
    blocks.append(Text(f"To check: the checkpoint above signs the Merkle root of records 1 to {s.tree_size} with the "
                       "log's key (`facetrail audit public-key`); `facetrail audit verify --checkpoint FILE` with this "
                       "note saved as FILE confirms that the log still contains exactly that tree, so these counts "
                       "come from that state of the log."))
    return blocks


def _configurations(ctx: _Context) -> list[Block]:
    rows = tuple({"model": c.model, "detector": c.detector, "alignment": c.alignment,
                  "embedding_key": c.embedding_key, "uses": ctx.privacy.count(int(c.uses))}
                 for c in ctx.counts.configs.itertuples())
    try:
        version = metadata.version("facetrail")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed as a package)"
    return [Facts("software", (Fact("facetrail", "facetrail version", version),), "Software"),
            Table("configurations", "Model configurations in use in the period",
                  (("model", "model"), ("detector", "detector"), ("alignment", "alignment"),
                   ("embedding_key", "embedding key"), ("uses", "uses")), rows, empty="none in this period")]


def _galleries(ctx: _Context) -> list[Block]:
    g = ctx.counts.gallery_sizes
    rows = []
    for name in sorted({x for x in g["gallery"] if isinstance(x, str)}):
        sel = g[g["gallery"] == name]
        rows.append({"gallery": name, "smallest": int(sel["gallery_size"].min()),
                     "largest": int(sel["gallery_size"].max()), "searches": ctx.privacy.count(int(sel["searches"].sum()))})
    return [Table("galleries", "Reference databases (galleries) searched", (("gallery", "gallery"),
                  ("smallest", "smallest size (faces)"), ("largest", "largest size"), ("searches", "searches")),
                  tuple(rows), empty="no search in this period",
                  note="Records keep each probe's SHA-256, never the image; candidates are gallery subject ids.")]


def _uses(ctx: _Context) -> list[Block]:
    c, p = ctx.counts, ctx.privacy
    if p.public:
        return [Missing("uses_list", "each use with a match", "not in the public version: per-use records "
                        "identify cases (the authorities' version lists them)"),
                Facts("uses_count", (Fact("queries_with_candidates", "queries with candidates", p.count(c.match_count)),))]
    rows = tuple({"seq": int(r.seq), "action": r.action, "started_at": r.started_at, "ended_at": r.ended_at,
                  "gallery": r.gallery if isinstance(r.gallery, str) else "(none)",
                  "fingerprint": r.fingerprint if isinstance(r.fingerprint, str) else "(none)",
                  "probe_sha256": r.probe_sha256, "case_ref": r.case_ref if isinstance(r.case_ref, str) else "(none)",
                  "operator": r.operator, "reviewers": r.reviewers if isinstance(r.reviewers, str) else "none yet"}
                 for r in c.matches.itertuples())
    shown = f"the first {MATCH_LIST} of {c.match_count}" if c.match_count > MATCH_LIST else f"all {c.match_count}"
    return [Table("uses_list", f"Queries with candidates ({shown}; the full list is a verifiable excerpt: "
                  "`facetrail audit excerpt`)",
                  (("seq", "record"), ("action", "action"), ("started_at", "started (UTC)"), ("ended_at", "ended"),
                   ("gallery", "reference database"), ("fingerprint", "its fingerprint then"),
                   ("probe_sha256", "input (probe SHA-256)"), ("case_ref", "case"), ("operator", "operator"),
                   ("reviewers", "who verified the result")), rows, empty="no query with candidates in this period")]


def _authorisation(ctx: _Context) -> list[Block]:
    usage, p = ctx.counts.usage, ctx.privacy
    total = int(usage["uses"].sum())
    without = ctx.counts.anomalies["queries_without_case"]
    return [Facts("authorisation_counts", (
        Fact("uses_with_case", "uses with a case reference (documented in a case file)", p.count(total - without)),
        Fact("uses_without_case", "uses without a case reference", p.count(without)),
    )), Missing("authorisations", "authorisation of each use within 48 hours", not_available(
        "per-use authorisation records (no record says who authorised a use, or when)"))]


def _exports(ctx: _Context) -> list[Block]:
    e, p = ctx.counts.exports, ctx.privacy
    return [Table("exports", "Exports of the audit log in the period",
                  (("seq", "record"), ("format", "format"), ("unconfirmed", "unconfirmed candidates it carried")),
                  tuple({"seq": int(r.seq), "format": r.format if isinstance(r.format, str) else "?",
                         "unconfirmed": p.count(int(r.unconfirmed))} for r in e.itertuples()),
                  empty="no export in this period")]


def _effectiveness(ctx: _Context) -> list[Block]:
    items, p = ctx.counts.items, ctx.privacy
    confirmed = int((items["status"] == "confirmed").sum())
    turned_down = int(items["status"].isin(["rejected", "vetoed"]).sum())
    decided = confirmed + turned_down
    share = round(100.0 * confirmed / decided, 1) if decided else None
    return [Facts("effectiveness_counts", (
        Fact("confirmed", "candidates confirmed by two reviewers", p.count(confirmed)),
        Fact("turned_down", "candidates rejected or vetoed", p.count(turned_down)),
        Fact("share_confirmed", "share of decided candidates confirmed", "no decision" if share is None else share,
             "" if share is None else "%"),
    ))]


def _reviewer_rates(ctx: _Context) -> list[Block]:
    rates, p = reviewer_rates(ctx.log), ctx.privacy
    if not rates.reviewers:
        return [Missing("reviewer_rates", "reviewers' own error rates", not_available(
            "reviewers' error rates from blind review with fillers: no blind review batch has been revealed yet "
            "(`facetrail blind open` ... `facetrail blind reveal`)"))]
    rows = tuple({"reviewer": p.operator(r.reviewer), "decisions": p.count(r.decisions),
                  "fillers": p.count(r.filler_decisions), "false_confirms": p.count(r.false_confirms),
                  "false_confirm_rate": r.false_confirm_rate, "fcr_lo": r.false_confirm_interval[0],
                  "fcr_hi": r.false_confirm_interval[1], "agreement_rate": r.agreement_rate,
                  "median_seconds": r.median_seconds} for r in rates.reviewers)
    return [Table("reviewer_rates", "Reviewers' own error rates (blind review with fillers)"
                  + (" (pseudonymised)" if p.public else ""),
                  (("reviewer", "reviewer"), ("decisions", "decisions"), ("fillers", "on fillers"),
                   ("false_confirms", "fillers confirmed"), ("false_confirm_rate", "false-confirm rate"),
                   ("fcr_lo", f"{rates.confidence:.0%} low"), ("fcr_hi", f"{rates.confidence:.0%} high"),
                   ("agreement_rate", "agreement with other reviewers"), ("median_seconds", "median s per decision")),
                  rows, note=f"Over the {len(rates.batches)} revealed blind batch(es) of the whole log (not only "
                             "this period); fillers are known non-matches, so confirming one is an error.")]


def _retention(ctx: _Context) -> list[Block]:
    a, p = ctx.counts.anomalies, ctx.privacy
    return [Facts("retention_counts", (
        Fact("retention_runs", "retention runs (every rule applied, `facetrail retention run`)",
             p.count(a["retention_runs"])),
        Fact("evidence_records", "review evidence destroyed or kept past its date (records)",
             p.count(a["evidence_records"])),
        Fact("deletions", "subjects deleted from a gallery (their keys destroyed)", p.count(a["deletions"])),
        Fact("gallery_drops", "galleries dropped", p.count(a["gallery_drops"])),
    ), "Retention and erasure in the period (from the log)"),
        Missing("erasure_receipts", "signed erasure receipts", not_available(
            "signed receipts handed to the people whose data was erased (issue 11, privacy that holds)"))]


def _summary(ctx: _Context) -> list[Block]:
    return [Facts("integrity_summary", (Fact("verified", "the audit log verifies",
                                             "yes" if ctx.state.verified else "NO"),))]


_PARTS: dict[str, Callable[[_Context], list[Block]]] = {
    "period": lambda c: [period_text(c.request.since, c.request.until, c.counts)],
    "usage": lambda c: usage_blocks(c.counts, c.privacy),
    "review": lambda c: review_blocks(c.counts, c.privacy),
    "anomalies": lambda c: anomaly_blocks(c.counts, c.request.config, ThresholdPolicy(ThresholdStore(c.log.db),
                                                                                      c.model_config), c.privacy),
    "accuracy": lambda c: accuracy_blocks(c.evaluations, c.counts, c.privacy),
    "integrity": _integrity,
    "configurations": _configurations,
    "galleries": _galleries,
    "uses": _uses,
    "authorisation": _authorisation,
    "exports": _exports,
    "effectiveness": _effectiveness,
    "integrity_summary": _summary,
    "reviewer_rates": _reviewer_rates,
    "retention": _retention,
}


def _section(ctx: _Context, spec: tuple[str, str, tuple[str, ...], tuple[Any, ...]]) -> Section:
    sid, title, refs, parts = spec
    blocks: list[Block] = []
    for part in parts:
        if isinstance(part, tuple) and part[0] == "toml":
            blocks += _toml_blocks(ctx.request.config, part[1])
        elif isinstance(part, tuple) and part[0] == "waits":
            blocks.append(Missing(f"{sid}_waits", part[1].split(" (")[0], not_available(part[1])))
        else:
            blocks += _PARTS[part](ctx)
    return Section(sid, title, refs, tuple(blocks))


def build_report(log: AuditLog, request: ReportRequest, privacy: Privacy, evaluations: EvaluationStore) -> Report:
    """Verify the log, pin its state, count, and fill the template's sections (see the module docstring).

    Raises
    ------
    AuditError
        The log kept growing while it was verified.
    """
    state = pin_log_state(log)
    since, until = request.bounds
    counts = count_log(log.db, state.tree_size, since, until, repeated=request.config.repeated_subject_searches)
    ctx = _Context(log, request, privacy, state, counts, evaluations)
    sections = tuple(_section(ctx, spec) for spec in TEMPLATES[request.template])
    fault = state.verify.get("fault") or {}
    warnings = () if state.verified else (
        f"The audit log FAILS verification at record {fault.get('seq')} ({fault.get('kind')}): see the integrity "
        "section before relying on any number here.",)
    name = request.config.get("system.name")
    about = {
        "period": {"from": request.since.isoformat(), "to": request.until.isoformat(), "timezone": "UTC"},
        "generated_at": utc_now_iso(),
        "deployment": name if name else "missing from report.toml: system.name",
        "tree_size": state.tree_size,
        "root": state.root,
        "verified": state.verified,
        "records_in_period": counts.records_in_period,
        "report_toml": request.config.source,
        "privacy": privacy.statement(),
    }
    return Report(TEMPLATE_TITLES[request.template], request.template, about, sections, warnings)
