"""Match log (reviewers, auditors): filter the audit log, open a query, review its candidates."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from audit import AuditContext, AuditFilter, normalize_name, review_evidence, submit_review
from dashboard.web.app_pages.common import ERRORS, evaluations, require, runtime, show_time, time_column
from dashboard.web.app_pages.log_filters import filtered_record
from dashboard.web.app_pages.review_screen import (
    ReviewChoice,
    close_queue_item,
    decision_form,
    fresh_for,
    queue_panel,
    reverse_form,
    show_error_context,
    show_photos,
)
from dashboard.web.views import (
    QUERY_ACTIONS,
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

picked = queue_panel(log, user) if user.can("review") else None  # pending for me, oldest first
if picked is not None:
    seq = picked.seq
    st.text(f"Opened from your queue: record #{picked.seq}.")
    if st.button("Close it and open records from the table", key="matchlog_close_queued"):
        close_queue_item()
        st.rerun()
else:
    seq = filtered_record(log, user)  # filters, table, export and links: log_filters
entry = log.get(int(seq))
record = entry.record

st.subheader(f"Record #{record.seq}: {record.action} → {record.outcome}")
# what the record says is shown as text, never as markup (a purpose may hold markdown or links)
st.dataframe(pd.DataFrame([
    {"field": "Operator", "value": record.operator or "–"},
    {"field": "Purpose", "value": record.purpose or "–"},
    {"field": "Case", "value": record.case_ref or "–"},
    {"field": "Legal basis", "value": record.legal_basis or "–"},
    {"field": "Gallery", "value": record.gallery.name if record.gallery else "–"},
    {"field": "Gallery size", "value": str(record.gallery.size) if record.gallery else "–"},
    {"field": "Faces in probe", "value": str(record.faces_found) if record.faces_found is not None else "–"},
    *([{"field": "Probe's group", "value": str(record.details.get("probe_group") or "not stated")}]
      if record.action == "search" else []),  # stated by the operator at search time, never inferred
    {"field": "Latency", "value": f"{record.latency_ms} ms" if record.latency_ms else "–"},
    {"field": "Entry hash", "value": entry.entry_hash.hex()[:16] + "…"},
    {"field": "Previous", "value": entry.prev_hash.hex()[:16] + "…"},
]), hide_index=True)
show_time("Started", record.started_at)  # local, UTC on hover
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
    elif record.action == "search":
        frame = status_frame([status])
        scores = {c.face_id: c.similarity for c in record.candidates}
        frame["similarity"] = frame["face_id"].map(scores)
        st.dataframe(frame.drop(columns=["seq", "operator"]), hide_index=True)
        labels = {f"#{c.rank} {c.subject_id} (similarity {c.similarity})": c.face_id for c in record.candidates}
    else:
        st.dataframe(status_frame([status]).drop(columns=["seq", "operator"]), hide_index=True)
        labels = {"the verified pair": None}
    names = {named: label for label, named in labels.items()}
    reviews = [e.record for e in log.list(AuditFilter(target_seq=record.seq)) if e.record.action != "read_evidence"]
    if reviews:
        st.markdown("**Reviews and refusals recorded for this query**")
        st.dataframe(pd.DataFrame([{
            "seq": r.seq, "time": pd.Timestamp(r.started_at), "action": r.action, "outcome": r.outcome, "reviewer": r.reviewer,
            "candidate": names.get(r.target_face_id, r.target_face_id or "–"), "decision": r.decision,
            "reason": r.details.get("reason_code"),
            "reversal of": (r.details.get("reversal") or {}).get("reverses_seq")
            if isinstance(r.details.get("reversal"), dict) else None,
        } for r in reviews]), hide_index=True, column_config={"time": time_column()})

    order = list(labels)
    start_at = order.index(names[picked.candidate]) if picked is not None and picked.candidate in names else 0
    choice = st.selectbox("Candidate to review", order, index=start_at, key="matchlog_candidate")
    named = labels[choice]
    fresh_for("matchlog", (record.seq, named))  # a choice made for one candidate never carries to another
    session = runtime().session(AuditContext(), user)
    try:
        evidence = review_evidence(session, runtime().galleries, record.seq, named, evaluations=evaluations())
    except ERRORS as err:
        st.error(f"Evidence refused: {err}")
        st.stop()
    show_photos(evidence.probe, evidence.probe_note, evidence.reference, evidence.reference_note)
    show_error_context(evidence)

    if user.can("review"):
        mine = next((c for c in status.candidates if c.candidate_id == named), None)
        standing = (None if mine is None else "confirm" if user.name in mine.confirmations
                    else "reject" if user.name in mine.rejections else None)

        def submit(choice: ReviewChoice, *, reverse: bool = False) -> None:
            """Record the review (the rules are audit's: nothing preselected, a reason, no second review)."""
            try:
                done = submit_review(session, record.seq, choice.decision, choice.reason, note=choice.note,
                                     face_id=named, reverse=reverse)
            except ERRORS as err:
                st.error(f"Review refused: {err}")
            else:
                what = "Reversal" if reverse else "Review"
                st.session_state["matchlog_flash"] = f"{what} recorded as audit record #{done.seq}."
                st.rerun()

        if record.operator is not None and normalize_name(record.operator) == user.name:
            st.info("You ran this query, so you cannot review it (two-person rule).")
        if standing is not None:
            st.info(f"You already decided '{standing}' on this candidate. A second review is refused; to change "
                    "your mind, reverse your decision (recorded as a reversal).")
            reverse_form("matchlog", standing, lambda c: submit(c, reverse=True))
        else:
            decision_form("matchlog", submit)
elif record.action == "review":
    st.info(f"A review of query #{record.target_seq}: {record.reviewer} chose to {record.decision}.")
