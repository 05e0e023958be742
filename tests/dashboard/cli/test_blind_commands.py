"""``facetrail blind ...`` and ``facetrail review-rates`` on a real database file, as the signed-in accounts.

Auditor carol opens a batch over two searches of operator alice with fillers; reviewers rev1
and rev2 take items one at a time (never seeing score, rank, face or verdict) and decide; carol
reveals the batch and measures the reviewers. The existing ``facetrail review SEQ`` keeps working.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from audit.trail.log import AuditLog
from core.gallery import EnrollItem, GalleryStore
from core.storage.connection import Database
from dashboard.cli import main
from tests.audit.trail._helpers import candidate, record_fields
from tests.auth import session_token_for
from tests.conftest import make_config
from tests.fakes import face_png


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_engine):
    """Run ``facetrail --db DB ... --json`` as account NAME: returns (exit code, JSON payload, stderr)."""
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_TOKEN", "FACETRAIL_PURPOSE", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    db_path = str(tmp_path / "blind.duckdb")
    db = Database(db_path)
    log = AuditLog(db)
    seqs = []
    for i in (1, 2):
        fields = record_fields(i, operator="alice")
        fields["candidates"] = [candidate(f"s{i}-{r}", f"f{i}-{r}", 0.05 * r, r) for r in (1, 2)]
        seqs.append(log.append(fields).seq)
    store = GalleryStore(db)
    store.create("fillers", make_config())
    store.enroll("fillers", [EnrollItem(f"x{k}", fake_engine.embed(face_png(f"x{k}")), f"x{k}.png") for k in range(6)])
    db.close()
    tokens = {name: session_token_for(db_path, name, role)
              for name, role in (("carol", "auditor"), ("rev1", "reviewer"), ("rev2", "reviewer"))}

    def run(name: str, *argv: str) -> tuple[int, Any, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        monkeypatch.setenv("FACETRAIL_TOKEN", tokens[name])
        code = main(["--db", db_path, *argv, "--json"])
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if line.strip()]
        return code, json.loads(lines[-1]) if lines else None, captured.err

    run.seqs = seqs  # type: ignore[attr-defined]
    run.db = db_path  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


def test_a_blind_session_end_to_end(cli) -> None:
    q1, q2 = cli.seqs
    code, opened, err = cli("carol", "blind", "open", "--query", str(q1), "--query", str(q2),
                            "--filler-gallery", "fillers", "--filler-share", "0.5")
    assert code == 0, err
    assert opened["items"] == 8 and opened["fillers"] == 4
    seen: dict[str, set[str]] = {}
    for name in ("rev1", "rev2"):
        seen[name] = set()
        while True:
            code, item, err = cli(name, "blind", "next")
            assert code == 0, err
            if item["item"] is None:
                break
            assert set(item) == {"mode", "batch_id", "item", "ticket", "position", "total", "photos"}
            text = json.dumps(item)
            assert not any(s in text for s in ("f1-", "f2-", "s1-", "s2-", "0.050000", "0.100000", "0.950000", "0.900000", "rev", "confirm"))
            seen[name].add(item["item"])
            code, probe, err = cli(name, "blind", "probe", item["ticket"], "--out", str(cli.tmp / "probe.png"))
            assert code == 0 and probe == {"probe": None}, err  # no probe image was kept for these searches
            code, done, err = cli(name, "blind", "decide", item["ticket"], "--decision", "confirm")
            assert code == 0 and done["mode"] == "blind", err
        assert len(seen[name]) == 8
    assert not seen["rev1"] & seen["rev2"]  # item ids are each reviewer's own
    code, out, _ = cli("rev1", "review-rates")
    assert code == 2 and out["code"] == "forbidden"
    code, out, _ = cli("rev1", "blind", "reveal", opened["batch_id"])
    assert code == 2 and out["code"] == "forbidden"
    code, out, err = cli("carol", "blind", "reveal", opened["batch_id"])
    assert code == 0 and out["decisions"] == 16, err
    code, checked, err = cli("rev2", "blind", "verify", opened["batch_id"])
    assert code == 0 and checked == {"batch_id": opened["batch_id"], "ok": True, "decisions": 16}, err
    code, shown, _ = cli("rev1", "audit", "show", str(q1))
    assert code == 0 and [c["status"] for c in shown["review"]["candidates"]] == ["confirmed", "confirmed"]
    assert [c["face_id"] for c in shown["review"]["candidates"]] == ["f1-1", "f1-2"]  # no filler among them
    code, rates, err = cli("carol", "review-rates")
    assert code == 0, err
    by_name = {r["reviewer"]: r for r in rates["reviewers"]}
    assert by_name["rev1"]["false_confirms"] == by_name["rev1"]["filler_decisions"] == 4
    assert by_name["rev1"]["agreements"] == by_name["rev1"]["agreement_pairs"] == 8
    assert rates["batches"] == [opened["batch_id"]] and isinstance(rates["audit_seq"], int)


def test_refusals_exit_2_and_the_non_blind_review_still_works(cli) -> None:
    q1, _ = cli.seqs
    code, out, _ = cli("carol", "blind", "open", "--query", str(q1), "--filler-gallery", "fillers",
                       "--filler-share", "1.5")
    assert code == 2 and out["code"] == "blind_review_refused" and "below 1" in out["error"]
    code, out, _ = cli("rev1", "blind", "open", "--query", str(q1), "--filler-gallery", "fillers")
    assert code == 2 and out["code"] == "forbidden"
    code, out, _ = cli("rev1", "blind", "decide", "not-a-ticket", "--decision", "confirm")
    assert code == 2 and out["code"] == "blind_review_refused"
    code, out, _ = cli("rev1", "blind", "next")
    assert code == 0 and out == {"item": None}
    code, out, _ = cli("rev1", "blind", "probe", "not-a-ticket", "--out", cli.db)
    assert code == 2 and out["code"] == "output_refused"  # never over the database
    code, out, _ = cli("rev1", "blind", "verify", "0123456789abcdef")
    assert code == 1 and out["code"] == "blind_reveal_mismatch"
    code, out, err = cli("rev1", "review", str(q1), "--decision", "confirm", "--face-id", "f1-1")
    assert code == 0, err
    assert out["review"]["record"]["details"]["mode"] == "non_blind"
