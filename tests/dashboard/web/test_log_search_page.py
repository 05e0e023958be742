"""AppTest of the Match log's search and links, the Exports page's dates and history, and the session cookie.

The fake scene (tests/dashboard/conftest.py): 12 searches by operator1-3 (every third one
without a candidate), cases CR-0..CR-3, reviews of #1 (two confirmations) and #3 (a
rejection), one refused search.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from audit import AuditFilter, Runtime
from dashboard.web.app_pages import common
from tests.auth import actor_for
from tests.dashboard.conftest import APP, as_user

MATCH_LOG = "app_pages/match_log.py"
EXPORTS = "app_pages/exports.py"


def match_log(name: str = "auditor1", role: str = "auditor", **params: str) -> AppTest:
    at = AppTest.from_file(APP.replace("streamlit_app.py", MATCH_LOG), default_timeout=60)
    at.session_state["auth_user"] = as_user(name, role)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def shown(at: AppTest) -> list[int]:
    """The records the search table shows (a reviewer's queue, above it, is another table)."""
    table = next(d.value for d in at.dataframe if "seq" in d.value.columns)  # the first: the record view follows
    return [int(s) for s in table["seq"]]


def messages(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.error, *at.warning, *at.info, *at.subheader, *at.success))


def exported(at: AppTest, purpose: str = "board report") -> tuple[Any, list[dict[str, str]]]:
    """Export what the Match log's filters find, for ``purpose``: the export's result and the CSV's rows."""
    at.text_input(key="matchlog_export_purpose").input(purpose)
    at.button(key="matchlog_export_button").click().run()
    assert not at.exception
    result = at.session_state["matchlog_export"][2]
    return result, list(csv.DictReader(io.StringIO(result.data.decode())))


def test_a_record_link_opens_that_record(app_env: str) -> None:
    at = match_log(record="5")
    assert not at.exception
    assert at.selectbox(key="matchlog_open").value == 5
    assert any(s.value.startswith("Record #5:") for s in at.subheader)
    assert at.query_params["record"] == "5"
    review_seq = Runtime(app_env).log.list(AuditFilter(action="review"))[0].seq
    at = match_log(record=str(review_seq))  # a review record: not among the default (search) records, still opened
    assert any(s.value.startswith(f"Record #{review_seq}: review") for s in at.subheader)
    assert f"Record #{review_seq} is opened because the link names it" in messages(at)


def test_filters_are_read_from_the_address_and_written_back(app_env: str) -> None:
    at = match_log(operator="operator1", outcome="candidates")
    assert not at.exception
    assert at.selectbox(key="matchlog_operator").value == "operator1"
    table = at.dataframe[0].value
    assert set(table["operator"]) == {"operator1"} and (table["candidates"] > 0).all() and shown(at) == [1, 4, 7, 10]
    at.selectbox(key="matchlog_review").set_value("pending").run()
    assert at.query_params["review"] == "pending" and at.query_params["operator"] == "operator1"
    assert shown(at) == [4, 7, 10] and at.query_params["record"] == "4"
    at.selectbox(key="matchlog_operator").set_value("(any)").run()
    assert "operator" not in at.query_params


def test_each_filter_on_the_page(app_env: str) -> None:
    today = date.today()
    assert shown(match_log(reviewer="reviewer1")) == [1, 3]  # the queries reviewer1 reviewed
    assert shown(match_log(reviewer="reviewer2")) == [1]
    assert shown(match_log(subject="Person_0")) == [1]
    assert shown(match_log(q="cr-2")) == [3, 7, 11]  # case CR-2, any case
    assert shown(match_log(outcome="none")) == [2, 5, 8, 11]
    assert shown(match_log(review="rejected")) == [3]
    at = match_log(threshold="0.05")  # every search ran at 0.07
    assert "No record matches these filters." in messages(at) and not shown(at)
    assert len(shown(match_log(threshold="0.07"))) == 12
    assert "No record matches" in messages(match_log(since=(today + timedelta(days=2)).isoformat()))
    assert len(shown(match_log(since=(today - timedelta(days=1)).isoformat()))) == 12
    assert len(shown(match_log(action="any"))) > 12  # reviews and the refusal too
    at = match_log()
    at.date_input(key="matchlog_since").set_value(today + timedelta(days=2)).run()  # the picker, not free text
    assert "No record matches" in messages(at)
    assert at.query_params["since"] == (today + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(("params", "said"), [
    ({"since": "last week"}, "since: 'last week' is not a date"),
    ({"outcome": "maybe"}, "outcome: 'maybe' is not one of candidates, none"),
    ({"threshold": "loose"}, "threshold: 'loose' is not a number"),
    ({"threshold": "0"}, "threshold: 0.0 is not a distance between 0 and 2"),
    ({"threshold": "-1"}, "threshold: -1.0 is not a distance"),
    ({"record": "abc"}, "record: 'abc' is not a record number"),
    ({"record": "9999"}, "Record #9999, named by the link, does not exist"),
    ({"colour": "red"}, "colour are not Match log filters"),
])
def test_a_bad_link_says_what_is_wrong(app_env: str, params: dict[str, str], said: str) -> None:
    at = match_log(**params)
    assert not at.exception
    assert said in messages(at)
    assert shown(at)  # and the page still works, on its defaults


def test_a_tiny_threshold_in_a_link_is_shown_not_a_crash(app_env: str) -> None:
    at = match_log(threshold="0.00001")
    assert not at.exception and float(at.text_input(key="matchlog_threshold").value) == pytest.approx(1e-5)
    assert "No record matches" in messages(at)


def test_a_threshold_typed_as_words_is_an_error_naming_it(app_env: str) -> None:
    at = match_log()
    at.text_input(key="matchlog_threshold").set_value("loose").run()
    assert not at.exception
    assert "Threshold at most: 'loose' is not a distance from 0 to 2" in messages(at)


def test_reversed_dates_are_an_error_naming_both(app_env: str) -> None:
    at = match_log()
    at.date_input(key="matchlog_since").set_value(date(2026, 3, 5))
    at.date_input(key="matchlog_until").set_value(date(2026, 3, 1)).run()
    assert "since 2026-03-05 is after until 2026-03-01" in messages(at)
    assert not at.dataframe  # nothing shown as if it were an answer


def test_readable_columns_and_one_time_zone(app_env: str) -> None:
    at = match_log()
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["seq"]["label"] == "Record" and config["case_ref"]["label"] == "Case reference"
    # AppTest has no browser to say its time zone: UTC, and the page says why (a real browser's zone:
    # test_times_browser)
    assert config["time"]["label"] == "Time (UTC)" and config["time"]["type_config"]["timezone"] == "UTC"
    assert ("Times in your time zone, UTC (your browser did not say its time zone)"
            in " ".join(c.value for c in at.caption))


def test_auditors_export_exactly_what_is_shown_and_it_is_in_the_history(app_env: str) -> None:
    rt = Runtime(app_env)
    seq = rt.log.append({"action": "search", "outcome": "no_match", "operator": "operator1",
                         "purpose": "=HYPERLINK(\"http://evil.example\",\"x\")", "case_ref": "CR-9"}).seq
    rt.db.close()
    at = match_log(operator="operator1")
    on_screen = shown(at)
    assert seq in on_screen
    at.button(key="matchlog_export_button").click().run()
    assert "Export refused or failed" in messages(at) and "purpose" in messages(at)
    result, rows = exported(at)
    assert [int(r["Record"]) for r in rows] == on_screen
    assert list(rows[0]) == ["Record", "Time (UTC)", "Action", "Outcome", "Operator", "Purpose", "Case reference",
                             "Gallery", "Candidates", "Top candidate", "Top similarity", "Threshold (distance)",
                             "Threshold policy", "Reviews record", "Reviewer", "Decision", "Latency (ms)"]
    evil = next(r for r in rows if int(r["Record"]) == seq)
    assert evil["Purpose"].startswith("'=HYPERLINK")  # a formula in a spreadsheet no more
    first = next(r for r in rows if r["Top similarity"])
    assert first["Top similarity"] == "0.9500" and first["Time (UTC)"].count(":") == 2  # as on screen
    assert "the export is audit record" in messages(at)

    history = AppTest.from_file(APP.replace("streamlit_app.py", EXPORTS), default_timeout=60)
    history.session_state["auth_user"] = as_user("auditor1", "auditor")
    history.run()
    table = history.dataframe[-1].value
    latest = table.iloc[0]
    assert (latest["source"], latest["records"], latest["operator"]) == ("match_log", len(on_screen), "auditor1")
    assert "operator=operator1" in latest["filters"]
    assert "bad_input" not in set(table["outcome"]) and "missing_context" in set(table["outcome"])


def test_reviewers_may_read_but_not_export(app_env: str) -> None:
    at = match_log("reviewer1", "reviewer")
    assert shown(at)
    with pytest.raises(KeyError):
        at.button(key="matchlog_export_button")


def test_export_dates_are_picked_and_a_reversed_range_is_refused_and_recorded(app_env: str) -> None:
    at = AppTest.from_file(APP.replace("streamlit_app.py", EXPORTS), default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    assert at.date_input(key="exports_since").value is None  # empty until picked: no free text
    at.text_input(key="exports_purpose").input("quarterly report")
    today = date.today()
    at.date_input(key="exports_since").set_value(today)
    at.date_input(key="exports_until").set_value(today - timedelta(days=3))
    at.button[0].click().run()
    assert f"the To date {(today - timedelta(days=3)).isoformat()} is before the From date {today.isoformat()}" \
        in messages(at)
    assert "exports_file" not in at.session_state
    rt = Runtime(app_env)
    refused = [e.record for e in rt.log.list(AuditFilter(action="refused"))
               if e.record.details.get("attempted") == "export"]
    assert [(r.outcome, r.operator) for r in refused] == [("bad_input", "auditor1")]
    rt.db.close()
    at.date_input(key="exports_until").set_value(today)  # today only: the whole day, inclusive
    at.button[0].click().run()
    count = at.session_state["exports_file"][3]
    assert count >= 12  # every record of the scene was made today


def test_the_cookie_signs_in_a_new_browser_session_only_with_a_live_dashboard_session(
        app_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    live = as_user("auditor1", "auditor")
    rt = Runtime(app_env)
    api = actor_for(rt.db, "admin1", "admin", method="api_token")
    rt.db.close()
    for token, signed_in, said in ((live.token, "auditor1", None),
                                   (api.token, None, "held an API token"),
                                   ("ft_" + "A" * 43, None, "unknown session")):
        monkeypatch.setattr(common, "_cookie_token", lambda t=token: t)
        at = AppTest.from_file(APP, default_timeout=60).run()  # a new session: nothing in its state
        assert not at.exception
        user = at.session_state["auth_user"] if "auth_user" in at.session_state else None
        assert (user.name if user else None) == signed_in
        if said:
            assert [t.value for t in at.title] == ["facetrail"] and said in messages(at)


def test_the_table_is_one_page_the_newest_first_and_a_link_names_another(app_env: str) -> None:
    rt = Runtime(app_env)
    searches = [e.seq for e in rt.log.list(AuditFilter(action="search"))]
    for i in range(60):  # 72 searches: two pages of 50
        searches.append(rt.log.append({"action": "search", "outcome": "no_match", "operator": "operator1",
                                       "purpose": f"identify a suspect {i}", "case_ref": "CR-P"}).seq)
    rt.db.close()
    at = match_log()
    assert not at.exception
    assert shown(at) == searches[50:]  # the newest page: the 22 latest searches
    assert at.number_input(key="matchlog_page").value == 2 and "page" not in at.query_params
    assert "72 record(s); records 51-72 of them on this page" in " ".join(c.value for c in at.caption)
    at.number_input(key="matchlog_page").set_value(1).run()
    assert shown(at) == searches[:50] and at.query_params["page"] == "1"
    assert at.query_params["record"] == str(searches[0])  # the first record of the page shown is opened
    at = match_log(page="1")  # the link names the page: a reload or a bookmark shows the same records
    assert shown(at) == searches[:50] and at.number_input(key="matchlog_page").value == 1
    at = match_log(page="9")
    assert "The link's page: 9 is not a page of these records (1 to 2); showing the newest page." in messages(at)
    assert shown(at) == searches[50:]
    at = match_log(page="first")
    assert "page: 'first' is not a page number" in messages(at) and shown(at) == searches[50:]
    at = match_log(page="1", operator="operator2")  # fewer records than a page: one page, no chooser
    assert not at.number_input and shown(at) == [s for s in searches[:12] if s % 3 == 2]


def test_an_export_covers_every_page_the_filters_find(app_env: str) -> None:
    """The table shows one page; an auditor's export is of every record the filters find, not only that page."""
    rt = Runtime(app_env)
    for i in range(60):
        rt.log.append({"action": "search", "outcome": "no_match", "operator": "operator1",
                       "purpose": f"identify a suspect {i}", "case_ref": "CR-P"})
    wanted = [e.seq for e in rt.log.list(AuditFilter(action="search", operator="operator1"))]
    rt.db.close()
    assert len(wanted) > 50  # more than one page
    at = match_log(operator="operator1")
    assert 0 < len(shown(at)) < len(wanted) and set(shown(at)) < set(wanted)  # the newest page only
    result, rows = exported(at)
    assert [int(r["Record"]) for r in rows] == wanted
    assert result.records == len(wanted)
