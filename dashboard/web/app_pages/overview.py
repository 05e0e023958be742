"""Overview: who searched whom, against which gallery, what came back, who confirmed, what waits, how often wrong.

The counting is :func:`audit.overview_counts` (the same review rule the match log filters
with); this page only draws it. Every tile and bar opens the Match log filtered to its
records (query parameters: operator, gallery, outcome, review, looser, since, until), for
roles that may read the log; every chart has its numbers as a table under it.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from audit import (
    Actor,
    DeployedRates,
    OverviewCounts,
    count_text,
    deployed_rates,
    overview_counts,
    percent_text,
    rate_text,
)
from dashboard.web.app_pages.common import (
    PLOT_CONFIG,
    chain_status,
    db_path,
    evaluations,
    readable,
    require,
    runtime,
)
from dashboard.web.views import plain

MATCH_LOG = "app_pages/match_log.py"
_OUTCOME_LABELS = {"with_candidates": "returned a candidate", "without_candidates": "no candidate",
                   "other": "no answer (no face, failure)"}


@st.cache_data(ttl=10, show_spinner=False)
def _counts(path: str, size: int, today: dt.date) -> tuple[OverviewCounts, tuple[DeployedRates, ...]]:
    """Count the Overview and read the deployed configurations' rates, cached while the log's size is unchanged."""
    log = runtime().log
    return overview_counts(log, today), deployed_rates([e.record for e in log.list()], evaluations())


def _link(user: Actor, label: str, params: dict[str, str], where: Any = None) -> None:
    """Show a link to the Match log filtered by ``params`` (for roles that may read it)."""
    if user.can("read_log"):
        (where or st).page_link(MATCH_LOG, label=plain(label), icon=":material/open_in_new:", query_params=params)


def _bars(frame: pd.DataFrame, y: str, key: str, user: Actor, title: str) -> None:
    """Stacked bars of search outcomes per ``y``; clicking a bar opens its records in the Match log."""
    names = {html.escape(str(v)): str(v) for v in frame[y]}  # plotly reads tags in labels: names from data escaped
    long = frame[[y, *_OUTCOME_LABELS]].melt(id_vars=[y], var_name="outcome", value_name="searches")
    long["outcome"] = long["outcome"].map(_OUTCOME_LABELS)
    long[y] = long[y].map(lambda v: html.escape(str(v)))
    fig = px.bar(long, y=y, x="searches", color="outcome", orientation="h", title=title,
                 height=max(260, 160 + 40 * len(frame)))
    fig.update_layout(yaxis_title=None, yaxis={"type": "category", "autorange": "reversed"},  # the table's order
                      legend_title_text=None)
    alt = "; ".join(f"{r[y]}: {r['searches']} searches, {r['with_candidates']} with a candidate"
                    for _, r in frame.iterrows())
    can_open = user.can("read_log")
    event = st.plotly_chart(readable(fig), config=PLOT_CONFIG, key=key, on_select="rerun" if can_open else "ignore",
                            selection_mode="points", alt=f"{title}: {alt}")
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if can_open and points:
        del st.session_state[key]  # the click is spent: coming back to the Overview does not follow it again
        st.switch_page(MATCH_LOG, query_params={y: names.get(str(points[0]["y"]), str(points[0]["y"]))})
    shown = frame[[y, "searches", "with_candidates", "without_candidates", "other"]].rename(columns={
        y: y.capitalize(), "searches": "Searches", "with_candidates": "Returned a candidate",
        "without_candidates": "No candidate", "other": "No answer"})
    st.dataframe(shown, hide_index=True)
    for _, r in frame.head(12).iterrows():
        _link(user, f"{r[y]}: {count_text(r['searches'], 'search')}", {y: str(r[y])})


user = require("overview")
st.title("Overview")
log = runtime().log
size = log.size()
if size == 0:
    st.info(
        "The audit log is empty. Searches made on the Search page or with `facetrail search` appear here; "
        "`facetrail demo --no-serve` builds a complete demo scene."
    )
    st.stop()

counts, deployed = _counts(db_path(), size, dt.datetime.now(dt.UTC).date())
chain = chain_status()
st.caption({"reviewer": "As a reviewer: what waits for review first, then who searched and with what outcome.",
            "operator": "As an operator: what searches returned and what came of them (the match log is for "
                        "reviewers and auditors).",
            }.get(user.role, "Every number is read from the signed audit log; open any of them as records."))

share = counts.candidate_share
c1, c2, c3 = st.columns(3)
c1.metric("Searches", count_text(counts.searches),
          help=f"1:N searches recorded (plus {counts.verifications} 1:1 verifications)")
c1.caption(f"plus {count_text(counts.verifications, 'verification')}")
c2.metric("Share returning a candidate", percent_text(share) if share is not None else "–",
          help="Searches that returned at least one candidate within the threshold, of those that ran to an "
               "answer. A candidate is a lead for two reviewers, not a match: this is not a match rate.")
c2.caption(f"{counts.with_candidates} of {count_text(counts.with_candidates + counts.without_candidates, 'search')}"
           " returned a candidate (a lead for review, not a match)")
c3.metric("Looser than policy", count_text(counts.looser),
          help="Searches run at a threshold looser than the deployment's policy, each with a written reason")
c3.caption(f"{count_text(counts.refused, 'refused attempt')} recorded")
c4, c5, c6 = st.columns(3)
c4.metric("Searches pending review", count_text(counts.pending_queries),
          help="Searches (and verifications) with at least one candidate awaiting the two-person rule")
c4.caption(f"{count_text(counts.pending_candidates, 'candidate')} waiting")
c5.metric("Searches confirmed", count_text(counts.confirmed_queries),
          help="Searches with a candidate confirmed by two reviewers, neither the operator")
c5.caption(f"{count_text(counts.confirmed_candidates, 'candidate')} confirmed, {counts.rejected_candidates} rejected")
c6.metric("Audit chain", "intact" if chain["ok"] else "FAULT", help=f"{chain['records']} records verified")
c6.caption(f"{count_text(int(chain['records']), 'record')} verified")
for where, label, key in ((c2, "With a candidate", "with_candidates"), (c4, "Pending", "pending"),
                          (c5, "Confirmed", "confirmed"), (c5, "Rejected", "rejected"), (c3, "Looser", "looser")):
    _link(user, label, counts.links[key], where)
_link(user, "No candidate", counts.links["without_candidates"], c2)
if not chain["ok"]:
    st.error(f"The audit log fails verification: {chain['fault']}. Open the Integrity page.")


def pending_section() -> None:
    """Pending reviews by age, each band a link to its searches."""
    st.subheader("Pending reviews by age")
    ages = pd.DataFrame(list(counts.pending_by_age))
    st.dataframe(ages[["age", "queries", "candidates"]].rename(columns={
        "age": "Age of the search", "queries": "Searches pending", "candidates": "Candidates pending"}),
        hide_index=True)
    cols = st.columns(len(ages))
    for col, (_, r) in zip(cols, ages.iterrows(), strict=True):
        if r["queries"]:
            _link(user, f"{r['age']}: {r['queries']}", r["link"], col)
    st.caption("Age in whole days (UTC) since the search; a search counts while any of its candidates waits.")


if user.role == "reviewer":
    pending_section()

st.subheader("Who searched, and what came back")
if counts.by_operator:
    _bars(pd.DataFrame(list(counts.by_operator)), "operator", "overview_operators", user, "Searches by operator")
st.subheader("Against which gallery")
if counts.by_gallery:
    galleries = pd.DataFrame(list(counts.by_gallery))
    _bars(galleries, "gallery", "overview_galleries", user, "Searches by gallery")

st.subheader("Who confirmed")
if counts.reviewers:
    st.dataframe(pd.DataFrame(list(counts.reviewers)).rename(columns={
        "reviewer": "Reviewer", "confirmed": "Candidates confirmed", "rejected": "Candidates rejected"}),
        hide_index=True)
    st.caption("Decisions the two-person rule counts (a reviewer's own password session, not the operator's "
               "search); a candidate is confirmed by two reviewers, rejected by one.")
else:
    st.info("No candidate has been reviewed yet.")

if user.role != "reviewer":
    pending_section()

st.subheader("Why: purposes recorded")
if counts.by_purpose:
    st.dataframe(pd.DataFrame(list(counts.by_purpose)).rename(columns={"purpose": "Purpose", "queries": "Queries"}),
                 hide_index=True, column_config={"Purpose": st.column_config.TextColumn(width="large")})

st.subheader("How often it is wrong: the deployed configuration")
if not deployed:
    st.info("No search has run yet, so no configuration is deployed.")
rows = []
for d in deployed:
    rows.append({
        "Gallery": d.gallery, "Faces": d.gallery_size, "Model": d.model or "–",
        "Threshold (cosine distance)": "–" if d.threshold is None else f"{d.threshold:.3f}",
        "Chance of a false candidate per search": "not recorded" if d.expected_fpir is None else (
            "none estimated" if d.expected_fpir == 0 else rate_text(d.expected_fpir)),
        "How that chance was found": d.fpir_method or "–",
        "False-match rate (1:1 pairs)": "not evaluated" if d.fmr is None else rate_text(d.fmr, d.impostor_pairs),
        "Missed-match rate (1:1 pairs)": "not evaluated at this threshold" if d.fnmr is None
        else rate_text(d.fnmr, d.genuine_pairs),
        "Evaluation": (d.evaluation or "none of this configuration")
        + (" (FMR read from its score histogram)" if d.rates_source == "histogram" else ""),
        "Latest search": d.seq,
    })
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    for d in deployed:
        _link(user, f"{d.gallery}: latest search, record {d.seq}", {"record": str(d.seq)})
st.caption("Pairwise rates from the evaluation of the same configuration (model, detector, alignment); per "
           "group on the Demographic performance page. Every number on this page is read from the audit log; "
           "the chain status is a full recomputation of its hash chain and signed checkpoints.")
