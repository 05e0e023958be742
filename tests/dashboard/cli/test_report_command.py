"""``facetrail report`` from the user's side: written files, exit codes, refusals named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dashboard.cli.common import main
from tests.audit.reports import scene
from tests.auth import token_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report_cli") / "scene.duckdb"
    scene.build_scene(path)
    return path


@pytest.fixture
def db(template_db: Path, tmp_path: Path) -> str:
    for source in template_db.parent.glob(template_db.name + "*"):
        shutil.copy2(source, tmp_path / source.name)
    return str(tmp_path / template_db.name)


def _args(db: str, out: Path, *extra: str) -> list[str]:
    since, until = scene.period()
    return ["report", "--db", db, "--from", since.isoformat(), "--to", until.isoformat(), "--template", "full",
            "--format", "json", "--out", str(out), *extra]


def test_an_auditor_writes_a_report(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(db, scene.AUDITOR, "auditor"))
    out = tmp_path / "report.json"
    assert main([*_args(db, out, "--config", str(ROOT / "docs" / "report.toml")), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads(out.read_bytes())
    assert summary["tree_size"] == report["about"]["tree_size"] and summary["verified"] is True
    assert report["about"]["deployment"].startswith("Example County")
    assert main(_args(db, out)) == 2  # exists: kept
    assert "pass --force" in capsys.readouterr().err


def test_bad_input_exits_2_and_names_the_problem(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(db, scene.AUDITOR, "auditor"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nworking_hours = \"25:00-07:00\"\n")
    assert main([*_args(db, tmp_path / "r.json", "--config", str(bad))]) == 2
    assert "policy.working_hours" in capsys.readouterr().err
    assert main(["report", "--db", db, "--from", "2026-13-01", "--to", "2026-12-01", "--template", "full",
                 "--format", "json", "--out", str(tmp_path / "r.json")]) == 2
    assert not (tmp_path / "r.json").exists()


def test_an_operator_is_refused(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(db, scene.OPERATORS[0], "operator"))
    assert main(_args(db, tmp_path / "r.json")) == 2
    assert "lacks the permission 'report'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_a_log_that_fails_verification_exits_1_and_the_report_says_so(db: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from core.storage.connection import Database

    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(db, scene.AUDITOR, "auditor"))
    raw = Database(db)
    try:
        with raw.connect() as con:
            blob = bytes(con.execute("SELECT record FROM audit_log WHERE seq = 3").fetchone()[0])
            con.execute("UPDATE audit_log SET record = ? WHERE seq = 3", [blob.replace(b'"top_k":5', b'"top_k":9')])
    finally:
        raw.close()
    out = tmp_path / "r.json"
    assert main(_args(db, out)) == 1
    assert "FAILS verification" in capsys.readouterr().out
    assert json.loads(out.read_bytes())["warnings"][0].startswith("The audit log FAILS verification at record 3")
