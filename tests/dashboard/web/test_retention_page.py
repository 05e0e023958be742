"""The Retention page (AppTest): auditors and admins see the schedules and what is due, as plain text; the page
erases nothing; other roles do not reach it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import AuditContext, Runtime, set_gallery_retention
from core import Embedding, EnrollItem, Face
from tests.auth import actor_for
from tests.conftest import make_config, random_unit
from tests.dashboard.conftest import APP, as_user

PAGE = "app_pages/retention.py"
PURPOSE = "**fair** security [see](https://example.invalid/x) <b>kept</b>"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    db = str(tmp_path / "ret.duckdb")
    rt = Runtime(db)
    config = make_config()
    vectors = random_unit(2)
    rt.galleries.create("fair", config)
    rt.galleries.enroll("fair", [EnrollItem(f"s{i}", Embedding(vectors[i], f"{i:064x}", Face(0, 0, 9, 9, 1.0, "dlib"),
                                                               1, config), f"{i}.png") for i in range(2)])
    set_gallery_retention(rt, "fair", AuditContext(purpose=PURPOSE), until=datetime.now(UTC).date().isoformat(),
                          actor=actor_for(rt.db, "root", "admin"))
    rt.close()
    monkeypatch.setenv("FACETRAIL_DB", db)
    yield db


def open_as(name: str, role: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user(name, role)
    return at.run()


def test_an_auditor_sees_what_is_due_as_plain_text_and_nothing_is_erased(served: str) -> None:
    at = open_as("dpo", "auditor").switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Retention"]
    frames = [df.value for df in at.dataframe]
    assert any(PURPOSE in set(f.get("purpose", [])) for f in frames)  # the purpose, verbatim, in a table cell
    assert any("fair" in set(f.get("gallery_name", [])) for f in frames if "until" in f and "faces" in f)
    counts = next(dict(zip(f["what"], f["due"], strict=True)) for f in frames if "what" in f)
    assert counts["log field keys of subjects no record names since the cut-off (destroyed by the run)"] == 0
    rendered = [str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error)]
    assert not any("example.invalid" in r or "<b>" in r for r in rendered)  # never as markup
    rt = Runtime(served)
    try:
        assert {g.name for g in rt.galleries.list()} == {"fair"} and rt.galleries.info("fair").size == 2
        assert rt.log.get(rt.log.size()).record.action == "retention_schedule"  # the dry run recorded nothing
    finally:
        rt.close()


@pytest.mark.parametrize("role", ["operator", "reviewer"])
def test_other_roles_do_not_reach_the_page(served: str, role: str) -> None:
    at = open_as(f"a-{role}", role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
