"""Signing in on the command line, from the attacker's side: the real ``facetrail`` handlers on a real file.

One person at a terminal tries to be two reviewers, to review their own match under
another spelling, to create an admin without one, to guess passwords, to use a revoked
token or an expired session, and to record a name other than their own. Each attempt is
refused with exit 2 and a message naming what is missing, and recorded.
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from audit.trail.log import AuditLog
from core.settings import Settings
from core.storage.connection import Database
from dashboard.cli import main
from dashboard.cli.common import session_file
from tests.audit.trail._helpers import candidate, record_fields

HINT = "not signed in: run `facetrail login NAME --password-stdin` or set FACETRAIL_TOKEN"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``facetrail --db DB ...`` in this process: returns (exit code, last JSON line or None, stderr)."""
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_TOKEN", "FACETRAIL_PURPOSE", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FACETRAIL_SIGNIN_MAX_FAILURES", "3")
    db = str(tmp_path / "auth.duckdb")

    def run(*argv: str, stdin: str = "", token: str | None = None) -> tuple[int, Any, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        if token is None:
            monkeypatch.delenv("FACETRAIL_TOKEN", raising=False)
        else:
            monkeypatch.setenv("FACETRAIL_TOKEN", token)
        code = main(["--db", db, *argv])
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if line.strip()]
        try:
            payload = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            payload = lines[-1]
        return code, payload, captured.err

    run.db = db  # type: ignore[attr-defined]
    return run


def records(db: str) -> list[Any]:
    log = AuditLog(Database(db))
    try:
        return [e.record for e in log.list()]
    finally:
        log.db.close()


def setup_accounts(cli) -> None:
    """root (admin, the first account), operator3, reviewer1 and reviewer2, each with their own password."""
    assert cli("users", "add", "root", "--role", "admin", "--password-stdin", "--json", stdin="root-password\n")[0] == 0
    assert cli("login", "root", "--password-stdin", stdin="root-password\n")[0] == 0
    for name, role in (("operator3", "operator"), ("reviewer1", "reviewer"), ("reviewer2", "reviewer")):
        code, out, err = cli("users", "add", name, "--role", role, "--password-stdin", "--json",
                             stdin=f"{name}-password\n")
        assert code == 0, err
    assert cli("logout")[0] == 0


def test_the_first_account_then_only_admins_add_accounts(cli) -> None:
    code, out, err = cli("users", "add", "eve", "--role", "operator", "--password-stdin", "--json",
                         stdin="eve-password\n")
    assert code == 2 and "first one must be an admin" in out["error"]
    code, out, _ = cli("users", "add", "root", "--role", "admin", "--password-stdin", "--json", stdin="root-password\n")
    assert code == 0 and out["name"] == "root"
    code, out, err = cli("users", "add", "eve", "--role", "admin", "--password-stdin", "--json", stdin="eve-password\n")
    assert code == 2 and out["code"] == "not_authenticated" and HINT in err
    code, out, err = cli("users", "list", "--json")
    assert code == 2 and out["code"] == "not_authenticated"
    added = [r for r in records(cli.db) if "add_user" in (r.action, r.details.get("attempted"))]
    assert [(r.action, r.outcome, r.operator) for r in added] == [
        ("refused", "bad_input", None), ("add_user", "ok", None), ("refused", "not_authenticated", None)]


def test_login_keeps_a_0600_session_and_logout_ends_it(cli, tmp_path: Path) -> None:
    setup_accounts(cli)
    code, out, err = cli("login", "Root ", "--password-stdin", "--json", stdin="root-password\n")
    assert code == 0 and {"token", "expires_at"} <= out.keys() and out["name"] == "root"
    path = session_file(Settings.from_env().with_db(cli.db))
    assert path.is_file() and path.is_relative_to(tmp_path / "config")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["token"] == out["token"]
    with Database(cli.db).connect() as con:  # the database holds its hash, never the token
        assert out["token"] not in json.dumps([list(map(str, r)) for r in con.execute(
            "SELECT * FROM auth_credentials").fetchall()])
    assert cli("whoami", "--json")[1]["name"] == "root"
    code, issued, _ = cli("tokens", "create", "operator3", "--json")  # as root, from the saved session
    assert cli("whoami", "--json", token=issued["token"])[1]["name"] == "operator3"  # FACETRAIL_TOKEN overrides it
    assert cli("logout", "--json")[0] == 0 and not path.exists()
    code, out, err = cli("users", "list", "--json")
    assert code == 2 and out["code"] == "not_authenticated" and HINT in err
    code, out, _ = cli("users", "list", "--json", token=out_token(cli, "root"))  # a second login ...
    assert code == 0
    out_token(cli, "reviewer1")  # ... replaced by a third: the second is signed out, not left live
    signed = [(r.action, r.operator) for r in records(cli.db) if r.action in ("sign_in", "sign_out")]
    assert signed[-5:] == [("sign_in", "root"), ("sign_out", "root"), ("sign_in", "root"), ("sign_in", "reviewer1"),
                           ("sign_out", "root")]


def out_token(cli, name: str) -> str:
    """A fresh session token of ``name`` (its password is ``<name>-password``)."""
    return cli("login", name, "--password-stdin", "--json", stdin=f"{name}-password\n")[1]["token"]


def test_a_session_file_others_can_read_is_not_used(cli) -> None:
    setup_accounts(cli)
    assert cli("login", "root", "--password-stdin", stdin="root-password\n")[0] == 0
    path = session_file(Settings.from_env().with_db(cli.db))
    os.chmod(path, 0o644)
    code, out, err = cli("users", "list", "--json")
    assert code == 2 and "readable by other users" in out["error"]


def test_password_guessing_locks_the_account_for_the_configured_time(cli, monkeypatch) -> None:
    setup_accounts(cli)
    monkeypatch.setenv("FACETRAIL_SIGNIN_LOCKOUT_MINUTES", "0.05")  # 3 seconds
    for guess in ("guess-one", "guess-two", "guess-three"):
        code, out, _ = cli("login", "reviewer1", "--password-stdin", "--json", stdin=f"{guess}\n")
        assert code == 2 and out["code"] == "bad_credentials"
    code, out, _ = cli("login", "REVIEWER1", "--password-stdin", "--json", stdin="reviewer1-password\n")
    assert code == 2 and out["code"] == "locked_out"  # the right password, under another spelling, while locked
    time.sleep(3.2)
    assert cli("login", "reviewer1", "--password-stdin", "--json", stdin="reviewer1-password\n")[0] == 0
    tried = [r for r in records(cli.db) if r.details.get("attempted") == "sign_in"]
    assert [r.outcome for r in tried] == ["bad_credentials"] * 3 + ["locked_out"]
    written = json.dumps([r.to_dict() for r in records(cli.db)])
    assert not any(secret in written for secret in ("guess-one", "guess-two", "guess-three", "reviewer1-password"))


def _search_by_operator3(db: str) -> int:
    log = AuditLog(Database(db))
    fields = record_fields(0, operator="operator3")
    fields["candidates"] = [candidate("s1", "f1", 0.1, 1)]
    seq = log.append(fields).seq
    log.db.close()
    return seq


def test_one_person_at_a_terminal_cannot_satisfy_the_two_person_rule(cli) -> None:
    setup_accounts(cli)
    q = _search_by_operator3(cli.db)
    review = ("review", str(q), "--decision", "confirm", "--json")
    assert cli("login", "reviewer1", "--password-stdin", stdin="reviewer1-password\n")[0] == 0
    code, out, _ = cli(*review)
    assert code == 0 and out["status"]["candidates"][0]["status"] == "pending"
    # the same person, still reviewer1, claiming to be reviewer2, or the operator under other spellings
    for name in ("reviewer2", "operator3 ", "Operator3"):
        code, out, _ = cli(*review, "--reviewer", name)
        assert code == 2 and out["code"] == "operator_mismatch", name
    code, out, _ = cli(*review)  # confirming again is refused (one decision per reviewer and candidate)
    assert code == 2 and out["code"] == "review_refused" and "already reviewed" in out["error"]
    code, out, _ = cli("login", "reviewer2", "--password-stdin", "--json", stdin="reviewer1-password\n")
    assert code == 2 and out["code"] == "bad_credentials"  # the second account needs its own password
    code, out, _ = cli("login", "operator3", "--password-stdin", stdin="operator3-password\n")
    code, out, _ = cli(*review)
    assert code == 2 and out["code"] == "forbidden"  # an operator does not review, not even their own match
    code, out, _ = cli("audit", "show", str(q), "--json")
    assert out["review"]["candidates"][0]["status"] == "pending"
    assert cli("login", "reviewer2", "--password-stdin", stdin="reviewer2-password\n")[0] == 0
    code, out, _ = cli(*review)
    assert code == 0 and out["status"]["candidates"][0]["status"] == "confirmed"
    refused = [(r.outcome, r.operator) for r in records(cli.db) if r.details.get("attempted") == "review"]
    assert refused == [("operator_mismatch", "reviewer1")] * 3 + [("review_refused", "reviewer1"),
                                                                   ("forbidden", "operator3")]


def test_a_revoked_token_is_refused(cli) -> None:
    setup_accounts(cli)
    admin = cli("login", "root", "--password-stdin", "--json", stdin="root-password\n")[1]["token"]
    code, issued, err = cli("tokens", "create", "operator3", "--label", "nightly", "--days", "1", "--json", token=admin)
    assert code == 0, err
    assert cli("whoami", "--json", token=issued["token"])[1]["method"] == "api_token"
    code, out, _ = cli("tokens", "revoke", issued["id"], "--json", token=admin)
    assert code == 0 and out["status"] == "revoked"
    code, out, err = cli("gallery", "delete", "g", "--subject", "s1", "--purpose", "x", "--json",
                         token=issued["token"])
    assert code == 2 and out["code"] == "not_authenticated" and "revoked" in err
    code, out, _ = cli("tokens", "create", "operator3", "--json", token=issued["token"])
    assert code == 2 and out["code"] == "not_authenticated"
    assert [r.outcome for r in records(cli.db) if r.action == "refused"][-2:] == ["not_authenticated"] * 2


def test_an_expired_session_is_refused(cli, monkeypatch) -> None:
    setup_accounts(cli)
    monkeypatch.setenv("FACETRAIL_SESSION_HOURS", "0.0003")  # about a second
    assert cli("login", "root", "--password-stdin", stdin="root-password\n")[0] == 0
    time.sleep(1.5)
    code, out, err = cli("users", "list", "--json")
    assert code == 2 and "expired at" in out["error"] and "facetrail login" in err
    code, out, _ = cli("logout", "--json")
    assert code == 0 and out["signed_out"] is False and out["session_file_removed"] is True


def test_the_recorded_operator_is_the_signed_in_account_whatever_the_flag_says(cli, monkeypatch) -> None:
    setup_accounts(cli)
    assert cli("login", "root", "--password-stdin", stdin="root-password\n")[0] == 0
    code, out, err = cli("gallery", "drop", "nothing", "--yes", "--operator", "operator3", "--purpose", "tidy",
                         "--json")
    assert code == 2 and out["code"] == "operator_mismatch" and "'root'" in err
    monkeypatch.setenv("FACETRAIL_OPERATOR", "reviewer2")  # the environment claims someone else too
    code, out, _ = cli("gallery", "drop", "nothing", "--yes", "--purpose", "tidy", "--json")
    assert code == 2 and out["code"] == "operator_mismatch"
    monkeypatch.setenv("FACETRAIL_OPERATOR", "ROOT")
    code, out, _ = cli("gallery", "drop", "nothing", "--yes", "--purpose", "tidy", "--json")
    assert code == 2 and out["code"] == "gallery_not_found"  # the claim holds; the gallery does not exist
    last = records(cli.db)[-3:]
    assert [(r.action, r.outcome, r.operator) for r in last] == [
        ("refused", "operator_mismatch", "root"), ("refused", "operator_mismatch", "root"),
        ("drop_gallery", "gallery_not_found", "root")]
    assert [r.details.get("claimed_operator") for r in last[:2]] == ["operator3", "reviewer2"]


def test_account_changes_are_admin_only_and_recorded(cli) -> None:
    setup_accounts(cli)
    operator = cli("login", "operator3", "--password-stdin", "--json", stdin="operator3-password\n")[1]["token"]
    for argv in (("users", "role", "operator3", "--role", "admin"), ("users", "disable", "root"),
                 ("tokens", "list"), ("users", "password", "root", "--password-stdin")):
        code, out, _ = cli(*argv, "--json", stdin="taken-over-1\n", token=operator)
        assert code == 2 and out["code"] == "forbidden", argv
    code, out, _ = cli("users", "password", "--password-stdin", "--json", stdin="operator3-password\nnew-password-3\n",
                       token=operator)
    assert code == 0 and out["name"] == "operator3"  # one's own password, with the current one
    admin = cli("login", "root", "--password-stdin", "--json", stdin="root-password\n")[1]["token"]
    assert cli("users", "role", "operator3", "--role", "auditor", "--json", token=admin)[1]["role"] == "auditor"
    assert cli("users", "disable", "operator3", "--json", token=admin)[1]["disabled"] is True
    code, out, _ = cli("login", "operator3", "--password-stdin", "--json", stdin="new-password-3\n")
    assert code == 2 and out["code"] == "account_disabled"
    code, out, _ = cli("users", "disable", "root", "--json", token=admin)
    assert code == 2 and "last enabled admin" in out["error"]
    changes = [(r.action, r.operator) for r in records(cli.db)
               if r.action in ("change_role", "change_password", "disable_user") and r.outcome == "ok"]
    assert changes == [("change_password", "operator3"), ("change_role", "root"), ("disable_user", "root")]
