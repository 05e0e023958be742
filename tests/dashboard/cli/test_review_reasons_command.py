"""`facetrail review` with a reason code, a second review refused (exit 2), an explicit --reverse recorded."""

from __future__ import annotations

import pytest

from audit import REASON_CODES
from tests.audit.trail.test_cli import db_path, run, signed_in  # noqa: F401 (the fixture)


def test_review_reason_duplicate_and_reverse(db_path: str, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    signed_in(monkeypatch, db_path, "bob", "reviewer")
    base = ["review", "3", "--face-id", "f2", "--db", db_path, "--json"]
    code, out = run(capsys, *base, "--decision", "reject", "--reason", REASON_CODES[2])
    assert code == 0 and out["review"]["record"]["details"]["reason_code"] == REASON_CODES[2]
    code, out = run(capsys, *base, "--decision", "confirm", "--reason", REASON_CODES[0])
    assert code == 2 and out["code"] == "review_refused" and "already reviewed" in out["error"]
    code, out = run(capsys, *base, "--decision", "confirm", "--reason", REASON_CODES[0], "--reverse")
    assert code == 0 and out["review"]["record"]["details"]["reversal"]["from"] == "reject"
    code, out = run(capsys, *base, "--decision", "reject", "--reason", "because", "--reverse")
    assert code == 2  # not a reason code: argparse refuses it
