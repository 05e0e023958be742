"""Dashboard sessions from the attacker's side: forged, revoked, locked out; and the demo password hint."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from audit import Actor, AuditFilter, NotAuthenticated
from audit.runtime import Runtime
from tests.auth import actor_for
from tests.dashboard.conftest import APP, as_user


def signin_page() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60).run()


def page_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.markdown, *at.info, *at.error, *at.caption))


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    return at.button[0].click().run()


def test_the_demo_password_scheme_shows_only_on_the_demo_database(app_env: str) -> None:
    assert "-demo" not in page_text(signin_page())  # the fake scene is not marked as the demo's
    rt = Runtime(app_env)
    rt.accounts.mark_demo(actor_for(rt.db, "admin1", "admin"))
    rt.db.close()
    assert "<name>-demo" in page_text(signin_page())


def test_sign_ins_and_failures_are_recorded_and_guessing_locks_out(app_env: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRAIL_SIGNIN_MAX_FAILURES", "2")
    for guess in ("guess-1", "guess-2"):
        at = sign_in(signin_page(), "Auditor1 ", guess)
        assert "Unknown account or wrong password" in " ".join(e.value for e in at.error)
    at = sign_in(signin_page(), "auditor1", "auditor1-demo")  # the right password, during the lockout
    assert any("locked" in e.value for e in at.error) and "auth_user" not in at.session_state
    rt = Runtime(app_env)
    tried = [e.record for e in rt.log.list(AuditFilter(action="refused")) if e.record.details["attempted"] == "sign_in"]
    assert [(r.outcome, r.details["account"], r.details["method"]) for r in tried] == [
        ("bad_credentials", "auditor1", "dashboard_session"), ("bad_credentials", "auditor1", "dashboard_session"),
        ("locked_out", "auditor1", "dashboard_session")]


def test_a_forged_session_in_the_browser_state_is_not_signed_in(app_env: str) -> None:
    real = as_user("admin1", "admin")
    forged = Actor("admin1", "admin", "dashboard_session", real.credential_id, real.expires_at, "ft_" + "A" * 43)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = forged
    at.run()
    assert [t.value for t in at.title] == ["facetrail"]  # back on the sign-in page
    assert any("unknown session" in i.value for i in at.info)


def test_a_revoked_session_ends_at_the_next_click(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    assert "Signed in as **auditor1**" in page_text(at)
    rt = Runtime(app_env)
    rt.accounts.revoke_token(actor_for(rt.db, "admin1", "admin"), at.session_state["auth_user"].credential_id)
    rt.db.close()
    at.run()
    assert [t.value for t in at.title] == ["facetrail"]
    assert any("revoked" in i.value for i in at.info)


def test_a_role_change_applies_at_the_next_click(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("reviewer1", "reviewer")
    at.run()
    assert at.session_state["auth_user"].role == "reviewer"
    rt = Runtime(app_env)
    rt.accounts.set_role(actor_for(rt.db, "admin1", "admin"), "reviewer1", "auditor")
    rt.db.close()
    at.run()
    assert at.session_state["auth_user"].role == "auditor"
    assert "(auditor)" in page_text(at)


def test_signing_out_revokes_the_session(app_env: str) -> None:
    at = sign_in(signin_page(), "operator1", "operator1-demo")
    actor = at.session_state["auth_user"]
    at.button(key="app_sign_out").click().run()
    assert [t.value for t in at.title] == ["facetrail"]
    rt = Runtime(app_env)
    with pytest.raises(NotAuthenticated, match="signed out"):
        rt.accounts.authenticate(actor.token)
    assert [e.record.operator for e in rt.log.list(AuditFilter(action="sign_out"))] == ["operator1"]
