"""The probe's group on the dashboard, from the operator's and the reviewer's side (AppTest).

The operator may state the probe's group on the Search page, choosing only among the designated
evaluation's group labels (nothing is preselected: "not stated"); the search records it; the
reviewer sees it on the record header and in the review screen's error context with the
false-match rate at the score for that group, or "not stated". Real audited service and log;
fake face models (:mod:`tests.video_fakes`), no dataset image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import Runtime
from audit.policy import policy_fields
from tests.dashboard.groups import LABELS, evaluate_two_groupings
from tests.dashboard.web.test_threshold_policy_page import ALPHA, page, still
from tests.video_fakes import VideoFakePipeline, enroll_fake

pytestmark = [pytest.mark.model]



@pytest.fixture(params=[True], ids=["designated"])
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Gallery ``g`` (alpha, bravo) and, when the param is true, a designated evaluation of its configuration."""
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = str(tmp_path / "probe_group.duckdb")
    rt = Runtime(db)
    try:
        enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, "subject-bravo"])
        run = evaluate_two_groupings(rt, rt.engine_for_gallery("g").config.to_dict())
        if request.param:
            rt.log.append({"action": "threshold_policy", "operator": "admin1", "purpose": "designate",
                           **policy_fields(None, None, None, "the board designates the evaluation", run)})
    finally:
        rt.close()
    monkeypatch.setenv("FACETRAIL_DB", db)
    yield db


def search(group: str | None) -> AppTest:
    at = page("app_pages/search.py")
    at.text_input(key="search_purpose").input("identify the person on the still")
    at.text_input(key="search_case").input("CR-2026-0042")
    if group is not None:
        at.selectbox(key="search_probe_group").set_value(group)
    at.file_uploader(key="search_upload").set_value(("still.png", still(), "image/png"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def last_search(db: str):  # type: ignore[no-untyped-def]
    rt = Runtime(db)
    try:
        return [e.record for e in rt.log.list() if e.record.action == "search"][-1]
    finally:
        rt.close()


def review(seq: int) -> AppTest:
    at = page("app_pages/match_log.py", "reviewer1", "reviewer")
    at.selectbox(key="matchlog_open").set_value(seq).run()
    assert not at.exception, at.exception
    return at


def header(at: AppTest) -> dict[str, str]:
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["field", "value"])
    return dict(zip(table["field"], table["value"], strict=True))


def texts(at: AppTest) -> str:
    return "\n".join(str(t.value) for t in at.text)


def test_the_operator_chooses_only_among_the_designated_groups_and_nothing_is_preselected(env: str) -> None:
    at = page("app_pages/search.py")
    box = at.selectbox(key="search_probe_group")
    assert list(box.options) == LABELS and box.value is None
    assert box.placeholder == "not stated"


def test_a_stated_group_is_recorded_shown_on_the_header_and_in_the_error_context(env: str) -> None:
    at = search("sex=M")
    record = last_search(env)
    assert record.outcome == "ok" and record.details["probe_group"] == "sex=M"
    assert any("probe's group sex=M" in c.value for c in at.caption)
    shown = review(record.seq)
    assert header(shown)["Probe's group"] == "sex=M"
    context = texts(shown)
    assert "Probe's group: sex=M (stated by the operator at search time)." in context
    probe_lines = [line for line in context.splitlines() if "(probe's group)" in line]
    assert len(probe_lines) == 1 and probe_lines[0].startswith("sex M (probe's group): ")
    assert "impostor pairs" in probe_lines[0]  # the rate at the score for the probe's group, in words


def test_without_a_statement_the_record_has_none_and_the_reviewer_reads_not_stated(env: str) -> None:
    search(None)
    record = last_search(env)
    assert record.outcome == "ok" and "probe_group" not in record.details
    shown = review(record.seq)
    assert header(shown)["Probe's group"] == "not stated"
    context = texts(shown)
    assert "Probe's group: not stated." in context and "(probe's group)" not in context


@pytest.mark.parametrize("env", [False], indirect=True, ids=["none designated"])
def test_with_no_designated_evaluation_no_group_is_offered(env: str) -> None:
    at = page("app_pages/search.py")
    assert "search_probe_group" not in [s.key for s in at.selectbox]
    search(None)
    shown = review(last_search(env).seq)
    assert "Probe's group: not stated." in texts(shown)
