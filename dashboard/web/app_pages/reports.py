"""Reports (auditors): accountability reports from the live record, shown here and downloaded as HTML, PDF or JSON.

Every report generated here is an audited ``report`` action (the file's SHA-256 in its record),
made by :func:`audit.generate_report` over a verified, checkpointed state of the log. This page
parses the form, calls it and shows the result; it counts nothing. Text from ``report.toml`` and
from the log is shown as plain text or table cells, never as markup.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from audit import (
    REPORT_FORMATS,
    REPORT_TEMPLATE_TITLES,
    AuditContext,
    ReportConfigError,
    ReportRequest,
    draw_figure,
    generate_report,
    load_report_config,
    parse_report_config,
)
from dashboard.web.app_pages.common import ERRORS, chart, evaluations, require, runtime

user = require("report")
rt = runtime()
st.title("Reports")
st.caption("Accountability reports counted from the audit log and the stored evaluations: Washington RCW 43.386, "
           "the EU AI Act Art. 26(10), Oakland's OMC 9.64, or every section. Each report is recorded.")

MIME = {"html": "text/html", "pdf": "application/pdf", "json": "application/json"}
today = dt.datetime.now(dt.UTC).date()

with st.form("reports_form"):
    c1, c2, c3 = st.columns(3)
    template = c1.selectbox("Template", list(REPORT_TEMPLATE_TITLES), key="reports_template",
                            format_func=lambda t: f"{t}: {REPORT_TEMPLATE_TITLES[t]}")
    since = c2.date_input("From (UTC)", value=today.replace(month=1, day=1), key="reports_since")
    until = c3.date_input("To (UTC, inclusive)", value=today, key="reports_until")
    c4, c5, c6 = st.columns(3)
    fmt = c4.selectbox("Download format", list(REPORT_FORMATS), key="reports_format")
    public = c5.checkbox("Public version (pseudonyms, small cells suppressed)", key="reports_public")
    k = c6.number_input("Suppress counts below", min_value=2, value=5, step=1, key="reports_k")
    toml_file = st.file_uploader("report.toml (what no log knows; optional)", type=["toml"], key="reports_toml")
    purpose = st.text_input("Purpose of this report (recorded)", value="accountability report", key="reports_purpose")
    submitted = st.form_submit_button("Generate report", type="primary")

if submitted:
    try:
        if toml_file is None:
            config = load_report_config(None)
        else:
            config = parse_report_config(toml_file.getvalue().decode("utf-8"), toml_file.name)
        request = ReportRequest(since, until, template, config)
        done = generate_report(rt.session(AuditContext(purpose=purpose.strip() or None), user), evaluations(),
                               request, fmt, public=public, k=int(k))
    except UnicodeDecodeError:
        st.error("report.toml must be UTF-8 text.")
    except (ReportConfigError, ValueError, *ERRORS) as err:
        st.error(f"Report refused or failed: {err}")
    else:
        st.session_state["reports_result"] = (done.result, done.entry.seq)

result = st.session_state.get("reports_result")
if result is None:
    st.info("Choose a template and a period, then generate: the report is shown here and offered for download.")
    st.stop()

generated, seq = result
report = generated.report
about = report.about
name = f"facetrail-report-{report.template}-{about['period']['from']}-{about['period']['to']}.{generated.format}"
st.success(f"Report of records 1 to {about['tree_size']} (root {str(about['root'])[:16]}…); "
           f"recorded as audit record #{seq}; SHA-256 {generated.sha256[:16]}….")
st.download_button(f"Download {name}", generated.data, file_name=name, mime=MIME[generated.format],
                   key="reports_download")
for warning in report.warnings:
    st.error(warning)


def _show(block: Any) -> None:
    if block.kind == "text":
        st.text(block.text)
    elif block.kind == "missing":
        st.dataframe(pd.DataFrame([{"missing": block.label, "why": block.reason}]), hide_index=True)
    elif block.kind == "facts":
        if block.title:
            st.caption(block.title)
        st.dataframe(pd.DataFrame([{"": f.label, "value": f"{f.value} {f.unit}".strip()} for f in block.items]),
                     hide_index=True)
    elif block.kind == "table":
        st.caption(block.title)
        if block.rows:
            frame = pd.DataFrame([{label: row.get(key) for key, label in block.columns} for row in block.rows])
            st.dataframe(frame.astype(str), hide_index=True)
        else:
            st.text(block.empty)
    else:
        chart(draw_figure(block))


st.header(report.title)
for section in report.sections:
    st.subheader(section.title)
    st.caption("; ".join(section.references))
    for b in section.blocks:
        _show(b)
