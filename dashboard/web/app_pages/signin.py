"""Sign in with a local account (an admin creates accounts: ``facetrail users add``, or the Administration page).

Every sign-in, and every failed one, is a record in the audit trail; too many failures
in a row lock the account name for a while. The demo accounts' password scheme is
shown only on the database ``facetrail demo`` built (and marked as such).
"""

from __future__ import annotations

import streamlit as st

from dashboard.web.app_pages.common import ERRORS, accounts, sign_in

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
