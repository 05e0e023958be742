"""AppTest of every page on a fake scene (no models): renders, roles, empty states."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import REASON_CODES
from tests.dashboard.conftest import APP, as_user, build_fake_scene

PAGES = {
    "overview": "app_pages/overview.py",
    "search": "app_pages/search.py",
    "verify": "app_pages/verify.py",
    "match_log": "app_pages/match_log.py",
    "demographics": "app_pages/demographics.py",
    "integrity": "app_pages/integrity.py",
    "exports": "app_pages/exports.py",
    "admin": "app_pages/admin.py",
}

ALLOWED = {
    "operator1": {"overview", "search", "verify", "demographics"},
    "reviewer1": {"overview", "match_log", "demographics"},
    "auditor1": {"overview", "match_log", "demographics", "integrity", "exports"},
    "admin1": {"overview", "demographics", "integrity", "admin"},
}
ROLE = {"operator1": "operator", "reviewer1": "reviewer", "auditor1": "auditor", "admin1": "admin"}


def records_table(at):  # type: ignore[no-untyped-def]
    """The Match log's records table (a reviewer's queue, above it, is another table)."""
    return next(d.value for d in at.dataframe if "seq" in d.value.columns)


def app_as(name: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if name is not None:
        at.session_state["auth_user"] = as_user(name, ROLE[name])
    return at.run()


def page_text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.title, *at.subheader, *at.caption, *at.info, *at.warning,
                               *at.error, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_signed_out_sees_only_sign_in(app_env: str) -> None:
    at = app_as(None)
    assert not at.exception
    assert [t.value for t in at.title] == ["facetrail"]
    assert at.text_input(key="signin_name") is not None
    for page in PAGES.values():  # no other page is even registered
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


def test_sign_in_with_password(app_env: str) -> None:
    at = app_as(None)
    at.text_input(key="signin_name").input("auditor1")
    at.text_input(key="signin_password").input("wrong-password")
    at.button[0].click().run()
    assert "Unknown account or wrong password." in [e.value for e in at.error]
    at.text_input(key="signin_password").input("auditor1-demo")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["auth_user"].name == "auditor1"
    assert "Overview" in [t.value for t in at.title]


@pytest.mark.parametrize("name", sorted(ALLOWED))
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_renders_or_refuses(app_env: str, name: str, page: str) -> None:
    at = app_as(name)
    if page not in ALLOWED[name]:  # not in this role's navigation at all
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(PAGES[page])
        return
    at.switch_page(PAGES[page]).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title], f"{page} rendered nothing for {name}"
    assert not any("Access denied" in e.value for e in at.error)


@pytest.mark.parametrize("page", ["search", "verify", "exports", "admin", "integrity"])
def test_page_refuses_wrong_role_on_the_server(app_env: str, page: str) -> None:
    """Run the page script directly (bypassing the navigation): its own check stops it."""
    at = AppTest.from_file(APP.replace("streamlit_app.py", PAGES[page]), default_timeout=60)
    at.session_state["auth_user"] = as_user("reviewer1", "reviewer")
    at.run()
    assert not at.exception
    assert any("Access denied" in e.value for e in at.error)
    assert not at.file_uploader and not at.button


def test_page_refuses_signed_out_on_the_server(app_env: str) -> None:
    at = AppTest.from_file(APP.replace("streamlit_app.py", PAGES["match_log"]), default_timeout=60).run()
    assert not at.exception
    assert any("Sign in" in w.value for w in at.warning)
    assert not at.dataframe


def test_auditor_cannot_reach_search(app_env: str) -> None:
    at = app_as("auditor1")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGES["search"])
    direct = AppTest.from_file(APP.replace("streamlit_app.py", PAGES["search"]), default_timeout=60)
    direct.session_state["auth_user"] = as_user("auditor1", "auditor")
    direct.run()
    assert any("Access denied" in e.value for e in direct.error)
    assert not direct.file_uploader


def test_overview_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = tmp_path / "fresh.duckdb"
    build_fake_scene(fresh)
    monkeypatch.setenv("FACETRAIL_DB", str(fresh))
    at = app_as("auditor1")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Searches"] == "12"
    assert metrics["Audit chain"] == "intact"
    assert any(c.value == "1 refused attempt recorded" for c in at.caption)


def test_match_log_shows_two_person_status(app_env: str) -> None:
    at = app_as("auditor1")
    at.switch_page(PAGES["match_log"]).run()
    assert not at.exception
    at.selectbox(key="matchlog_open").set_value(1).run()
    frames = [d.value for d in at.dataframe]
    status = next(f for f in frames if "status" in f.columns)
    assert status["status"].tolist() == ["confirmed"]
    assert "reviewer1, reviewer2" in status["confirmations"].tolist()
    assert not at.radio  # auditors cannot review


def test_reviewer_records_review_and_self_review_is_refused(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("reviewer2", "reviewer")
    at.run()
    at.switch_page(PAGES["match_log"]).run()
    at.selectbox(key="matchlog_open").set_value(4).run()
    at.radio(key="matchlog_decision").set_value("reject")
    at.selectbox(key="matchlog_reason").set_value(REASON_CODES[2])
    at.text_input(key="matchlog_note").input("not the same person")
    at.button(key="FormSubmitter:matchlog_form-Record review").click().run()
    assert not at.exception
    assert any("Review recorded" in s.value for s in at.success), page_text(at)
    own = AppTest.from_file(APP, default_timeout=60)
    own.session_state["auth_user"] = as_user("operator3", "reviewer")  # the operator of #6 reviewing it
    own.run()
    own.switch_page(PAGES["match_log"]).run()
    own.selectbox(key="matchlog_open").set_value(6).run()
    assert any("cannot review it" in i.value for i in own.info)
    own.radio(key="matchlog_decision").set_value("confirm")
    own.selectbox(key="matchlog_reason").set_value(REASON_CODES[0])
    own.button(key="FormSubmitter:matchlog_form-Record review").click().run()
    assert any("two-person rule" in e.value for e in own.error), page_text(own)


def test_integrity_verify_and_key(app_env: str) -> None:
    at = app_as("auditor1")
    at.switch_page(PAGES["integrity"]).run()
    at.button(key="integrity_verify").click().run()
    assert not at.exception
    assert any("Intact" in s.value for s in at.success)
    assert "BEGIN PUBLIC KEY" in at.code[0].value


def test_export_needs_purpose_and_is_recorded(app_env: str) -> None:
    at = app_as("auditor1")
    at.switch_page(PAGES["exports"]).run()
    at.button[0].click().run()
    assert any("refused" in e.value for e in at.error)
    at.text_input(key="exports_purpose").input("board report")
    at.button[0].click().run()
    assert not at.exception
    assert any("the export is audit record" in s.value for s in at.success)


def test_demographics_renders_rates(app_env: str) -> None:
    at = app_as("operator1")
    at.switch_page(PAGES["demographics"]).run()
    assert not at.exception
    assert any("sex" in str(sb.options) for sb in at.selectbox)
    at.selectbox(key="demographics_grouping").set_value("race").run()
    assert not at.exception
    assert len(at.dataframe) >= 3


def test_search_without_gallery_explains(app_env: str) -> None:
    at = app_as("operator1")
    at.switch_page(PAGES["search"]).run()
    assert not at.exception
    assert any("No gallery yet" in i.value for i in at.info)


def test_admin_creates_an_account(app_env: str) -> None:
    at = app_as("admin1")
    at.switch_page(PAGES["admin"]).run()
    at.text_input(key="admin_new_name").input("operator7")
    at.selectbox(key="admin_new_role").set_value("operator")
    at.text_input(key="admin_new_password").input("long-enough-pass")
    at.button[0].click().run()
    assert not at.exception
    assert any("Created operator operator7" in s.value for s in at.success)
    login = app_as(None)
    login.text_input(key="signin_name").input("operator7")
    login.text_input(key="signin_password").input("long-enough-pass")
    login.button[0].click().run()
    assert login.session_state["auth_user"].role == "operator"


def test_excerpt_from_the_page_verifies_with_the_public_key(app_env: str, tmp_path: Path) -> None:
    from audit import verify_excerpt
    from audit.runtime import Runtime

    at = app_as("auditor1")
    at.switch_page(PAGES["exports"]).run()
    at.selectbox(key="exports_kind").set_value("Verifiable excerpt (JSON, checkable with the public key)")
    at.selectbox(key="exports_action").set_value("search")
    at.text_input(key="exports_purpose").input("excerpt for the oversight board")
    at.button[0].click().run()
    assert not at.exception, at.exception
    name, data, _, count, _, _ = at.session_state["exports_file"]
    assert count == 12  # the fake scene's 12 searches, in this test's own copy of it
    path = tmp_path / name
    path.write_bytes(data)
    report = verify_excerpt(path, Runtime(app_env).log.public_key_pem())
    assert report.ok and report.records == count


def test_idle_session_is_signed_out(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.session_state["auth_last_seen"] = -1e9  # long ago
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["facetrail"]
    assert any("without activity" in i.value for i in at.info)


def test_match_log_filters_by_review_status(app_env: str) -> None:
    at = app_as("reviewer1")
    at.switch_page(PAGES["match_log"]).run()
    at.selectbox(key="matchlog_review").set_value("confirmed").run()
    assert not at.exception
    assert records_table(at)["seq"].tolist() == [1]
    at.selectbox(key="matchlog_review").set_value("pending").run()
    pending = records_table(at)["seq"].tolist()
    assert 1 not in pending and 3 not in pending and pending


def test_admin_can_erase_a_subject_while_galleries_exist(app_env: str, fake_engine) -> None:
    """The erase form sits beside the gallery list (it was unreachable whenever a gallery existed)."""
    from audit import Runtime
    from core import EnrollItem
    from tests.conftest import make_config
    from tests.fakes import face_png

    rt = Runtime(app_env)
    rt.galleries.create("watchlist", make_config())
    rt.galleries.enroll("watchlist", [EnrollItem("P1", fake_engine.embed(face_png("P1")), "p1.png")])
    rt.db.close()
    at = app_as("admin1")
    at.switch_page(PAGES["admin"]).run()
    assert not at.exception, at.exception
    assert at.text_input(key="admin_erase_subject") is not None
    assert at.selectbox(key="admin_erase_gallery").options == ["watchlist"]
