"""Exports (auditors): the audit log as CSV, Parquet or JSON Lines, verifiable excerpts, and the export history.

Every export is itself recorded in the audit log, with its purpose and the file's SHA-256;
the history lists them all (this page's, the Match log's exports of what it shows, the
CLI's, and the refused ones). Dates are picked (UTC days, both inclusive), never typed:
a free-text date such as "last week" once produced a recorded export of 0 records.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from audit import AuditContext, AuditFilter, audited_export, export_history
from dashboard.web.app_pages.common import ERRORS, require, runtime, time_column

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
    since = c4.date_input("From (UTC date, inclusive; empty: the first record)", value=None, key="exports_since",
                          format="YYYY-MM-DD")
    until = c5.date_input("To (UTC date, inclusive; empty: the last record)", value=None, key="exports_until",
                          format="YYYY-MM-DD")
    pseudonymise = st.checkbox("Pseudonymise subject ids (plain formats only)", key="exports_pseudonymise")
    purpose = st.text_input("Purpose of this export (required, recorded)", key="exports_purpose",
                            placeholder="e.g. quarterly report to the oversight board")
    submitted = st.form_submit_button("Prepare export", type="primary")

if submitted:
    fmt, mime = KINDS[kind]
    # the filter's until is exclusive: the day after the last day picked; a range in the wrong order is refused
    # (and recorded) by audited_export, naming both dates
    filters = AuditFilter(operator=operator.strip() or None, case_ref=case_ref.strip() or None,
                          action=None if action == "(any)" else action,
                          since=None if since is None else since.isoformat(),
                          until=None if until is None else (until + timedelta(days=1)).isoformat())
    session = rt.session(AuditContext(purpose=purpose.strip() or None), user)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"facetrail-audit.{'json' if fmt == 'excerpt' else fmt}"
            done = audited_export(session, log, path, fmt, filters, pseudonymize=pseudonymise)
            data = path.read_bytes()
        summary, entry = done.result, done.entry
    except ERRORS as err:
        if since is not None and until is not None and since > until:  # the filter's own words name "until + 1"
            st.error(f"Export refused (and recorded): the To date {until.isoformat()} is before the From date "
                     f"{since.isoformat()}, so no record could match.")
        else:
            st.error(f"Export refused or failed: {err}")
        st.session_state.pop("exports_file", None)
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

st.subheader("Export history")
history = export_history(log)
if not history:
    st.info("No export yet.")
else:
    frame = pd.DataFrame([{**h, "time": pd.Timestamp(h["time"]),
                           "filters": ", ".join(f"{k}={v}" for k, v in sorted(h["filters"].items())) or "(none)",
                           "sha256": (h["sha256"] or "")[:16]} for h in history])
    st.dataframe(frame, hide_index=True, column_config={
        "seq": "Record", "time": time_column(),
        "operator": "By", "purpose": "Purpose", "outcome": "Outcome", "format": "Format",
        "source": "From", "records": "Records", "sha256": "SHA-256 (start)", "filters": "Filters",
        "reason": "Why refused"})
    st.caption(f"{len(history)} export(s) and refused export(s), newest first; each is a record of the audit log.")
