"""Administration (admins): accounts, the threshold policy, API tokens and galleries (with erasure).

Every change here goes through the audited services as the signed-in admin (who is
checked again for each one) and is a record in the audit trail. The rules (no admin
disables or re-roles themselves, the last admin stays, the policy's bounds) live in
audit, not here: this page shows what they refuse.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from audit import ROLES, AuditContext, build_receipt, new_receipt_salt
from dashboard.web.app_pages.common import ERRORS, accounts, evaluations, local_time, require, runtime, viewer_zone

user = require("manage_users")
st.title("Administration")

st.subheader("Accounts")
try:
    listed = accounts().list_users(user)
except ERRORS as err:
    st.error(str(err))
    st.stop()
zone = viewer_zone()[0]  # times in the viewer's zone, named in the heading (common.viewer_zone)
st.dataframe(pd.DataFrame([{"Account": u.name, "Role": u.role, "Status": "disabled" if u.disabled else "enabled",
                            f"Last sign-in ({zone})": local_time(u.last_sign_in) if u.last_sign_in else "never",
                            f"Created ({zone})": local_time(u.created_at)}
                           for u in listed]), hide_index=True)
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

names = [u.name for u in listed]
if listed:
    st.markdown("**Change an account** (each change is recorded; disabling or a password reset signs it out "
                "everywhere; you cannot disable or re-role yourself: another admin must)")
    tab_status, tab_password, tab_role = st.tabs(["Disable or enable", "Reset password", "Change role"])
    with tab_status, st.form("admin_status_form", clear_on_submit=True):
        target = st.selectbox("Account", names, key="admin_status_account")
        action = st.radio("Action", ["disable", "enable"], horizontal=True, key="admin_status_action")
        if st.form_submit_button("Apply"):
            try:
                done = accounts().set_disabled(user, target, action == "disable")
            except ERRORS as err:
                st.error(str(err))
            else:
                st.success(f"{done.result.name} {action}d (audit record #{done.seq}).")
    with tab_password, st.form("admin_password_form", clear_on_submit=True):
        target = st.selectbox("Account", names, key="admin_password_account")
        new_password = st.text_input("New password (8+ characters; tell its holder out of band)", type="password",
                                     key="admin_password_new")
        if st.form_submit_button("Reset password"):
            try:
                done = accounts().set_password(user, target, new_password)
            except ERRORS as err:
                st.error(str(err))
            else:
                st.success(f"Password of {done.result.name} reset; its sessions are signed out "
                           f"(audit record #{done.seq}).")
    with tab_role, st.form("admin_role_form", clear_on_submit=True):
        target = st.selectbox("Account", names, key="admin_role_account")
        new_role = st.selectbox("New role", ROLES, key="admin_role_new")
        if st.form_submit_button("Change role"):
            try:
                done = accounts().set_role(user, target, new_role)
            except ERRORS as err:
                st.error(str(err))
            else:
                st.success(f"{done.result.name} is now a {done.result.role} (audit record #{done.seq}).")

st.subheader("Threshold policy")
rt = runtime()
galleries = rt.galleries.list()
policy_reader = rt.audited(rt.engine(), None, user)
scopes = {"every gallery (and Verify)": None, **{g.name: g.name for g in galleries}}
scope_label = st.selectbox("For", list(scopes), key="admin_policy_scope")
scope = scopes[scope_label]
current = policy_reader.threshold_policy(scope)
st.text(f"In force: {current.describe()}. Designated evaluation: {current.evaluation or 'none'}.")  # as text
runs = {f"{r.label} (run {r.run_id[:12]})": r.run_id for r in evaluations().list()}
with st.form("admin_policy_form"):
    c1, c2 = st.columns(2)
    use_default = c1.checkbox("Loosest without a reason: the gallery's default threshold",
                              value=current.loosest is None, key="admin_policy_default")
    loosest = c1.number_input("Or this cosine distance", 0.001, 2.0, float(current.loosest or 0.1), 0.005,
                              format="%.3f", key="admin_policy_loosest")
    factor = c2.checkbox("Hard limit: 1.25 x the loosest", value=current.hard_limit is None,
                         key="admin_policy_factor")
    hard = c2.number_input("Or this cosine distance", 0.001, 2.0, float(current.hard_limit or 0.15), 0.005,
                           format="%.3f", key="admin_policy_hard")
    choices = ["none", *runs]
    now = next((label for label, run in runs.items() if run == current.evaluation), "none")
    evaluation = st.selectbox("Evaluation whose error rates Search and Verify quote", choices,
                              index=choices.index(now), key="admin_policy_evaluation")
    reason = st.text_input("Reason (required, recorded)", key="admin_policy_reason")
    if st.form_submit_button("Set the policy"):
        try:
            set_by = rt.audited(rt.engine(), AuditContext(purpose="set the deployment's threshold policy"), user)
            set_policy = set_by.set_threshold_policy(None if use_default else float(loosest),
                                                     None if factor else float(hard), reason=reason,
                                                     gallery_name=scope, evaluation=runs.get(evaluation))
        except ERRORS as err:
            st.error(str(err))
        else:
            st.success(f"Policy set (audit record #{set_policy.seq}): {set_policy.result.describe()}.")

st.subheader("API tokens")
tokens = accounts().list_tokens(user)
if tokens:
    st.dataframe(pd.DataFrame([t.to_dict() for t in tokens]), hide_index=True)
st.write("Tokens for scripts are issued and revoked with `facetrail tokens create|list|revoke`; "
         "a token is shown once and stored only hashed.")

st.subheader("Galleries")
if not galleries:
    st.info("No gallery yet.")
else:
    st.dataframe(pd.DataFrame([g.to_dict() for g in galleries]), hide_index=True)
if galleries and user.can("manage_galleries"):
    with st.form("admin_erase_form", clear_on_submit=True):
        st.markdown("**Erase a subject** (right to erasure: the embeddings are deleted and the subject's "
                    "fields in the audit log become unreadable; you get the signed receipt)")
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
                    context = AuditContext(purpose=purpose.strip() or None)
                    # any engine: erasing uses no model, and a gallery enrolled under older versions must stay erasable
                    service = rt.audited(rt.engine(), context, user)
                    erased_id = subject.strip()
                    salt = new_receipt_salt()  # the record commits to the subject under it; only the receipt holds it
                    erased = service.delete_subject(gallery, erased_id, receipt_salt=salt)
                    signed = build_receipt(rt.log, erased.seq, subject=(erased_id, salt))
                except ERRORS as err:
                    st.error(str(err))
                else:
                    st.session_state["admin_erase_receipt"] = {"faces": len(erased.result), "seq": erased.seq,
                                                               "receipt": signed}
    receipt = st.session_state.get("admin_erase_receipt")
    if receipt is not None:
        st.success(f"Erased {receipt['faces']} face(s); audit record #{receipt['seq']}.")
        st.write("The signed receipt below is the data subject's: it alone holds the salt that shows the erasure "
                 "was theirs (the log keeps only a commitment), and it cannot be made again later. Anyone checks it "
                 "offline with `facetrail privacy verify-receipt FILE --public-key KEY`.")
        text = json.dumps(receipt["receipt"], indent=1, ensure_ascii=False)
        st.code(text, language="json")  # shown as text, never as markup
        st.download_button("Download the signed erasure receipt (JSON)", text,
                           file_name=f"erasure-receipt-{receipt['seq']}.json", mime="application/json",
                           key="admin_erase_download")
st.write("Galleries are created and filled with `facetrail gallery create|enroll`; every change, here or there, "
         "is recorded in the audit log.")
