"""Verify (operators): are the faces in two photos the same person? (1:1, recorded like a search)."""

from __future__ import annotations

import streamlit as st

from audit import AuditContext, comparison_text
from dashboard.web.app_pages.common import ERRORS, require, runtime

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

with st.form("verify_form"):
    purpose = st.text_input("Purpose (required)", key="verify_purpose")
    case_ref = st.text_input("Case reference (required)", key="verify_case")
    left, right = st.columns(2)
    first = left.file_uploader("First photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="verify_first")
    second = right.file_uploader("Second photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="verify_second")
    submitted = st.form_submit_button("Verify", type="primary")

if submitted:
    if first is None or second is None:
        st.error("Choose two photos.")
    else:
        context = AuditContext(purpose=purpose.strip() or None, case_ref=case_ref.strip() or None, case_required=True)
        try:  # a missing purpose or case is refused by the audited service, which records the refusal
            named = None if round(threshold, 3) == round(config.threshold, 3) else round(threshold, 3)
            st.session_state["verify_last"] = rt.audited(engine, context, user).verify(
                first.getvalue(), second.getvalue(), threshold=named)
        except ERRORS as err:
            st.error(f"Verification refused or failed: {err}")

last = st.session_state.get("verify_last")
if last is not None:
    result = last.result
    verdict = comparison_text(result.similarity, result.distance, result.threshold)  # the threshold decides, not truth
    (st.success if result.verified else st.info)(
        f"{verdict[0].upper()}{verdict[1:]}. Audit record #{last.seq}; a match needs two reviewers before anyone acts "
        "on it, and below the threshold does not prove two different people."
    )
