"""Accounts: names, argon2 hashes, roles and permissions, sign-in with lockout, sessions and tokens, records.

Most tests take the attacker's side: guessing passwords, reusing a revoked token, creating
an admin without one, a session that should have ended, an account name in another case.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.access import AccountService
from audit.accounts import (
    ACTION_PERMISSIONS,
    PERMISSIONS,
    ROLES,
    AccountDisabled,
    Forbidden,
    LockedOut,
    NotAuthenticated,
    SignInRefused,
    UserStore,
    can,
    normalize_name,
)
from audit.session import AuditContext, AuditSession
from audit.trail.log import AuditLog
from core.errors import BadInput, NotFound
from core.settings import Settings
from core.storage.connection import Database
from tests.auth import FAST_HASHER

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store() -> UserStore:
    return UserStore(Database(":memory:"), hasher=FAST_HASHER)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> Iterator[AccountService]:
    db = Database(tmp_path / "accounts.duckdb")
    settings = replace(Settings(), db=str(tmp_path / "accounts.duckdb"), signin_max_failures=3,
                       signin_lockout_minutes=15, session_minutes=30, session_hours=8, token_days=10)
    yield AccountService(db, AuditLog(db, key_path=tmp_path / "key"), settings, hasher=FAST_HASHER, clock=clock)
    db.close()


def records(service: AccountService) -> list[tuple[str, str, str | None]]:
    return [(e.record.action, e.record.outcome, e.record.operator) for e in service.log.list()]


def with_admin(service: AccountService):
    service.add_user(None, "root", "admin", "root-password")
    return service.sign_in("root", "root-password")


# -- names, hashes, roles -------------------------------------------------------------------------------


def test_add_and_authenticate(store: UserStore) -> None:
    user = store.add("operator1", "operator", "correct horse")
    assert (user.name, user.role) == ("operator1", "operator")
    assert store.authenticate("operator1", "correct horse") == store.get("operator1")
    assert store.authenticate("operator1", "wrong horse!") is None
    assert store.authenticate("nobody", "correct horse") is None
    with store.db.connect() as con:
        digest = con.execute("SELECT password_hash FROM users").fetchall()[0][0]
    assert digest.startswith("$argon2id$") and "correct horse" not in digest


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [("Bad Name", "operator", "longenough"), ("ok1", "superuser", "longenough"), ("ok2", "auditor", "short"),
     ("émile", "operator", "longenough"), ("x", "operator", "longenough")],
)
def test_add_refuses_bad_input(store: UserStore, name: str, role: str, password: str) -> None:
    with pytest.raises(BadInput):
        store.add(name, role, password)


def test_duplicate_and_unknown(store: UserStore) -> None:
    store.add("auditor1", "auditor", "longenough")
    with pytest.raises(BadInput, match="already exists"):
        store.add("auditor1", "admin", "longenough")
    with pytest.raises(NotFound):
        store.get("auditor2")


@pytest.mark.parametrize("variant", ["Operator3", "operator3 ", " OPERATOR3", "ｏｐｅｒａｔｏｒ３", "operator3\t"])
def test_names_are_one_account_after_normalisation(store: UserStore, variant: str) -> None:
    store.add("operator3", "operator", "longenough")
    assert normalize_name(variant) == "operator3"
    with pytest.raises(BadInput, match="already exists"):
        store.add(variant, "admin", "longenough")
    assert store.get(variant).name == "operator3"
    assert store.authenticate(variant, "longenough") is not None
    assert [u.name for u in store.list()] == ["operator3"]


def test_role_matrix() -> None:
    assert set(ROLES) == {"operator", "reviewer", "auditor", "admin"}
    assert can("operator", "search") and not can("auditor", "search") and not can("reviewer", "search")
    assert can("reviewer", "review") and not can("operator", "review") and not can("auditor", "review")
    assert can("auditor", "export") and can("auditor", "integrity") and can("auditor", "read_log")
    assert can("admin", "manage_users") and not can("auditor", "manage_users")
    assert can("admin", "calibrate") and not can("auditor", "calibrate") and can("auditor", "evaluate")
    assert all(set(roles) <= set(ROLES) for roles in PERMISSIONS.values())
    assert {p for p in ACTION_PERMISSIONS.values() if p is not None} <= set(PERMISSIONS)


def test_every_permission_is_checked_somewhere() -> None:
    """An unchecked permission is a defect: each one guards audited actions or a dashboard page."""
    tree = ast.parse((ROOT / "dashboard" / "web" / "streamlit_app.py").read_text(encoding="utf-8"))
    pages = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGES")
    page_permissions = {ast.literal_eval(t)[3] for t in pages.value.elts}  # type: ignore[attr-defined]
    guarded = {p for p in ACTION_PERMISSIONS.values() if p is not None} | page_permissions
    assert set(PERMISSIONS) <= guarded, set(PERMISSIONS) - guarded


# -- the first account, and who may add the next -------------------------------------------------------


def test_the_first_account_must_be_an_admin_and_is_recorded(service: AccountService) -> None:
    with pytest.raises(BadInput, match="first one must be an admin"):
        service.add_user(None, "eve", "operator", "eve-password")
    created = service.add_user(None, "Root", "admin", "root-password")
    assert created.result.name == "root"
    record = service.log.get(created.seq).record
    assert (record.action, record.operator, record.details["first_account"]) == ("add_user", None, True)
    assert records(service) == [("refused", "bad_input", None), ("add_user", "ok", None)]


def test_add_user_without_an_admin_session_is_refused_and_recorded(service: AccountService) -> None:
    admin = with_admin(service)
    with pytest.raises(NotAuthenticated, match="not signed in"):
        service.add_user(None, "eve", "admin", "eve-password")
    service.add_user(admin, "op1", "operator", "op1-password")
    operator = service.sign_in("op1", "op1-password")
    with pytest.raises(Forbidden, match="manage_users"):
        service.add_user(operator, "eve", "admin", "eve-password")
    assert not service.users.exists("eve")
    refused = [e.record for e in service.log.list() if e.record.action == "refused"]
    assert [(r.outcome, r.operator, r.details["attempted"], r.details["account"]) for r in refused] == [
        ("not_authenticated", None, "add_user", "eve"), ("forbidden", "op1", "add_user", "eve")]


def test_a_taken_name_in_another_case_is_refused_and_recorded(service: AccountService) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    with pytest.raises(BadInput, match="already exists"):
        service.add_user(admin, "OP1 ", "admin", "other-password")
    assert service.users.get("op1").role == "operator"
    assert records(service)[-1] == ("add_user", "bad_input", "root")


# -- sign-in, lockout ----------------------------------------------------------------------------------


def test_sign_in_and_failures_are_recorded(service: AccountService) -> None:
    with_admin(service)
    with pytest.raises(SignInRefused, match="unknown account or wrong password"):
        service.sign_in("root", "guess")
    with pytest.raises(SignInRefused, match="unknown account or wrong password"):
        service.sign_in("nobody", "guess")
    actions = records(service)
    assert actions[1] == ("sign_in", "ok", "root")
    assert actions[2:] == [("refused", "bad_credentials", None)] * 2
    failed = [e.record for e in service.log.list()][2:]
    assert [r.details["account"] for r in failed] == ["root", "nobody"]
    assert all("guess" not in e.canonical.decode() for e in service.log.list())  # never the password


def test_a_locked_out_account_stays_locked_for_the_configured_time(service: AccountService, clock: Clock) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    for _ in range(3):
        with pytest.raises(SignInRefused):
            service.sign_in("op1", "guess")
    with pytest.raises(LockedOut, match="locked"):
        service.sign_in("op1", "op1-password")  # the right password, during the lockout
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(LockedOut):
        service.sign_in("OP1", "op1-password")  # another spelling is the same account
    clock.advance(seconds=2)
    assert service.sign_in("op1", "op1-password").name == "op1"
    outcomes = [r for r in records(service) if r[0] in ("sign_in", "refused")][-6:]
    assert outcomes == [("refused", "bad_credentials", None)] * 3 + [("refused", "locked_out", None)] * 2 + [
        ("sign_in", "ok", "op1")]
    lock = [e.record for e in service.log.list() if e.record.outcome == "bad_credentials"][-1]
    assert lock.details["failures_in_a_row"] == 3 and lock.details["locked_until"] == "2026-12-01T09:15:00Z"


def test_guessing_unknown_names_is_limited_the_same_way(service: AccountService) -> None:
    for _ in range(3):
        with pytest.raises(SignInRefused):
            service.sign_in("ghost", "guess")
    with pytest.raises(LockedOut):  # the answer does not reveal that the account does not exist
        service.sign_in("ghost", "guess")


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(service: AccountService) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    session = service.sign_in("op1", "op1-password")
    issued = service.issue_token(admin, "op1", label="ci").result
    done = service.set_disabled(admin, "op1", True)
    assert sorted(done.entry.record.details["credentials_revoked"]) == sorted(
        [session.credential_id, issued.credential.id])
    for credential in (session.token, issued.token):
        with pytest.raises(NotAuthenticated, match="revoked"):
            service.authenticate(credential)
    with pytest.raises(AccountDisabled):
        service.sign_in("op1", "op1-password")
    service.set_disabled(admin, "op1", False)
    assert service.sign_in("op1", "op1-password").role == "operator"


def test_the_last_admin_cannot_be_disabled_or_demoted(service: AccountService) -> None:
    admin = with_admin(service)
    with pytest.raises(BadInput, match="last enabled admin"):
        service.set_disabled(admin, "root", True)
    with pytest.raises(BadInput, match="last enabled admin"):
        service.set_role(admin, "root", "auditor")
    assert service.users.get("root").role == "admin" and not service.users.get("root").disabled


def test_a_role_change_applies_from_the_next_action(service: AccountService) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    op1 = service.sign_in("op1", "op1-password")
    gate = AuditSession(service.log, AuditContext(purpose="p"), op1, credentials=service.credentials)
    assert gate.check("search").role == "operator"
    service.set_role(admin, "op1", "auditor")
    with pytest.raises(Forbidden):
        gate.check("search")  # the same session, the new role


def test_password_change_needs_the_current_one_and_ends_other_sessions(service: AccountService) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    first, second = service.sign_in("op1", "op1-password"), service.sign_in("op1", "op1-password")
    with pytest.raises(SignInRefused, match="current password"):
        service.set_password(first, "op1", "new-password", current_password="wrong")
    service.set_password(first, "op1", "new-password", current_password="op1-password")
    assert service.authenticate(first.token).name == "op1"
    with pytest.raises(NotAuthenticated, match="revoked"):
        service.authenticate(second.token)
    with pytest.raises(Forbidden):  # someone else's password: admins only
        service.set_password(first, "root", "taken-over!")
    service.set_password(admin, "op1", "reset-by-admin")
    with pytest.raises(NotAuthenticated):
        service.authenticate(first.token)
    assert service.sign_in("op1", "reset-by-admin").name == "op1"


# -- sessions and tokens -------------------------------------------------------------------------------


def test_sessions_expire_when_idle_and_after_their_lifetime(service: AccountService, clock: Clock) -> None:
    with_admin(service)
    idle = service.sign_in("root", "root-password")
    clock.advance(minutes=31)
    with pytest.raises(NotAuthenticated, match="30 minutes without activity"):
        service.authenticate(idle.token)
    busy = service.sign_in("root", "root-password")
    for _ in range(20):  # active every 29 minutes: never idle, but 8 hours is the limit
        clock.advance(minutes=29)
        try:
            service.authenticate(busy.token)
        except NotAuthenticated as err:
            assert "expired at" in str(err)
            break
    else:
        pytest.fail("the session outlived its absolute lifetime")
    assert clock.now - datetime(2026, 12, 1, 9, 31, tzinfo=UTC) >= timedelta(hours=8)


def test_a_revoked_token_is_refused(service: AccountService, clock: Clock) -> None:
    admin = with_admin(service)
    service.add_user(admin, "ci-bot", "operator", "ci-bot-password")
    issued = service.issue_token(admin, "ci-bot", label="nightly").result
    assert issued.credential.expires_at == "2026-12-11T09:00:00Z"  # FACETRAIL_TOKEN_DAYS=10 here
    actor = service.authenticate(issued.token)
    assert (actor.name, actor.method) == ("ci-bot", "api_token")
    with service.db.connect() as con:  # stored hashed: the secret is nowhere in the database
        stored = [str(v) for row in con.execute("SELECT * FROM auth_credentials").fetchall() for v in row]
    assert issued.token not in " ".join(stored)
    service.revoke_token(admin, issued.credential.id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        service.authenticate(issued.token)
    gate = AuditSession(service.log, AuditContext(purpose="p"), actor, credentials=service.credentials)
    with pytest.raises(NotAuthenticated, match="revoked"):
        gate.check("search")  # the actor obtained before the revocation is refused at its next action
    assert records(service)[-3:] == [("issue_token", "ok", "root"), ("revoke_token", "ok", "root"),
                                     ("refused", "not_authenticated", None)]


def test_tokens_are_an_admins_business(service: AccountService) -> None:
    admin = with_admin(service)
    service.add_user(admin, "op1", "operator", "op1-password")
    op1 = service.sign_in("op1", "op1-password")
    for attempt in (lambda: service.issue_token(op1, "op1"), lambda: service.list_tokens(op1),
                    lambda: service.revoke_token(op1, "tok_0")):
        with pytest.raises(Forbidden):
            attempt()
    with pytest.raises(NotFound):
        service.revoke_token(admin, "tok_0")
    assert [c.user for c in service.list_tokens(admin)] == []
    assert {c.user for c in service.list_tokens(admin, include_sessions=True)} == {"root", "op1"}


def test_sign_out_revokes_the_session_and_is_recorded(service: AccountService) -> None:
    with_admin(service)
    session = service.sign_in("root", "root-password")
    entry = service.sign_out(session)
    assert (entry.record.action, entry.record.operator) == ("sign_out", "root")
    with pytest.raises(NotAuthenticated, match="signed out"):
        service.authenticate(session.token)
    with pytest.raises(NotAuthenticated):
        service.sign_out(session)


def test_the_demo_mark(service: AccountService) -> None:
    admin = with_admin(service)
    assert not service.is_demo()
    service.mark_demo(admin)
    assert service.is_demo()
