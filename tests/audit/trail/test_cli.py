"""The audit commands, called through dashboard.cli.audit.main (the same handlers facetrail uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audit.trail.log import AuditLog
from core.storage.connection import Database
from dashboard.cli import main
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import session_token_for


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_PURPOSE", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY", "FACETRAIL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    path = str(tmp_path / "cli.duckdb")
    log = AuditLog(Database(path), checkpoint_every=4)
    for i in range(6):
        fields = record_fields(i, operator="alice", case="CASE-1" if i < 4 else "CASE-2")
        if i == 2:
            fields["candidates"].append(candidate("s99", "f99", 0.2, 2))
        log.append(fields)
    log.db.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip()
    return code, json.loads(out.splitlines()[-1]) if out else None


def test_verify_show_list(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "audit", "verify", "--db", db_path, "--json")
    assert code == 0 and out["ok"] and out["records"] == 6
    code, out = run(capsys, "audit", "show", "3", "--db", db_path, "--json")
    assert code == 0 and out["seq"] == 3 and out["record"]["operator"] == "alice"
    assert [c["status"] for c in out["review"]["candidates"]] == ["pending", "pending"]
    code, out = run(capsys, "audit", "list", "--case", "CASE-2", "--db", db_path, "--json")
    assert code == 0 and [e["seq"] for e in out] == [5, 6]
    code, out = run(capsys, "audit", "show", "99", "--db", db_path, "--json")
    assert code == 2 and out["code"] == "record_not_found"


def test_verify_exits_1_and_names_the_fault(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = Database(db_path)
    with db.connect() as con:
        con.execute("UPDATE audit_log SET record = replace(record::VARCHAR, 'alice', 'eve')::BLOB WHERE seq = 5")
    db.close()
    code, out = run(capsys, "audit", "verify", "--db", db_path, "--json")
    assert code == 1 and not out["ok"]
    assert out["fault"]["seq"] == 5 and out["fault"]["kind"] == "hash_mismatch"


def signed_in(monkeypatch: pytest.MonkeyPatch, db_path: str, name: str, role: str) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", session_token_for(db_path, name, role))


def test_review_two_person_rule(db_path: str, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(capsys, "review", "3", "--reviewer", "bob", "--decision", "confirm", "--face-id", "f2",
                    "--db", db_path, "--json")
    assert code == 2 and out["code"] == "not_authenticated"  # a name is not a reviewer: signing in is
    signed_in(monkeypatch, db_path, "alice", "reviewer")  # alice ran #3
    code, out = run(capsys, "review", "3", "--reviewer", "alice", "--decision", "confirm", "--face-id", "f2",
                    "--db", db_path, "--json")
    assert code == 2 and out["code"] == "review_refused"
    signed_in(monkeypatch, db_path, "bob", "reviewer")
    code, out = run(capsys, "review", "3", "--reviewer", "bob", "--decision", "confirm", "--face-id", "f2",
                    "--db", db_path, "--json")
    assert code == 0 and out["status"]["candidates"][0]["status"] == "pending"
    signed_in(monkeypatch, db_path, "carol", "reviewer")
    code, out = run(capsys, "review", "3", "--reviewer", "carol", "--decision", "confirm", "--face-id", "f2",
                    "--note", "checked", "--db", db_path, "--json")
    assert code == 0 and out["status"]["candidates"][0]["status"] == "confirmed"
    assert out["status"]["candidates"][1]["status"] == "pending"
    code, out = run(capsys, "review", "3", "--reviewer", "bob", "--decision", "maybe", "--db", db_path)
    assert code == 2


def test_export_excerpt_and_verify_excerpt(db_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "pub.pem"
    code, out = run(capsys, "audit", "public-key", "--out", str(key), "--db", db_path, "--json")
    assert code == 0 and key.read_text().startswith("-----BEGIN PUBLIC KEY")
    # exports need a signed-in auditor and a purpose; the refusals are recorded
    code, out = run(capsys, "audit", "export", "--format", "csv", "--out", str(tmp_path / "a.csv"),
                    "--purpose", "oversight", "--db", db_path, "--json")
    assert code == 2 and out["code"] == "not_authenticated"
    signed_in(monkeypatch, db_path, "dpo", "auditor")
    code, out = run(capsys, "audit", "export", "--format", "csv", "--out", str(tmp_path / "a.csv"),
                    "--db", db_path, "--json")
    assert code == 2 and out["code"] == "missing_context"
    code, out = run(capsys, "audit", "export", "--format", "parquet", "--out", str(tmp_path / "a.parquet"),
                    "--case", "CASE-1", "--exported-by", "dpo", "--purpose", "oversight", "--pseudonymize",
                    "--db", db_path, "--json")
    assert code == 0 and out["records"] == 4 and out["pseudonymized"]
    excerpt = tmp_path / "case2.json"
    code, out = run(capsys, "audit", "excerpt", "--case", "CASE-2", "--out", str(excerpt),
                    "--exported-by", "dpo", "--purpose", "disclosure", "--db", db_path, "--json")
    assert code == 0 and out["records"] == 2 and out["verifiable"]
    code, out = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", str(key), "--json")
    assert code == 0 and out["ok"] and out["records"] == 2
    doc = json.loads(excerpt.read_text())
    doc["records"][0]["canonical"] = doc["records"][0]["canonical"].replace("alice", "eve")
    excerpt.write_text(json.dumps(doc))
    code, out = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", str(key), "--json")
    assert code == 1 and out["fault"]["kind"] == "hash_mismatch"
    code, out = run(capsys, "audit", "list", "--action", "export", "--db", db_path, "--json")
    assert [e["record"]["details"]["format"] for e in out] == ["parquet", "excerpt"]
    code, out = run(capsys, "audit", "list", "--action", "refused", "--db", db_path, "--json")
    assert [e["record"]["outcome"] for e in out] == ["not_authenticated", "missing_context"]
    assert [e["record"]["operator"] for e in out] == [None, "dpo"]
    code, out = run(capsys, "audit", "checkpoint", "--db", db_path, "--json")
    assert code == 0 and out["seq"] >= 10
    code, out = run(capsys, "audit", "verify", "--public-key", str(key), "--db", db_path, "--json")
    assert code == 0 and out["ok"]
