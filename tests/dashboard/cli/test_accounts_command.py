"""``facetrail accounts list|disable|enable|reset-password|set-role`` from an admin's and an operator's side.

Each change is a record; an operator is refused (exit 2, recorded); an admin cannot disable or
re-role themselves (exit 2, the rule from audit); ``list`` shows the last sign-in.
"""

from __future__ import annotations

from tests.dashboard.cli.test_auth_commands import cli, records, setup_accounts  # noqa: F401  (fixture)


def login(cli, name: str, password: str) -> str:  # noqa: ANN001, F811
    code, out, err = cli("login", name, "--password-stdin", "--json", stdin=f"{password}\n")
    assert code == 0, err
    return str(out["token"])


def test_an_admin_administers_accounts_and_each_change_is_recorded(cli) -> None:  # noqa: ANN001, F811
    setup_accounts(cli)
    admin = login(cli, "root", "root-password")
    listed = {u["name"]: u for u in cli("accounts", "list", "--json", token=admin)[1]}
    assert listed["root"]["last_sign_in"] and listed["reviewer2"]["last_sign_in"] is None
    assert cli("accounts", "disable", "operator3", "--json", token=admin)[1]["disabled"] is True
    code, out, _ = cli("login", "operator3", "--password-stdin", "--json", stdin="operator3-password\n")
    assert code == 2 and out["code"] == "account_disabled"
    assert cli("accounts", "enable", "operator3", "--json", token=admin)[1]["disabled"] is False
    code, out, _ = cli("accounts", "reset-password", "reviewer1", "--password-stdin", "--json",
                       stdin="reset-by-root-1\n", token=admin)
    assert code == 0 and out["name"] == "reviewer1"
    assert cli("login", "reviewer1", "--password-stdin", stdin="reviewer1-password\n")[0] == 2
    code, out, err = cli("accounts", "set-role", "reviewer2", "--role", "auditor", "--json", token=admin)
    assert code == 0 and out["role"] == "auditor", (out, err)
    changes = [(r.action, r.operator, r.details.get("account")) for r in records(cli.db)
               if r.action in ("disable_user", "enable_user", "change_password", "change_role") and r.outcome == "ok"]
    assert changes == [("disable_user", "root", "operator3"), ("enable_user", "root", "operator3"),
                       ("change_password", "root", "reviewer1"), ("change_role", "root", "reviewer2")]
    login(cli, "reviewer1", "reset-by-root-1")  # the new password works (this login replaces the saved session)


def test_an_admin_cannot_disable_or_re_role_themselves_and_an_operator_cannot_at_all(cli) -> None:  # noqa: ANN001, F811
    setup_accounts(cli)
    root = login(cli, "root", "root-password")
    assert cli("users", "add", "second", "--role", "admin", "--password-stdin", stdin="second-password\n",
               token=root)[0] == 0
    for argv, rule in ((("accounts", "disable", "root"), "own account"),
                       (("accounts", "set-role", "root", "--role", "reviewer"), "own role")):
        code, out, _ = cli(*argv, "--json", token=root)
        assert code == 2 and rule in out["error"], out
    operator = login(cli, "operator3", "operator3-password")
    for argv in (("accounts", "disable", "root"), ("accounts", "set-role", "operator3", "--role", "admin"),
                 ("accounts", "list")):
        code, out, _ = cli(*argv, "--json", token=operator)
        assert code == 2 and out["code"] == "forbidden", argv
    assert [r.outcome for r in records(cli.db) if r.action in ("disable_user", "change_role")] == ["bad_input"] * 2
