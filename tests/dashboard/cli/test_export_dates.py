"""``facetrail audit export`` with a date that is not one: refused (exit 2, recorded), never a 0-record export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import AuditFilter
from audit.trail.log import AuditLog
from core.storage.connection import Database
from tests.auth import session_token_for
from tests.dashboard.cli.test_audit_attacks import run, world

__all__ = ["world"]  # the fixture, shared with the audit attack tests


@pytest.mark.parametrize(("flags", "said"), [
    (("--since", "last week"), "since: 'last week' is not a UTC date"),
    (("--since", "2026-03-05", "--until", "2026-03-01"), "since 2026-03-05 is not before until 2026-03-01"),
])
def test_a_bad_date_is_an_error_naming_it_and_is_recorded(world: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...],
                                                          said: str) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", session_token_for(world["db"], "auditor1", "auditor"))
    out_file = Path(world["dir"]) / "log.csv"
    code, out = run(capsys, "audit", "export", "--db", world["db"], "--out", str(out_file), "--purpose", "oversight",
                    *flags, "--json")
    assert code == 2 and said in out["error"], out
    assert not out_file.exists()
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    assert log.list(AuditFilter(action="export")) == []
    refused = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [(r.details["attempted"], r.outcome, r.operator) for r in refused][-1] == ("export", "bad_input", "auditor1")
    log.db.close()
