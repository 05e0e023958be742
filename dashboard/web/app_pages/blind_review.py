"""Blind review (reviewers: one item at a time, no score, rank or verdict; auditors: batches and reviewers' rates)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit import (
    REASON_CODES,
    AuditContext,
    AuditFilter,
    audited_reviewer_rates,
    blind_batches,
    blind_face_image,
    blind_next,
    blind_probe_image,
    blind_submit,
    open_batch,
    reveal,
)
from dashboard.web.app_pages.common import ERRORS, require, runtime
from dashboard.web.app_pages.review_screen import show_photos

user = require("read_log")
st.title("Blind review")

flash = st.session_state.pop("blind_flash", None)
if flash:
    st.success(flash)

if user.can("review"):
    st.caption("One item at a time: a probe and one face. You are not shown the score, the rank, the case or anyone "
               "else's decision, and some faces are known non-matches. Decide each item on the faces alone and say why "
               "(a reason code, as in the Match log's review); a decision is final.")
    session = runtime().session(AuditContext(), user)
    item = st.session_state.get("blind_item")
    if item is None:
        try:
            item = blind_next(session)
        except ERRORS as err:
            st.error(f"Refused: {err}")
            st.stop()
        st.session_state["blind_item"] = item  # kept across reruns: the time per decision starts when it is served
    if item is None:
        st.info("Nothing to review: no open blind batch has an item for you.")
        st.stop()
    st.subheader(f"Item {item.position} of {item.total}")
    try:
        probe = blind_probe_image(session, runtime().galleries, item.ticket)
    except ERRORS as err:
        st.session_state.pop("blind_item", None)
        st.error(f"Refused: {err}")
        st.stop()
    try:
        face = blind_face_image(session, runtime().galleries, item.ticket)
    except ERRORS as err:
        st.session_state.pop("blind_item", None)
        st.error(f"Refused: {err}")
        st.stop()
    # the review screen's evidence display, in blind mode: the photos only (no score, threshold or rates)
    show_photos(probe, "kept for this review" if probe is not None else
                "not kept for this search, or destroyed when its retention ended",
                face, "the gallery's reference photo" if face is not None else
                "not kept at enrolment, or the subject was erased", reference_label="Face to compare")
    with st.form("blind_form"):
        decision = st.radio("Is the face the same person as the probe?", ["confirm", "reject"], index=None,
                            horizontal=True, key="blind_decision")
        reason = st.selectbox("Reason", REASON_CODES, index=None, placeholder="Choose the reason for your decision",
                              key="blind_reason")
        note = st.text_input("Note (required when the reason is 'other')", key="blind_note")
        if st.form_submit_button("Record decision", type="primary"):
            try:  # no decision or no reason: refused and recorded (blind_submit), the item stays served
                entry = blind_submit(session, item.ticket, decision, reason, note=note.strip() or None)
            except ERRORS as err:
                if decision is not None and reason is not None:  # refused for good (decided, closed): next item
                    st.session_state.pop("blind_item", None)
                st.error(f"Decision refused: {err}")
            else:
                st.session_state.pop("blind_item", None)
                st.session_state["blind_flash"] = f"Decision recorded as audit record #{entry.seq}."
                st.rerun()
    st.stop()

if not user.can("audit_reviewers"):
    st.info("Blind review is for reviewers; auditors open batches and measure reviewers here.")
    st.stop()

session = runtime().session(AuditContext(), user)
log = runtime().log
st.caption("A batch mixes known non-matches (fillers, from a gallery of people who are not the probes) into the "
           "candidates of searches. Reviewers see one item at a time, in an order of their own; which items are "
           "fillers stays sealed until you reveal the batch. Then the two-person rule counts the blind decisions on "
           "real candidates (never on fillers), and each reviewer's false-confirm rate, agreement with the others "
           "and time per decision can be measured.")

try:
    batches = blind_batches(log)
except ERRORS as err:
    st.error(f"Blind batches cannot be read: {err}")
    st.stop()
st.subheader("Batches")
if batches:
    st.dataframe(pd.DataFrame([{
        "batch": b.batch_id, "opened (record)": b.seq, "queries": len(b.queries), "items": len(b.items),
        "fillers": sum(i.filler for i in b.items),
        "filler gallery": b.filler_gallery, "status": "open" if b.revealed_seq is None else "revealed",
    } for b in batches]), hide_index=True)
else:
    st.info("No blind batch yet.")

still_open = [b.batch_id for b in batches if b.revealed_seq is None]
if still_open:
    with st.form("blind_reveal_form"):
        chosen = st.selectbox("Open batch", still_open, key="blind_reveal_batch")
        if st.form_submit_button("Reveal (close the batch and publish its plan)"):
            try:
                entry = reveal(session, chosen)
            except ERRORS as err:
                st.error(f"Refused: {err}")
            else:
                st.session_state["blind_flash"] = f"Batch {chosen} revealed as audit record #{entry.seq}."
                st.rerun()

searches = [e.seq for e in log.list(AuditFilter(action="search")) if e.record.outcome == "ok" and e.record.candidates]
galleries = [g.name for g in runtime().galleries.list()]
with st.expander("Open a batch"):
    with st.form("blind_open_form"):
        queries = st.multiselect("Searches (record seq)", searches, key="blind_open_queries")
        filler_gallery = st.selectbox("Filler gallery", galleries, key="blind_open_fillers")
        share = st.number_input("Share of fillers", min_value=0.0, max_value=0.9, value=0.25, step=0.05,
                                key="blind_open_share")
        match_on = st.text_input("Match fillers on (gallery metadata keys, comma-separated)", key="blind_open_match",
                                 help="A filler shares these with one of its query's candidates, e.g. sex, race")
        if st.form_submit_button("Open batch"):
            try:
                keys = [k.strip() for k in match_on.split(",") if k.strip()]
                entry = open_batch(session, runtime().galleries, queries, filler_gallery or "", filler_share=share,
                                   match_on=keys)
            except ERRORS as err:
                st.error(f"Refused: {err}")
            else:
                st.session_state["blind_flash"] = (f"Batch {entry.record.details['batch_id']} opened as audit record "
                                                   f"#{entry.seq}.")
                st.rerun()

st.subheader("Reviewers' own error rates")
st.caption("Over revealed batches. False-confirm rate: fillers confirmed / fillers decided (Wilson 95% interval). "
           "Agreement: same decision as another reviewer on the same item (Wilson 95%). Time: seconds from an item "
           "being served to its decision (mean, bootstrap 95% interval).")
if st.button("Measure reviewers (recorded)", key="blind_measure"):
    try:
        rates, entry = audited_reviewer_rates(session)
    except ERRORS as err:
        st.error(f"Refused: {err}")
    else:
        st.session_state["blind_rates"] = (rates.to_dict(), entry.seq)
measured = st.session_state.get("blind_rates")
if measured is not None:
    payload, seq = measured
    rows = [{
        "reviewer": r["reviewer"], "decisions": r["decisions"],
        "false confirms": f"{r['false_confirms']}/{r['filler_decisions']}",
        "false-confirm rate": r["false_confirm_rate"],
        "rate low": r["false_confirm_interval"][0], "rate high": r["false_confirm_interval"][1],
        "agreement": r["agreement_rate"], "agreement low": r["agreement_interval"][0],
        "agreement high": r["agreement_interval"][1], "mean seconds": r["mean_seconds"],
        "seconds low": r["mean_seconds_interval"][0], "seconds high": r["mean_seconds_interval"][1],
    } for r in payload["reviewers"]]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info("No decisions in revealed batches yet.")
    st.caption(f"Computed over {len(payload['batches'])} revealed batch(es); recorded as audit record #{seq}.")
