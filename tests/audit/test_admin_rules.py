"""Account administration from an admin's and an attacker's side: the rules live in audit, not in a page.

No admin can disable their own account or change their own role (another admin must), the
last enabled admin cannot be removed, every change and every refusal is a record, and the
last sign-in of each account is listed (sign-in sessions count, API tokens do not).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from audit.access import AccountService
from audit.accounts import Forbidden, NotAuthenticated
from audit.errors import ReviewRefused
from audit.session import AuditContext, AuditSession
from audit.trail.log import AuditLog
from core.errors import BadInput
from core.settings import Settings
from core.storage.connection import Database
from tests.auth import FAST_HASHER


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AccountService]:
    db = Database(tmp_path / "accounts.duckdb")
    settings = replace(Settings(), db=str(tmp_path / "accounts.duckdb"))
    yield AccountService(db, AuditLog(db, key_path=tmp_path / "key"), settings, hasher=FAST_HASHER)
    db.close()


def two_admins(service: AccountService):  # noqa: ANN201
    service.add_user(None, "root", "admin", "root-password")
    root = service.sign_in("root", "root-password")
    service.add_user(root, "second", "admin", "second-password")
    return root, service.sign_in("second", "second-password")


def last(service: AccountService):  # noqa: ANN201
    return service.log.get(service.log.size()).record


def test_an_admin_cannot_disable_themselves_even_with_another_admin(service: AccountService) -> None:
    root, _ = two_admins(service)
    with pytest.raises(BadInput, match="cannot disable their own account"):
        service.set_disabled(root, "root", True)
    record = last(service)
    assert (record.action, record.outcome, record.operator) == ("disable_user", "bad_input", "root")
    assert record.details["account"] == "root"
    assert not service.users.get("root").disabled
    assert service.authenticate(root.token).name == "root"  # still signed in: nothing was done


def test_an_admin_cannot_change_their_own_role(service: AccountService) -> None:
    root, _ = two_admins(service)
    for role in ("reviewer", "operator", "auditor"):  # e.g. to review under a role they gave themselves
        with pytest.raises(BadInput, match="cannot change their own role"):
            service.set_role(root, "root", role)
        assert (last(service).action, last(service).outcome) == ("change_role", "bad_input")
    assert service.users.get("root").role == "admin"


def test_another_admin_can_disable_demote_and_reenable_an_admin(service: AccountService) -> None:
    root, second = two_admins(service)
    done = service.set_disabled(second, "root", True)
    assert done.result.disabled and done.entry.record.operator == "second"
    assert root.credential_id in done.entry.record.details["credentials_revoked"]
    with pytest.raises(NotAuthenticated):
        service.authenticate(root.token)
    with pytest.raises(BadInput, match="last enabled admin"):  # second is now the only admin
        service.set_role(second, "second", "auditor")
    service.set_disabled(second, "root", False)
    changed = service.set_role(second, "root", "auditor")
    details = changed.entry.record.details
    assert (details["account"], details["role"], details["previous_role"]) == ("root", "auditor", "admin")


def test_a_reset_password_signs_the_account_out_and_the_old_password_stops_working(service: AccountService) -> None:
    root, _ = two_admins(service)
    service.add_user(root, "reviewer1", "reviewer", "first-password")
    theirs = service.sign_in("reviewer1", "first-password")
    done = service.set_password(root, "reviewer1", "reset-by-root")
    assert done.entry.record.details["sessions_revoked"] == [theirs.credential_id]
    assert done.entry.record.details["own"] is False and done.entry.record.operator == "root"
    with pytest.raises(NotAuthenticated):
        service.authenticate(theirs.token)
    with pytest.raises(NotAuthenticated):
        service.sign_in("reviewer1", "first-password")
    assert service.sign_in("reviewer1", "reset-by-root").name == "reviewer1"


def test_last_sign_in_is_listed_and_api_tokens_do_not_count(service: AccountService) -> None:
    root, _ = two_admins(service)
    service.add_user(root, "op1", "operator", "op1-password")
    listed = {u.name: u for u in service.list_users(root)}
    assert listed["op1"].last_sign_in is None and listed["op1"].to_dict()["last_sign_in"] is None
    service.issue_token(root, "op1", label="script")
    assert {u.name: u for u in service.list_users(root)}["op1"].last_sign_in is None
    signed = service.sign_in("op1", "op1-password")
    seen = {u.name: u for u in service.list_users(root)}["op1"].last_sign_in
    assert seen is not None and seen.endswith("Z")
    assert seen == service.credentials.get(signed.credential_id).created_at


def test_an_operator_cannot_change_accounts(service: AccountService) -> None:
    root, _ = two_admins(service)
    service.add_user(root, "op1", "operator", "op1-password")
    op1 = service.sign_in("op1", "op1-password")
    for attempt in (lambda: service.set_role(op1, "op1", "admin"), lambda: service.set_disabled(op1, "root", True),
                    lambda: service.set_password(op1, "root", "taken-over!")):
        with pytest.raises(Forbidden):
            attempt()
        assert last(service).action == "refused" and last(service).outcome == "forbidden"
    assert service.users.get("root").role == "admin" and service.users.get("op1").role == "operator"


def test_a_role_change_cannot_let_an_operator_review_their_own_search(service: AccountService) -> None:
    """The two-person rule goes by account: an operator made a reviewer still cannot confirm their own search."""
    root, _ = two_admins(service)
    service.add_user(root, "op1", "operator", "op1-password")
    service.add_user(root, "rev1", "reviewer", "rev1-password")
    op1 = service.sign_in("op1", "op1-password")
    search = AuditSession(service.log, AuditContext(purpose="identify a suspect", case_ref="CR-1"), op1,
                          credentials=service.credentials).record("search", {
        "outcome": "ok", "candidates": [{"subject_id": "P1", "face_id": "f1", "distance": "0.05",
                                         "similarity": "0.95", "rank": 1}]})
    service.set_role(root, "op1", "reviewer")  # the operator's accomplice among the admins re-roles them
    as_reviewer = AuditSession(service.log, AuditContext(), op1, credentials=service.credentials)
    with pytest.raises(ReviewRefused, match="two-person rule"):
        as_reviewer.review(search.seq, "confirm", note="looks like them")
    assert last(service).action == "refused" and last(service).details["attempted"] == "review"
    rev1 = service.sign_in("rev1", "rev1-password")  # someone else may
    done = AuditSession(service.log, AuditContext(), rev1, credentials=service.credentials).review(
        search.seq, "confirm", note="same person")
    assert done.record.operator == "rev1"
