"""The demo scene on real faces, and the Search page end to end (needs the shared data and the Dlib model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import AuditFilter, EvaluationStore
from audit.accounts import UserStore
from audit.runtime import Runtime
from core.errors import ManifestError
from dashboard.demo import DEMO_USERS, GALLERY, build_scene, operator_plan, resolve_data_dir
from tests.dashboard.conftest import APP, DATA, as_user, copy_db

pytestmark = [pytest.mark.data, pytest.mark.model, pytest.mark.slow]


@pytest.fixture
def demo_env(demo_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's own copy of the demo scene, served to the pages."""
    copy = copy_db(Path(demo_db), tmp_path)
    monkeypatch.setenv("FACETRAIL_DB", copy)
    yield copy


def _probe_bytes(n: int = 0) -> bytes:
    probes = sorted((DATA / "congress_small" / "images").glob("*/c116.jpg"))
    return probes[n].read_bytes()


def _search_page(name: str = "operator1") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["auth_user"] = as_user(name, "operator")
    at.run()
    return at.switch_page("app_pages/search.py").run()


def test_scene_contents(demo_db: str) -> None:
    rt = Runtime(demo_db)
    assert {u.name for u in UserStore(rt.db).list()} == {n for n, _ in DEMO_USERS}
    assert rt.galleries.info(GALLERY).size > 40
    searches = rt.log.list(AuditFilter(action="search", gallery=GALLERY))
    assert len(searches) == 8
    plan = operator_plan(8)
    assert [(e.record.operator, e.record.purpose, e.record.case_ref) for e in searches] == plan
    assert all(e.record.legal_basis for e in searches)
    datasets = {e.dataset for e in EvaluationStore(rt.db).list()}
    assert datasets == {"congress_small", "lfw_small"}
    assert len(rt.log.list(AuditFilter(action="evaluate"))) == 2
    assert rt.log.verify().ok


def test_scene_is_idempotent(demo_db: str, tmp_path: Path) -> None:
    rt = Runtime(copy_db(Path(demo_db), tmp_path))
    size = rt.log.size()
    report = build_scene(rt, DATA, gallery_limit=15, probe_limit=8, bootstrap=20, workers=1, echo=lambda _: None)
    assert report.searches_run == 0 and report.searches_skipped == 8 and not report.users_created
    # nothing is added but the sign-in (and sign-out) of the auditor whose evaluations the runner found stored
    added = [(e.record.action, e.record.operator) for e in rt.log.list()][size:]
    assert added == [("sign_in", "auditor1"), ("sign_out", "auditor1")]
    rt.db.close()


def test_the_scene_acts_through_signed_in_accounts_and_marks_the_demo(demo_db: str) -> None:
    rt = Runtime(demo_db)
    assert rt.accounts.is_demo()
    records = [e.record for e in rt.log.list()]
    assert records[0].action == "add_user" and records[0].details["first_account"] is True
    acted = {r.operator for r in records if r.action in ("search", "enroll", "create_gallery", "review", "evaluate")}
    assert acted <= {n for n, _ in DEMO_USERS}
    signed_in = {r.operator for r in records if r.action == "sign_in"}
    assert acted <= signed_in  # every account that acted signed in first (its records say how: details.auth)
    assert all(r.details["auth"]["method"] == "password_session" for r in records
               if r.action in ("search", "review", "evaluate"))
    # the first match's operator tries to confirm it: refused (operators do not review); no match, no attempt
    matches = [r for r in records if r.action == "search" and r.outcome == "ok" and r.candidates]
    refused = [r.outcome for r in records if r.action == "refused" and r.details["attempted"] == "review"]
    assert refused == (["forbidden"] if matches else [])


def test_missing_data_folder_names_the_fetch_command(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(ManifestError, match="facetrail datasets fetch lfw"):
        resolve_data_dir(tmp_path_factory.mktemp("empty"))


def test_search_page_states_the_false_candidate_chance(demo_env: str) -> None:
    at = _search_page()
    assert not at.exception
    assert any("Before you search" in w.value for w in at.warning)


def test_search_without_purpose_is_refused_and_recorded(demo_env: str) -> None:
    rt = Runtime(demo_env)
    size = rt.log.size()
    at = _search_page()
    at.text_input(key="search_case").input("CR-1")
    at.file_uploader(key="search_upload").set_value(("probe.jpg", _probe_bytes(), "image/jpeg"))
    at.button[0].click().run()
    assert not at.exception
    assert any("refused" in e.value and "purpose" in e.value for e in at.error)
    refused = rt.log.get(size + 1).record
    assert (refused.action, refused.outcome, refused.operator) == ("refused", "missing_context", "operator1")
    assert rt.log.size() == size + 1


def test_search_without_case_is_refused(demo_env: str) -> None:
    rt = Runtime(demo_env)
    size = rt.log.size()
    at = _search_page()
    at.text_input(key="search_purpose").input("identify a suspect")
    at.file_uploader(key="search_upload").set_value(("probe.jpg", _probe_bytes(), "image/jpeg"))
    at.button[0].click().run()
    assert any("no case reference" in e.value for e in at.error)
    assert rt.log.size() == size + 1  # the refusal is recorded
    refusal = rt.log.get(size + 1).record
    assert (refusal.action, refusal.outcome, refusal.operator) == ("refused", "missing_context", "operator1")
    assert refusal.details["attempted"] == "search"


def test_search_through_the_page_reaches_the_log_and_the_chain(demo_env: str) -> None:
    rt = Runtime(demo_env)
    at = _search_page("operator3")
    at.text_input(key="search_purpose").input("identify a person seen on CCTV")
    at.text_input(key="search_case").input("CR-2024-9999")
    at.file_uploader(key="search_upload").set_value(("probe.jpg", _probe_bytes(3), "image/jpeg"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    heading = next(s.value for s in at.subheader if s.value.startswith("Result"))
    seq = int(heading.rsplit("#", 1)[1])
    record = rt.log.get(seq).record
    assert (record.action, record.operator, record.case_ref) == ("search", "operator3", "CR-2024-9999")
    assert record.purpose == "identify a person seen on CCTV"
    report = rt.log.verify()
    assert report.ok and report.head_seq >= seq

    log_page = AppTest.from_file(APP, default_timeout=120)
    log_page.session_state["auth_user"] = as_user("auditor1", "auditor")
    log_page.run()
    log_page.switch_page("app_pages/match_log.py").run()
    log_page.selectbox(key="matchlog_operator").set_value("operator3").run()
    table = log_page.dataframe[0].value
    assert seq in table["seq"].tolist()
    log_page.selectbox(key="matchlog_open").set_value(seq).run()
    assert any(f"Record #{seq}" in s.value for s in log_page.subheader)


@pytest.mark.parametrize("page", ["overview", "match_log", "demographics", "integrity", "exports"])
def test_auditor_pages_render_on_the_demo(demo_env: str, page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not at.error


def test_verify_through_the_page_is_recorded(demo_env: str) -> None:
    member = sorted((DATA / "congress_small" / "images").iterdir())[0]
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["auth_user"] = as_user("operator2", "operator")
    at.run()
    at.switch_page("app_pages/verify.py").run()
    at.text_input(key="verify_purpose").input("confirm an identity document")
    at.text_input(key="verify_case").input("CR-2024-0500")
    at.file_uploader(key="verify_first").set_value(("a.jpg", (member / "c116.jpg").read_bytes(), "image/jpeg"))
    at.file_uploader(key="verify_second").set_value(("b.jpg", (member / "c118.jpg").read_bytes(), "image/jpeg"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    message = next(m.value for m in (*at.success, *at.info) if "Audit record #" in m.value)
    seq = int(message.split("Audit record #")[1].split(";")[0])
    record = Runtime(demo_env).log.get(seq).record
    assert (record.action, record.operator, record.case_ref) == ("verify", "operator2", "CR-2024-0500")


def test_demo_command_builds_a_small_scene(tmp_path_factory: pytest.TempPathFactory,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dashboard.cli import main

    db = str(tmp_path_factory.mktemp("cli-demo") / "demo.duckdb")
    args = ["--db", db, "demo", "--no-serve", "--data", str(DATA), "--gallery-limit", "4", "--probe-limit", "3",
            "--workers", "1", "--no-evaluate", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["searches_run"] == 3 and len(first["users_created"]) == len(DEMO_USERS)
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["searches_run"] == 0 and again["searches_skipped"] == 3 and not again["users_created"]
