"""Verify (operators): are the faces in two photos the same person? (1:1, recorded like a search).

The threshold follows the deployment's threshold policy for every gallery (audit.policy):
looser than the policy needs a written reason (recorded with the warning shown here), past
its hard limit it is refused. The false-match rate quoted comes from the evaluation the
deployment designates, never from one the operator picks.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit import AuditContext, comparison_text
from dashboard.web.app_pages.common import ERRORS, designated_run, require, runtime

user = require("verify")
rt = runtime()
st.title("Verify two photos")

try:
    engine = rt.engine()
except ERRORS as err:
    st.error(str(err))
    st.stop()
config = engine.config
threshold = st.slider(
    "Decision threshold (cosine distance: lower is stricter)", min_value=0.01, max_value=0.30,
    value=float(round(config.threshold, 3)), step=0.005, format="%.3f", key="verify_threshold",
    help=f"Default {config.threshold:.3f}: {config.threshold_source.description}",
)
threshold = round(threshold, 3)
named = None if threshold == round(config.threshold, 3) else threshold  # keep the default's provenance
service = rt.audited(engine, None, user)
policy = service.verify_threshold_check(named)  # the deployment's policy for every gallery
if policy.status == "beyond_limit":
    st.error(policy.warning, icon=":material/block:")
elif policy.status == "looser":
    st.warning(policy.warning, icon=":material/warning:")

found = designated_run(service, None)  # the deployment designates it for every gallery (audit.policy)
if isinstance(found, str):
    st.error(f"Error rates cannot be shown: {found}")
elif found is not None:
    report = found.report
    fmr = report.false_match_rate_at(1.0 - threshold)
    pairs = int(report.run.get("impostor_pairs") or 0)
    odds = (f"about 1 in {round(1 / fmr):,}" if fmr > 0
            else f"fewer than 1 in {pairs:,}" if pairs else "not measured")
    st.info(f"At threshold {threshold:.3f}, two photos of **different** people are declared the same person in "
            f"{fmr:.3%} of comparisons ({odds}), measured on {pairs:,} impostor pairs of {found.dataset} in the "
            f"evaluation this deployment designates ({found.label}).", icon=":material/info:")
else:
    st.info("This deployment designates no evaluation, so the chance of a false match is not shown. An admin "
            "designates one on the Administration page (recorded with the threshold policy).")

with st.form("verify_form"):
    purpose = st.text_input("Purpose (required)", key="verify_purpose")
    case_ref = st.text_input("Case reference (required)", key="verify_case")
    left, right = st.columns(2)
    first = left.file_uploader("First photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="verify_first")
    second = right.file_uploader("Second photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="verify_second")
    reason = (st.text_area("Reason for the looser threshold (required; recorded with the warning above)",
                           key="verify_threshold_reason") if policy.status == "looser" else None)
    submitted = st.form_submit_button("Verify", type="primary")

if submitted:
    if first is None or second is None:
        st.error("Choose two photos.")
    else:
        context = AuditContext(purpose=purpose.strip() or None, case_ref=case_ref.strip() or None, case_required=True)
        try:  # a missing purpose, case or reason is refused by the audited service, which records the refusal
            st.session_state["verify_last"] = rt.audited(engine, context, user).verify(
                first.getvalue(), second.getvalue(), threshold=named, threshold_reason=reason)
        except ERRORS as err:
            st.error(f"Verification refused or failed: {err}")

last = st.session_state.get("verify_last")
if last is not None:
    result = last.result
    flag = last.entry.record.details.get("threshold_policy") or {}
    verdict = comparison_text(result.similarity, result.distance, result.threshold)  # the threshold decides, not truth
    (st.success if result.verified else st.info)(
        f"{verdict[0].upper()}{verdict[1:]}. Audit record #{last.seq}; a match needs two reviewers before anyone acts "
        "on it, and below the threshold does not prove two different people."
    )
    if flag.get("status") == "looser":
        st.warning("Looser than this deployment's policy: flagged on the record, with the reason given and the "
                   "warning shown.", icon=":material/flag:")
    st.dataframe(pd.DataFrame([{"similarity": round(result.similarity, 4), "distance": round(result.distance, 4),
                                "threshold": round(result.threshold, 3),
                                "policy": str(flag.get("status", "")),
                                "record": last.seq}]), hide_index=True)
