"""Accounts: argon2 hashes, roles, the users CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from core.storage.connection import Database
from core.errors import BadInput, NotFound
from audit.accounts import PERMISSIONS, ROLES, UserStore, can
from dashboard.cli import main
from tests.dashboard.conftest import FAST_HASHER


@pytest.fixture
def store() -> UserStore:
    return UserStore(Database(":memory:"), hasher=FAST_HASHER)


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
    [("Bad Name", "operator", "longenough"), ("ok1", "superuser", "longenough"), ("ok2", "auditor", "short")],
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


def test_role_matrix() -> None:
    assert set(ROLES) == {"operator", "reviewer", "auditor", "admin"}
    assert can("operator", "search") and not can("auditor", "search") and not can("reviewer", "search")
    assert can("reviewer", "review") and not can("operator", "review") and not can("auditor", "review")
    assert can("auditor", "export") and can("auditor", "integrity") and can("auditor", "read_log")
    assert can("admin", "manage_users") and not can("auditor", "manage_users")
    assert all(set(roles) <= set(ROLES) for roles in PERMISSIONS.values())


def test_users_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "users.duckdb")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert main(["--db", db, "users", "add", "reviewer9", "--role", "reviewer", "--password-stdin", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["role"] == "reviewer"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert main(["--db", db, "users", "add", "reviewer9", "--role", "admin", "--password-stdin"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["--db", db, "users", "list", "--json"]) == 0
    assert [u["name"] for u in json.loads(capsys.readouterr().out)] == ["reviewer9"]
    assert UserStore(Database(db)).authenticate("reviewer9", "s3cret-password") is not None
