"""The review screen: one component for the match log and the blind review (not a page of its own).

It shows the evidence of one candidate (probe and reference photos side by side; outside blind
mode also the threshold, whether it was looser than the deployment's policy, and the false-match
rate at the candidate's score in the designated evaluation), the decision form (nothing
preselected, a reason code required, the rules in :mod:`audit.trail.review`), the explicit
"reverse my decision" action, and a reviewer's own queue. Text from records is shown as plain
text, never as markup; photos are shown from bytes (``st.image``), never cached anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from audit import REASON_CODES, Actor, AuditLog, QueueItem, ReviewEvidence, review_queue

__all__ = ["ReviewChoice", "close_queue_item", "decision_form", "format_age", "fresh_for", "queue_panel", "reverse_form",
           "show_error_context", "show_photos"]

#: What the decision radio offers (labels; the value recorded is the key).
DECISION_LABELS = {"confirm": "Same person (confirm)", "reject": "Different person (reject)"}


@dataclass(frozen=True)
class ReviewChoice:
    """What the reviewer submitted (``None``: not chosen)."""

    decision: str | None
    reason: str | None
    note: str | None


def format_age(hours: float) -> str:
    """Say how long ago: ``"45 min"``, ``"5 h 10 min"``, ``"3 days 4 h"``."""
    minutes = int(round(hours * 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} days {(minutes % 1440) // 60} h"


def show_photos(probe: bytes | None, probe_note: str, reference: bytes | None, reference_note: str, *,
                reference_label: str = "Candidate (gallery reference photo)") -> None:
    """Show the probe and the reference photo side by side (or say why one is missing)."""
    left, right = st.columns(2)
    left.markdown("**Probe**")
    if probe is None:
        left.warning(f"No probe photo: {probe_note}.")
    else:
        left.image(probe, caption=f"Probe: {probe_note}")
    right.markdown(f"**{reference_label}**")
    if reference is None:
        right.warning(f"No reference photo: {reference_note}.")
    else:
        right.image(reference, caption=reference_note)


def show_error_context(evidence: ReviewEvidence) -> None:
    """Show the threshold, the policy flag and the false-match rate at this score (plain text and a table).

    The rate is quoted overall, for the candidate's groups and for the probe's group when the
    operator stated it at search time ("not stated" otherwise).
    """
    threshold = "not recorded" if evidence.threshold is None else f"{evidence.threshold:.4f} (cosine distance)"
    st.text(f"Similarity of this candidate: {evidence.similarity or 'not recorded'}.  Threshold used: {threshold}.")
    policy = evidence.policy
    if evidence.looser_than_policy and policy is not None:
        st.warning(f"This search ran looser than the deployment's policy (threshold {policy.get('threshold')}, "
                   f"loosest allowed {policy.get('loosest')}). Looser thresholds return more false candidates.",
                   icon=":material/warning:")
        st.text(f"Operator's reason: {policy.get('reason') or '(none)'}")
    elif policy is not None:
        st.text(f"Within the deployment's threshold policy (loosest {policy.get('loosest')}).")
    stated = (f"{evidence.probe_group} (stated by the operator at search time)" if evidence.probe_group
              else "not stated")
    if evidence.evaluation is None:
        st.info("False-match rate at this score: no evaluation designated (the deployed threshold was not "
                "calibrated on a stored evaluation of this configuration), so no error rate can be shown.")
        st.text(f"Probe's group: {stated}.")
        return
    if not evidence.rates:
        st.info(f"False-match rate at this score: {evidence.evaluation} has no score histogram.")
        st.text(f"Probe's group: {stated}.")
        return
    st.markdown("**How often different people score this high** (false-match rate at this score)")
    # plain text, one line per group (readable by a screen reader, unlike a canvas table)
    st.text("\n".join([f"{r.group}: {r.words()}" for r in evidence.rates]
                      + [f"{r.group} (probe's group): {r.words()}" for r in evidence.probe_rates]))
    groups = [r.group for r in evidence.rates if r.group != "overall"]
    probe = (f"Probe's group: {stated}." if not evidence.probe_group or evidence.probe_rates
             else f"Probe's group: {stated}; the evaluation has no rate for it at this score.")
    st.text(f"From {evidence.evaluation}. "
            + (f"Candidate's group(s): {', '.join(groups)}. " if groups
               else "The evaluation has no group matching the candidate's labels. ")
            + probe + " The probe's group is never inferred from the face.")


def fresh_for(key: str, target: object) -> None:
    """Forget the form ``key``'s choices when the reviewer moves to another candidate (nothing carried over)."""
    marker = f"{key}_target"
    if st.session_state.get(marker) != target:
        for suffix in ("decision", "reason", "note", "reverse_reason", "reverse_note"):
            st.session_state.pop(f"{key}_{suffix}", None)
        st.session_state[marker] = target


def decision_form(key: str, on_submit: Callable[[ReviewChoice], None], *, reasons: bool = True,
                  question: str = "Is the candidate the same person as the probe?",
                  button: str = "Record review") -> None:
    """Show the decision form (nothing preselected, a reason code to choose, a note); call ``on_submit`` on submit."""
    with st.form(f"{key}_form"):
        decision = st.radio(question, list(DECISION_LABELS), index=None, horizontal=True,
                            format_func=DECISION_LABELS.__getitem__, key=f"{key}_decision")
        reason = (st.selectbox("Reason", REASON_CODES, index=None, placeholder="Choose the reason for your decision",
                               key=f"{key}_reason") if reasons else None)
        note = st.text_input("Note (required when the reason is 'other')", key=f"{key}_note")
        if st.form_submit_button(button, type="primary"):
            on_submit(ReviewChoice(decision, reason, note.strip() or None))


def reverse_form(key: str, standing: str, on_submit: Callable[[ReviewChoice], None]) -> None:
    """Show the explicit 'reverse my decision' action: it decides the opposite of ``standing``, with a reason."""
    opposite = "reject" if standing == "confirm" else "confirm"
    with st.form(f"{key}_reverse_form"):
        st.text(f"Your decision on this candidate: {standing}. Reversing records a reversal to {opposite}.")
        reason = st.selectbox("Reason for the reversal", REASON_CODES, index=None,
                              placeholder="Choose the reason for your new decision", key=f"{key}_reverse_reason")
        note = st.text_input("Note (required when the reason is 'other')", key=f"{key}_reverse_note")
        if st.form_submit_button(f"Reverse my decision (to {opposite})"):
            on_submit(ReviewChoice(opposite, reason, note.strip() or None))


def queue_panel(log: AuditLog, user: Actor, key: str = "review_queue") -> QueueItem | None:
    """Show the reviewer's queue (pending for them, oldest first, with age); return the item they opened, if any.

    The item opened stays open after the reviewer decides it (it leaves the queue then), until they
    open another or close it (:func:`close_queue_item`).
    """
    queue = review_queue(log, user.name)
    opened = st.session_state.get(f"{key}_opened")
    with st.expander(f"Pending for me: {len(queue)} candidate(s)", expanded=bool(queue) and opened is None):
        if not queue:
            st.text("Nothing is waiting for your review.")
        else:
            st.dataframe(pd.DataFrame([{"record": q.seq, "action": q.action, "candidate": q.subject_id,
                                        "rank": q.rank, "waiting": format_age(q.age_hours)} for q in queue]),
                         hide_index=True)
            labels = {f"#{q.seq} · rank {q.rank} {q.subject_id} · waiting {format_age(q.age_hours)}": q
                      for q in queue}
            chosen = st.selectbox("Open from my queue (oldest first)", list(labels), index=None,
                                  placeholder="Choose a queued candidate", key=key)
            if chosen is not None:
                opened = st.session_state[f"{key}_opened"] = labels[chosen]
    return opened if isinstance(opened, QueueItem) else None


def close_queue_item(key: str = "review_queue") -> None:
    """Close the item opened from the queue (back to the records table)."""
    st.session_state.pop(f"{key}_opened", None)
    st.session_state.pop(key, None)
