"""The Administration page from an admin's side (AppTest, the fake scene): each action recorded, the rules from audit.

Disable and re-enable, reset a password, change a role, last sign-in, the threshold policy
with its designated evaluation (then quoted on Verify), erasure with its receipt; an admin
trying to disable or re-role themselves is refused by audit and the page says why.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import AccountService, AuditLog, EvaluationStore, Runtime, verify_receipt
from core import Database, EnrollItem
from tests.auth import password_of
from tests.conftest import make_config
from tests.dashboard.conftest import APP, as_user
from tests.fakes import face_png

ADMIN = "app_pages/admin.py"
VERIFY = "app_pages/verify.py"


def open_page(path: str, name: str = "admin1", role: str = "admin") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user(name, role)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def records(db: str) -> list:  # noqa: ANN001
    rt = Runtime(db)
    try:
        return [e.record for e in rt.log.list()]
    finally:
        rt.db.close()


def users(db: str) -> dict:  # noqa: ANN001
    rt = Runtime(db)
    try:
        return {u.name: u for u in rt.accounts.users.list()}
    finally:
        rt.db.close()


def test_disable_and_enable_an_account_are_recorded(app_env: str) -> None:
    at = open_page(ADMIN)
    at.selectbox(key="admin_status_account").set_value("operator1")
    at.radio(key="admin_status_action").set_value("disable")
    at.button(key="FormSubmitter:admin_status_form-Apply").click().run()
    assert not at.exception and any("operator1 disabled" in s.value for s in at.success)
    assert users(app_env)["operator1"].disabled
    assert [r.operator for r in records(app_env) if r.action == "disable_user"] == ["admin1"]
    at.selectbox(key="admin_status_account").set_value("operator1")
    at.radio(key="admin_status_action").set_value("enable")
    at.button(key="FormSubmitter:admin_status_form-Apply").click().run()
    assert not users(app_env)["operator1"].disabled


def test_an_admin_cannot_disable_or_re_role_themselves_from_the_page(app_env: str) -> None:
    at = open_page(ADMIN)
    at.selectbox(key="admin_status_account").set_value("admin1")
    at.radio(key="admin_status_action").set_value("disable")
    at.button(key="FormSubmitter:admin_status_form-Apply").click().run()
    assert any("last enabled admin" in e.value or "own account" in e.value for e in at.error)
    at.selectbox(key="admin_role_account").set_value("admin1")
    at.selectbox(key="admin_role_new").set_value("reviewer")
    at.button(key="FormSubmitter:admin_role_form-Change role").click().run()
    assert any("last enabled admin" in e.value or "own role" in e.value for e in at.error)
    assert users(app_env)["admin1"].role == "admin" and not users(app_env)["admin1"].disabled
    assert {(r.action, r.outcome) for r in records(app_env)} >= {("disable_user", "bad_input"),
                                                                 ("change_role", "bad_input")}


def test_reset_password_and_change_role_and_last_sign_in(app_env: str) -> None:
    at = open_page(ADMIN)
    table = at.dataframe[0].value
    # AppTest's session has no browser zone: UTC (a browser's own zone: test_times_browser)
    assert list(table.columns) == ["Account", "Role", "Status", "Last sign-in (UTC)", "Created (UTC)"]
    assert table.set_index("Account").loc["admin1", "Last sign-in (UTC)"].endswith(" UTC")  # this very session
    assert table.set_index("Account").loc["auditor1", "Last sign-in (UTC)"] == "never"
    at.selectbox(key="admin_password_account").set_value("reviewer1")
    at.text_input(key="admin_password_new").input("reset-by-admin1")
    at.button(key="FormSubmitter:admin_password_form-Reset password").click().run()
    assert any("Password of reviewer1 reset" in s.value for s in at.success)
    db = Database(app_env)
    try:
        service = AccountService(db, AuditLog(db))
        assert service.users.authenticate("reviewer1", password_of("reviewer1")) is None
        assert service.users.authenticate("reviewer1", "reset-by-admin1") is not None
    finally:
        db.close()
    at.selectbox(key="admin_role_account").set_value("reviewer1")
    at.selectbox(key="admin_role_new").set_value("auditor")
    at.button(key="FormSubmitter:admin_role_form-Change role").click().run()
    assert users(app_env)["reviewer1"].role == "auditor"
    assert [r.details["previous_role"] for r in records(app_env) if r.action == "change_role"] == ["reviewer"]


def test_the_policy_and_its_designated_evaluation_are_set_recorded_and_quoted_on_verify(app_env: str) -> None:
    db = Database(app_env)
    try:
        run = EvaluationStore(db).list()[0]
    finally:
        db.close()
    at = open_page(ADMIN)
    label = next(o for o in at.selectbox(key="admin_policy_evaluation").options if run.run_id[:12] in o)
    at.selectbox(key="admin_policy_evaluation").set_value(label)
    at.button(key="FormSubmitter:admin_policy_form-Set the policy").click().run()
    assert any("reason" in e.value for e in at.error)  # no reason: refused (and recorded)
    at.text_input(key="admin_policy_reason").input("designate the fake_set evaluation for the deployment")
    at.button(key="FormSubmitter:admin_policy_form-Set the policy").click().run()
    assert any("Policy set" in s.value for s in at.success)
    policy = [r for r in records(app_env) if r.action == "threshold_policy"]
    assert [(r.outcome, r.details.get("evaluation")) for r in policy] == [("ok", run.run_id)]
    assert policy[0].operator == "admin1"
    shown = open_page(VERIFY, "operator1", "operator")  # the fake scene's run measured another model: said, not hidden
    assert any("another model configuration" in e.value and run.run_id in e.value for e in shown.error)
    assert not any("designates no evaluation" in i.value for i in shown.info)


def test_verify_without_a_designated_evaluation_says_so_and_offers_no_picker(app_env: str) -> None:
    at = open_page(VERIFY, "operator1", "operator")
    assert any("designates no evaluation" in i.value for i in at.info)
    assert not at.selectbox  # no evaluation picker


@pytest.mark.model
def test_erase_returns_a_receipt_to_download(app_env: str, fake_engine, tmp_path: Path) -> None:
    rt = Runtime(app_env)
    rt.galleries.create("watchlist", make_config())
    rt.galleries.enroll("watchlist", [EnrollItem("P1", fake_engine.embed(face_png("P1")), "p1.png")])
    rt.db.close()
    at = open_page(ADMIN)
    at.text_input(key="admin_erase_subject").input("P1")
    at.text_input(key="admin_erase_purpose").input("erasure request ER-12 from the data subject")
    at.checkbox(key="admin_erase_confirm").check()
    at.button(key="FormSubmitter:admin_erase_form-Erase subject").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    receipt = json.loads(at.code[0].value)  # the text the download button offers
    deleted = [r for r in records(app_env) if r.action == "delete"]
    assert len(deleted) == 1 and receipt["claims"]["seq"] == deleted[0].seq == len(records(app_env))
    assert receipt["format"] == "facetrail-receipt/1" and receipt["subject"]["subject_id"] == "P1"
    assert receipt["claims"]["erased"]["faces"] == 1
    # the salt it holds is in no file of the deployment
    salt = base64.b64decode(receipt["subject"]["salt"])
    for f in Path(app_env).parent.rglob("*"):
        if f.is_file():
            assert salt not in f.read_bytes() and salt.hex().encode() not in f.read_bytes(), f.name
    # the data subject checks it offline with the log's public key alone; someone else's id on it fails
    rt = Runtime(app_env)
    try:
        key = rt.log.public_key_pem()
    finally:
        rt.db.close()
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    report = verify_receipt(path, key)
    assert report.ok and report.subject_id == "P1" and report.kind == "erasure", report.fault
    receipt["subject"]["subject_id"] = "P2"
    path.write_text(json.dumps(receipt))
    report = verify_receipt(path, key)
    assert report.fault is not None and report.fault["kind"] == "subject_mismatch"
