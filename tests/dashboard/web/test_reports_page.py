"""The Reports page (auditors): a report generated, shown, offered for download and recorded; others refused."""

from __future__ import annotations

import datetime as dt
import json

from streamlit.testing.v1 import AppTest

from audit.runtime import Runtime
from tests.dashboard.conftest import APP, as_user

PAGE = APP.replace("streamlit_app.py", "app_pages/reports.py")


def test_an_auditor_generates_a_report_that_is_recorded(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.switch_page("app_pages/reports.py").run()
    assert not at.exception, at.exception
    assert "Reports" in [t.value for t in at.title]
    at.selectbox(key="reports_template").set_value("eu-ai-act-26")
    at.selectbox(key="reports_format").set_value("json")
    at.date_input(key="reports_since").set_value(dt.date(2020, 1, 1))
    at.button[0].click().run()
    assert not at.exception, at.exception
    generated, seq = at.session_state["reports_result"]
    report = json.loads(generated.data)
    usage = next(s for s in report["sections"] if s["id"] == "usage")
    totals = {f["id"]: f["value"] for b in usage["blocks"] if b.get("id") == "usage_totals" for f in b["items"]}
    assert totals["search"] == 12  # the fake scene's twelve searches
    headers = [h.value for h in at.subheader]
    assert [s["title"] for s in report["sections"]] == headers
    assert any("recorded as audit record" in s.value for s in at.success)
    rt = Runtime(app_env)
    try:
        record = rt.log.get(seq).record
        assert record.action == "report" and record.operator == "auditor1"
        assert record.details["sha256"] == generated.sha256
    finally:
        rt.db.close()


def test_the_page_refuses_other_roles_on_the_server(app_env: str) -> None:
    for name, role in (("operator1", "operator"), ("reviewer1", "reviewer")):
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.session_state["auth_user"] = as_user(name, role)
        at.run()
        assert not at.exception
        assert any("Access denied" in e.value for e in at.error)
        assert not at.button


def test_a_period_that_ends_before_it_starts_is_refused_and_nothing_generated(app_env: str) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.date_input(key="reports_until").set_value(dt.date(2019, 1, 1))
    at.button[0].click().run()
    assert not at.exception
    assert any("before it starts" in e.value for e in at.error)
    assert "reports_result" not in at.session_state
