"""Administration (admins): accounts and galleries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.app_pages.common import ERRORS, require, runtime, users
from dashboard.auth import ROLES

require("manage_users")
st.title("Administration")

st.subheader("Accounts")
st.dataframe(pd.DataFrame([u.to_dict() for u in users().list()]), hide_index=True)
with st.form("admin_user_form", clear_on_submit=True):
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Account name", key="admin_new_name")
    role = c2.selectbox("Role", ROLES, key="admin_new_role")
    password = c3.text_input("Initial password (8+ characters)", type="password", key="admin_new_password")
    if st.form_submit_button("Create account"):
        try:
            created = users().add(name.strip(), role, password)
        except ERRORS as err:
            st.error(str(err))
        else:
            st.success(f"Created {created.role} {created.name}.")

st.subheader("Galleries")
galleries = runtime().galleries.list()
if galleries:
    st.dataframe(pd.DataFrame([g.to_dict() for g in galleries]), hide_index=True)
else:
    st.info("No gallery yet.")
st.caption("Galleries are created, filled and pruned with `facetrail gallery create|enroll|delete`; every change "
           "is recorded in the audit log.")
