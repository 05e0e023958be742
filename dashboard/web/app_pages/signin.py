"""Sign in with a local account (``facetrail users add`` creates them)."""

from __future__ import annotations

import streamlit as st

from dashboard.web.app_pages.common import sign_in

st.title("facetrail")
st.caption("Accountable face recognition: every search is recorded, reviewed and open to audit.")

notice = st.session_state.pop("signin_notice", None)
if notice:
    st.info(notice)

with st.form("signin_form"):
    name = st.text_input("Account", key="signin_name")
    password = st.text_input("Password", type="password", key="signin_password")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    if sign_in(name, password) is None:
        st.error("Unknown account or wrong password.")
    else:
        st.rerun()

st.info(
    "No account yet? An administrator creates one with `facetrail users add NAME --role ROLE`. "
    "The demo (`facetrail demo`) creates role accounts such as `operator1`, `reviewer1`, `auditor1`, `admin1` "
    "with the password `<name>-demo`."
)
