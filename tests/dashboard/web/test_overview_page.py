"""The Overview page on the fake scene: the six questions answered, each number a link to its records in the Match log."""

from __future__ import annotations

from urllib.parse import parse_qs

from streamlit.testing.v1 import AppTest

from audit.runtime import Runtime
from tests.dashboard.conftest import APP, as_user


def overview_as(name: str, role: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user(name, role)
    return at.run()


def links(at: AppTest) -> dict[str, dict[str, list[str]]]:
    """Label -> query parameters of every link on the page."""
    return {p.proto.label: parse_qs(p.proto.query_string) for p in at.get("page_link")}


def text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.markdown, *at.caption, *at.subheader, *at.info))


def test_the_tiles_answer_with_counts_of_searches_and_say_what_the_share_is(app_env: str) -> None:
    at = overview_as("auditor1", "auditor")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    # the fake scene: 12 searches, 8 with a candidate, 4 without; search 1 confirmed, search 3 rejected
    assert metrics["Searches"] == "12"
    assert metrics["Share returning a candidate"] == "67%"
    assert "Match rate" not in metrics  # the share of searches with a candidate is not a match rate
    assert metrics["Searches pending review"] == "6"  # searches, as the match log counts them ...
    assert metrics["Searches confirmed"] == "1"
    assert "6 candidates waiting" in text(at)  # ... and the candidates, named as such
    assert "1 candidate confirmed, 1 rejected" in text(at)
    assert metrics["Looser than policy"] == "0"
    assert metrics["Audit chain"] == "intact"
    help_text = next(m.help for m in at.metric if m.label == "Share returning a candidate")
    assert "not a match rate" in help_text
    assert "1 refused attempt recorded" in text(at)


def test_every_tile_and_bar_links_to_the_match_log_with_the_agreed_parameters(app_env: str) -> None:
    at = overview_as("auditor1", "auditor")
    found = links(at)
    assert found["With a candidate"] == {"outcome": ["candidates"]}
    assert found["No candidate"] == {"outcome": ["none"]}
    assert found["Pending"] == {"review": ["pending"]}
    assert found["Confirmed"] == {"review": ["confirmed"]}
    assert found["Rejected"] == {"review": ["rejected"]}
    assert found["Looser"] == {"looser": ["1"]}
    assert found["operator1: 4 searches"] == {"operator": ["operator1"]}
    assert found["arrest\\_photos: 12 searches"] == {"gallery": ["arrest_photos"]}  # label escaped, value as is
    today = found["today: 6"]
    assert today["review"] == ["pending"] and today["since"] == today["until"]
    assert found["arrest\\_photos: latest search, record 12"] == {"record": ["12"]}
    assert {p.proto.page for p in at.get("page_link")} == {"match_log"}


def test_each_chart_has_its_numbers_as_a_table_and_a_text_alternative(app_env: str) -> None:
    at = overview_as("auditor1", "auditor")
    tables = [d.value for d in at.dataframe]
    by_operator = next(t for t in tables if "Operator" in t.columns)
    assert by_operator.set_index("Operator").loc["operator2", ["Searches", "No candidate"]].tolist() == [4, 4]
    assert any("Reviewer" in t.columns for t in tables)
    reviewers = next(t for t in tables if "Reviewer" in t.columns).set_index("Reviewer")
    assert reviewers.loc["reviewer1", "Candidates confirmed"] == 1 and reviewers.loc["reviewer1", "Candidates rejected"] == 1
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # by operator, by gallery
    assert all("searches" in c.proto.alt for c in charts)  # a text alternative on the chart itself
    assert "operator2: 4 searches, 0 with a candidate" in charts[0].proto.alt


def test_purposes_are_shown_in_full_and_as_text(app_env: str) -> None:
    long = "identify the person seen at the *loading bay* <b>door</b> at 03:10, case file 7 of the burglary inquiry"
    rt = Runtime(app_env)
    try:
        rt.log.append({"action": "search", "outcome": "no_match", "operator": "operator1", "purpose": long,
                       "case_ref": "CR-9", "gallery": {"name": "arrest_photos", "fingerprint": "10-" + "0" * 32,
                                                       "size": 10}, "candidates": []})
    finally:
        rt.db.close()
    at = overview_as("auditor1", "auditor")
    purposes = next(d.value for d in at.dataframe if "Purpose" in d.columns)
    assert long in purposes["Purpose"].tolist()  # in full, in a table cell (text, never markdown)
    assert all(long not in m.value for m in at.markdown)


def test_a_reviewer_sees_pending_first_and_an_operator_gets_no_match_log_links(app_env: str) -> None:
    reviewer = overview_as("reviewer1", "reviewer")
    heads = [s.value for s in reviewer.subheader]
    assert heads[0] == "Pending reviews by age"
    assert links(reviewer)
    operator = overview_as("operator1", "operator")
    assert not operator.exception
    assert not operator.get("page_link")  # operators may not read the match log: no link that would refuse
    assert {m.label: m.value for m in operator.metric}["Searches"] == "12"
    assert any("returned a candidate (a lead for review, not a match)" in c.value for c in operator.caption)


def test_the_deployed_configuration_reads_its_rates_in_words(app_env: str) -> None:
    at = overview_as("auditor1", "auditor")
    deployed = next(d.value for d in at.dataframe if "False-match rate (1:1 pairs)" in d.value.columns).iloc[0]
    # the fake scene searched at 0.07; its evaluation has no false match that close in 7,020 impostor pairs
    assert deployed["Gallery"] == "arrest_photos" and deployed["Threshold (cosine distance)"] == "0.070"
    assert deployed["False-match rate (1:1 pairs)"] == "fewer than 1 in 7,020"
    assert deployed["Missed-match rate (1:1 pairs)"] == "not evaluated at this threshold"
    assert "histogram" in deployed["Evaluation"]
    assert "None" not in " ".join(str(v) for v in deployed.values) and "e-" not in " ".join(map(str, deployed.values))
