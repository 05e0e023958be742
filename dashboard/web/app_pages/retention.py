"""Retention (auditors, admins): the schedules in force and what is due now, as ``facetrail retention run --dry-run``.

The page changes nothing: it runs the retention dry run (no record) and shows the due
subjects, galleries, review evidence, evaluation-cache entries and log records as tables of
plain text (names and purposes come from records and are never rendered as markup).
Erasing is ``facetrail retention run``, which is recorded and returns a signed receipt.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit import AuditContext, gallery_schedules, log_personal_schedule, retention_run
from dashboard.web.app_pages.common import ERRORS, require, runtime

user = require("integrity")
rt = runtime()
st.title("Retention")
st.caption("What facetrail will erase at the next retention run, under the schedules in force. This page changes "
           "nothing; the erasure itself is `facetrail retention run` (recorded, with a signed receipt).")

try:
    schedules = gallery_schedules(rt.log, [g.name for g in rt.galleries.list()])
    log_rule = log_personal_schedule(rt.settings).describe()
    due = retention_run(rt, AuditContext(purpose="retention: what is due"), dry_run=True, actor=user)
except ERRORS as err:
    st.error("Retention cannot run with these settings:")
    st.text(str(err))
    st.stop()

st.subheader("Schedules in force")
if schedules:
    st.dataframe(pd.DataFrame([s.to_dict() for s in schedules.values()]), hide_index=True)
else:
    st.info("No gallery has a retention schedule: its subjects are kept until erased or the gallery dropped.")
st.text(f"Audit log: {log_rule}")

st.subheader("Due now")
cache, fields = due["evaluation_cache"], due["log_personal_fields"]
counts = pd.DataFrame([
    {"what": "subjects past their gallery's period", "due": len(due["subjects"])},
    {"what": "whole galleries past their end date", "due": len(due["galleries"])},
    {"what": "review evidence items", "due": len(due["evidence"])},
    {"what": "evaluation-cache entries", "due": int(cache["entries"])},
    {"what": f"log records with personal fields past the cut-off ({fields['status']})",
     "due": int(fields["records_due"])},
    {"what": "log field keys of subjects no record names since the cut-off (destroyed by the run)",
     "due": int(fields["field_keys_due"])},
])
st.dataframe(counts, hide_index=True)
for title, rows in (("Subjects", due["subjects"]), ("Galleries", due["galleries"]),
                    ("Review evidence", due["evidence"])):
    if rows:
        st.text(title)
        st.dataframe(pd.DataFrame(rows), hide_index=True)
