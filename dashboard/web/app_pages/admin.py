"""Administration (admins): accounts, API tokens and galleries.

Every change here goes through the audited services as the signed-in admin (who is
checked again for each one) and is a record in the audit trail.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit import ROLES, AuditContext
from dashboard.web.app_pages.common import ERRORS, accounts, require, runtime

user = require("manage_users")
st.title("Administration")

st.subheader("Accounts")
try:
    listed = accounts().list_users(user)
except ERRORS as err:
    st.error(str(err))
    st.stop()
st.dataframe(pd.DataFrame([u.to_dict() for u in listed]), hide_index=True)
with st.form("admin_user_form", clear_on_submit=True):
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Account name", key="admin_new_name")
    role = c2.selectbox("Role", ROLES, key="admin_new_role")
    password = c3.text_input("Initial password (8+ characters)", type="password", key="admin_new_password")
    if st.form_submit_button("Create account"):
        try:
            created = accounts().add_user(user, name, role, password).result
        except ERRORS as err:
            st.error(str(err))
        else:
            st.success(f"Created {created.role} {created.name}.")

if listed:
    with st.form("admin_change_form", clear_on_submit=True):
        st.markdown("**Change an account** (recorded; disabling signs it out everywhere)")
        c1, c2, c3, c4 = st.columns(4)
        target = c1.selectbox("Account", [u.name for u in listed], key="admin_change_account")
        change = c2.selectbox("Change", ["role", "disable", "enable", "password"], key="admin_change_kind")
        new_role = c3.selectbox("New role", ROLES, key="admin_change_role")
        new_password = c4.text_input("New password", type="password", key="admin_change_password")
        if st.form_submit_button("Apply"):
            try:
                if change == "role":
                    done = accounts().set_role(user, target, new_role)
                elif change == "password":
                    done = accounts().set_password(user, target, new_password)
                else:
                    done = accounts().set_disabled(user, target, change == "disable")
            except ERRORS as err:
                st.error(str(err))
            else:
                st.success(f"{done.result.name}: {change} done (audit record #{done.seq}).")

st.subheader("API tokens")
tokens = accounts().list_tokens(user)
if tokens:
    st.dataframe(pd.DataFrame([t.to_dict() for t in tokens]), hide_index=True)
st.caption("Tokens for scripts are issued and revoked with `facetrail tokens create|list|revoke`; "
           "a token is shown once and stored only hashed.")

st.subheader("Galleries")
galleries = runtime().galleries.list()
if not galleries:
    st.info("No gallery yet.")
else:
    st.dataframe(pd.DataFrame([g.to_dict() for g in galleries]), hide_index=True)
if galleries and user.can("manage_galleries"):
    with st.form("admin_erase_form", clear_on_submit=True):
        st.markdown("**Erase a subject** (right to erasure: the embeddings are deleted; the audit record keeps ids)")
        c1, c2 = st.columns(2)
        gallery = c1.selectbox("Gallery", [g.name for g in galleries], key="admin_erase_gallery")
        subject = c2.text_input("Subject id", key="admin_erase_subject")
        purpose = st.text_input("Reason (required, recorded)", key="admin_erase_purpose")
        confirmed = st.checkbox("I understand this cannot be undone", key="admin_erase_confirm")
        if st.form_submit_button("Erase subject"):
            if not confirmed:
                st.error("Tick the confirmation to erase.")
            else:
                try:
                    rt = runtime()
                    service = rt.audited(rt.engine_for_gallery(gallery), AuditContext(purpose=purpose.strip() or None),
                                         user)
                    erased = service.delete_subject(gallery, subject.strip())
                except ERRORS as err:
                    st.error(str(err))
                else:
                    st.success(f"Erased {len(erased.result)} face(s); audit record #{erased.seq}.")
st.caption("Galleries are created and filled with `facetrail gallery create|enroll`; every change, here or there, "
           "is recorded in the audit log.")
