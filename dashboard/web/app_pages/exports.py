"""Exports (auditors): the audit log as CSV, Parquet or JSON Lines, and verifiable excerpts.

Every export is itself recorded in the audit log, with its purpose and the file's SHA-256.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from audit import AuditContext, AuditFilter, audited_export
from dashboard.web.app_pages.common import ERRORS, require, runtime

user = require("export")
rt = runtime()
log = rt.log
st.title("Exports")

if log.size() == 0:
    st.info("The audit log is empty: there is nothing to export yet.")
    st.stop()

KINDS = {
    "CSV (one row per record)": ("csv", "text/csv"),
    "Parquet": ("parquet", "application/vnd.apache.parquet"),
    "JSON Lines (records with hashes)": ("jsonl", "application/jsonl"),
    "Verifiable excerpt (JSON, checkable with the public key)": ("excerpt", "application/json"),
}

with st.form("exports_form"):
    kind = st.selectbox("Format", list(KINDS), key="exports_kind")
    c1, c2, c3 = st.columns(3)
    action = c1.selectbox("Action", ["(any)", "search", "verify", "review", "refused", "enroll", "delete",
                                     "evaluate", "export"], key="exports_action")
    operator = c2.text_input("Operator (blank: any)", key="exports_operator")
    case_ref = c3.text_input("Case reference (blank: any)", key="exports_case")
    c4, c5 = st.columns(2)
    since = c4.text_input("Since (UTC date, inclusive)", key="exports_since", placeholder="2026-01-31")
    until = c5.text_input("Until (UTC date, exclusive)", key="exports_until")
    pseudonymise = st.checkbox("Pseudonymise subject ids (plain formats only)", key="exports_pseudonymise")
    purpose = st.text_input("Purpose of this export (required, recorded)", key="exports_purpose",
                            placeholder="e.g. quarterly report to the oversight board")
    submitted = st.form_submit_button("Prepare export", type="primary")

if submitted:
    fmt, mime = KINDS[kind]
    filters = AuditFilter(operator=operator.strip() or None, case_ref=case_ref.strip() or None,
                          action=None if action == "(any)" else action, since=since.strip() or None,
                          until=until.strip() or None)
    session = rt.session(AuditContext(purpose=purpose.strip() or None), user)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"facetrail-audit.{'json' if fmt == 'excerpt' else fmt}"
            done = audited_export(session, log, path, fmt, filters, pseudonymize=pseudonymise)
            data = path.read_bytes()
        summary, entry = done.result, done.entry
    except ERRORS as err:
        st.error(f"Export refused or failed: {err}")
    else:
        st.session_state["exports_file"] = (path.name, data, mime, summary.records, summary.sha256, entry.seq)

prepared = st.session_state.get("exports_file")
if prepared is not None:
    name, data, mime, count, sha, seq = prepared
    st.success(f"{count} record(s), SHA-256 `{sha[:16]}…`; the export is audit record #{seq}.")
    st.download_button(f"Download {name}", data, file_name=name, mime=mime, key="exports_download")
st.caption(
    "A verifiable excerpt holds the selected records with Merkle inclusion proofs under a signed checkpoint: "
    "anyone with the public key (Integrity page) can check it offline with "
    "`facetrail audit verify-excerpt FILE --public-key KEY.pem`."
)
