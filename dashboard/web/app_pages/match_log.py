"""Match log (reviewers, auditors): filter the audit log, open a query, review its candidates."""

from __future__ import annotations

import json

import streamlit as st

from audit import AuditContext, AuditFilter, normalize_name
from dashboard.web.app_pages.common import ERRORS, require, runtime
from dashboard.web.app_pages.log_filters import filtered_record
from dashboard.web.views import (
    QUERY_ACTIONS,
    records_frame,
    status_frame,
    video_candidates_frame,
    video_tracks_frame,
)

user = require("read_log")
log = runtime().log
st.title("Match log")
st.caption(
    "Two-person rule: a candidate counts as **confirmed** only when two different reviewers, neither of them the "
    "operator who ran the query, confirm it. One rejection vetoes it. The operator's own review is refused and "
    "recorded."
)

seq = filtered_record(log, user)  # filters, table, export and links: log_filters
entry = log.get(int(seq))
record = entry.record

st.subheader(f"Record #{record.seq}: {record.action} → {record.outcome}")
c1, c2, c3 = st.columns(3)
c1.markdown(f"**Operator** {record.operator or '–'}  \n**Purpose** {record.purpose or '–'}  \n"
            f"**Case** {record.case_ref or '–'}  \n**Legal basis** {record.legal_basis or '–'}")
c2.markdown(f"**Gallery** {record.gallery.name if record.gallery else '–'}  \n"
            f"**Gallery size** {record.gallery.size if record.gallery else '–'}  \n"
            f"**Faces in probe** {record.faces_found if record.faces_found is not None else '–'}  \n"
            f"**Started** {record.started_at}")
c3.markdown(f"**Entry hash** `{entry.entry_hash.hex()[:16]}…`  \n**Previous** `{entry.prev_hash.hex()[:16]}…`  \n"
            f"**Latency** {record.latency_ms or '–'} ms")
flag = record.details.get("threshold_policy")
if isinstance(flag, dict) and flag.get("status") in ("looser", "beyond_limit"):
    # user-supplied text (the reason) is shown as text, never as markup
    st.warning(f"Threshold {flag.get('threshold')} is looser than the deployment's policy (loosest "
               f"{flag.get('loosest')}, hard limit {flag.get('hard_limit')}). The operator's reason and the warning "
               "they were shown are below.", icon=":material/warning:")
    st.text(f"Reason given: {flag.get('reason') or '(none)'}")
    st.text(f"Warning shown: {flag.get('warning') or '(none)'}")
elif isinstance(flag, dict):
    st.caption(f"Threshold {flag.get('threshold')}: within the deployment's policy (loosest {flag.get('loosest')}).")
with st.expander("Everything recorded (canonical record)"):
    st.code(json.dumps(entry.to_dict(), indent=2, sort_keys=True, default=str), language=None)  # AA contrast

flash = st.session_state.pop("matchlog_flash", None)
if flash:
    st.success(flash)

if record.action in QUERY_ACTIONS and record.outcome == "ok":
    st.markdown("**Candidates and their review status**")
    status = log.match_status(record.seq)
    if record.action == "search_video":  # a lead per track: named "<track>:<face id>" in a review
        st.markdown("**Tracks of the video** (times in seconds from the start of the footage)")
        st.dataframe(video_tracks_frame(record, status).drop(columns=["track", "chart_label"]), hide_index=True)
        st.dataframe(video_candidates_frame(record, status), hide_index=True,
                     column_config={"similarity": st.column_config.NumberColumn(format="%.4f"),
                                    "distance": st.column_config.NumberColumn(format="%.4f")})
        labels = {f"track {c.track_id} · #{c.rank} {c.subject_id} (similarity {r.similarity})": c.candidate_id
                  for c, r in zip(status.candidates, record.candidates, strict=True)}
    else:
        frame = status_frame([status])
        scores = {c.face_id: c.similarity for c in record.candidates}
        frame["similarity"] = frame["face_id"].map(scores)
        st.dataframe(frame.drop(columns=["seq", "operator"]), hide_index=True)
        labels = {f"#{c.rank} {c.subject_id} (similarity {c.similarity})": c.face_id for c in record.candidates}
    reviews = records_frame(log.list(AuditFilter(target_seq=record.seq)))
    if not reviews.empty:
        st.markdown("**Reviews and refusals recorded for this query**")
        st.dataframe(reviews[["seq", "time", "action", "outcome", "reviewer", "decision"]], hide_index=True)

    if user.can("review"):
        if record.operator is not None and normalize_name(record.operator) == user.name:
            st.info("You ran this query, so you cannot review it (two-person rule).")
        with st.form("matchlog_review_form"):
            choice = st.selectbox("Candidate", list(labels) or ["(the verified pair)"], key="matchlog_candidate")
            decision = st.radio("Decision", ["confirm", "reject"], horizontal=True, key="matchlog_decision")
            note = st.text_input("Note", key="matchlog_note")
            if st.form_submit_button("Record review", type="primary"):
                try:
                    review = runtime().session(AuditContext(), user).review(
                        record.seq, decision, note=note.strip() or None, face_id=labels.get(choice))
                except ERRORS as err:
                    st.error(f"Review refused: {err}")
                else:
                    st.session_state["matchlog_flash"] = f"Review recorded as audit record #{review.seq}."
                    st.rerun()
elif record.action == "review":
    st.info(f"A review of query #{record.target_seq}: {record.reviewer} chose to {record.decision}.")
