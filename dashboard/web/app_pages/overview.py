"""Overview: who searched, why, with what outcome; matches awaiting review; chain status."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard.web.app_pages.common import chain_status, chart, match_statuses, require, runtime
from dashboard.web.views import QUERY_ACTIONS, records_frame

require("overview")
st.title("Overview")

entries = runtime().log.list()
if not entries:
    st.info(
        "The audit log is empty. Searches made on the Search page or with `facetrail search` appear here; "
        "`facetrail demo --no-serve` builds a complete demo scene."
    )
    st.stop()

records = records_frame(entries)
queries = records[records["action"].isin(QUERY_ACTIONS)]
searches = queries[queries["action"] == "search"]
decided = searches[searches["outcome"].isin(["ok", "no_match"])]
statuses = match_statuses(queries.loc[queries["outcome"] == "ok", "seq"].tolist())
candidate_states = pd.DataFrame([c for s in statuses for c in s["candidates"]], columns=["status"])
chain = chain_status()

c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Queries", len(queries), help="Searches (1:N) and verifications (1:1) recorded")
c2.metric(
    "Match rate",
    f"{(decided['outcome'] == 'ok').mean():.0%}" if len(decided) else "–",
    help="Share of searches that returned at least one candidate within the threshold",
)
c3.metric("Pending review", int((candidate_states["status"] == "pending").sum()),
          help="Need two reviewers (not the operator) to confirm; one rejection vetoes")
c4.metric("Refused attempts", int((records["action"] == "refused").sum()),
          help="Queries or reviews refused (no purpose, self-review ...), each recorded")
c5.metric("Audit chain", "intact" if chain["ok"] else "FAULT", help=f"{chain['records']} records verified")
if not chain["ok"]:
    st.error(f"The audit log fails verification: {chain['fault']}. Open the Integrity page.")

if queries.empty:
    st.info("No searches or verifications yet.")
    st.stop()

span = queries["time"].max() - queries["time"].min()
freq = "10s" if span < pd.Timedelta(minutes=15) else "min" if span < pd.Timedelta(hours=6) else (
    "h" if span < pd.Timedelta(days=7) else "D")
over_time = (queries.set_index("time").groupby([pd.Grouper(freq=freq), "outcome"]).size()
             .rename("queries").reset_index())
by_op = queries.groupby(["operator", "outcome"], dropna=False).size().rename("queries").reset_index()
by_purpose = queries.groupby(["purpose", "outcome"], dropna=False).size().rename("queries").reset_index()
by_purpose["purpose"] = by_purpose["purpose"].fillna("(none)").str.slice(0, 45)

left, right = st.columns(2)
left.subheader("Queries over time")
chart(px.bar(over_time, x="time", y="queries", color="outcome", height=300), left)
right.subheader("By operator")
chart(px.bar(by_op, x="operator", y="queries", color="outcome", height=300), right)

left, right = st.columns(2)
left.subheader("By purpose")
chart(px.bar(by_purpose, y="purpose", x="queries", color="outcome", orientation="h", height=300), left)
right.subheader("Review status of candidates")
if candidate_states.empty:
    right.info("No candidates to review yet.")
else:
    counts = candidate_states["status"].value_counts().rename_axis("status").rename("candidates").reset_index()
    chart(px.bar(counts, x="status", y="candidates", color="status", height=300,
                 color_discrete_map={"confirmed": "#2e7d32", "pending": "#8a5a00", "rejected": "#c62828"}), right)
st.caption(
    "Every number on this page is read from the audit log; the chain status is a full recomputation of its "
    "hash chain and signed checkpoints."
)
