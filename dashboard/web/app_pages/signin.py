"""Sign in with a local account (an admin creates accounts: ``facetrail users add``, or the Administration page).

Every sign-in, and every failed one, is a record in the audit trail; too many failures
in a row lock the account name for a while. The demo accounts' password scheme is
shown only on the database ``facetrail demo`` built (and marked as such).

This page is served at every page's address while nobody is signed in, so a link
(``/match_log?record=12``) keeps its address through the sign-in and then shows what it
names; the session then lives in a cookie (``common``), never in the address.
"""

from __future__ import annotations

import streamlit as st

from dashboard.web.app_pages.common import ERRORS, accounts, sign_in

st.title("facetrail")
st.caption("Accountable face recognition: every search is recorded, reviewed and open to audit.")

notice = st.session_state.pop("signin_notice", None)
if notice:
    st.info(notice)
if len(st.query_params) > 0:  # a link (a record, filters): it opens once signed in; it holds no secret
    st.info("Sign in to see what this link shows.")

with st.form("signin_form"):
    name = st.text_input("Account", key="signin_name")
    password = st.text_input("Password", type="password", key="signin_password")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    try:
        sign_in(name, password)
    except ERRORS as err:  # wrong password, locked out, disabled: said plainly, and recorded
        text = str(err)
        st.error(f"{text[:1].upper()}{text[1:]}.")
    else:
        st.rerun()

st.info("No account yet? An administrator creates one with `facetrail users add NAME --role ROLE`.")
if accounts().is_demo():
    st.info(
        "This is the demo database (`facetrail demo`): its role accounts `operator1`, `reviewer1`, `auditor1`, "
        "`admin1` ... have the password `<name>-demo`."
    )
