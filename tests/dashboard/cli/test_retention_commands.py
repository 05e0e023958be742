"""``gallery retention``, ``retention run`` with schedules, ``--receipt`` and ``privacy verify-receipt``, as a
real subprocess: what an administrator, a data-protection officer and a data subject would type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit import Runtime
from core import Database, Embedding, EnrollItem, Face, GalleryStore
from tests.auth import token_for
from tests.conftest import random_unit

pytestmark = [pytest.mark.slow]
FACE = Face(0, 0, 10, 10, 1.0, "dlib")


def run(args: list[str], db: Path, name: str, role: str, *, token: str | None = None,
        **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACETRAIL_PURPOSE": "data protection", "FACETRAIL_CONFIG_DIR": str(db.parent / "config"),
           "FACETRAIL_TOKEN": token or token_for(db, name, role), "FACETRAIL_KEYSTORE": str(db.parent / "vault" / "ft.keys")}
    for gone in ("FACETRAIL_OPERATOR", "FACETRAIL_LOG_PERSONAL_DAYS", "FACETRAIL_LOG_PERSONAL_MIN_DAYS"):
        env.pop(gone, None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, check=False, timeout=300)


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "vault").mkdir()
    monkeypatch.setenv("FACETRAIL_KEYSTORE", str(tmp_path / "vault" / "ft.keys"))  # a key store elsewhere
    path = tmp_path / "ft.duckdb"
    rt = Runtime(str(path))
    config = rt.config()  # the installed one: `gallery delete` checks the gallery was enrolled under it
    vectors = random_unit(6)
    for g, offset in (("watch", 0), ("fair", 3)):
        rt.galleries.create(g, config)
        rt.galleries.enroll(g, [EnrollItem(f"{g}-s{i}", Embedding(vectors[offset + i], f"{offset + i:064x}", FACE,
                                                                  1, config), f"{i}.png") for i in range(3)])
    rt.close()
    return path


def faces(db_path: Path, gallery: str) -> set[str]:
    db = Database(db_path)
    try:
        return {f["subject_id"] for f in GalleryStore(db).faces(gallery)}
    finally:
        db.close()


def rows(db_path: Path) -> dict[str, list[str]]:
    db = Database(db_path)
    try:
        with db.connect() as con:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        db.close()


def test_erasure_with_a_receipt_that_a_data_subject_verifies(db_path: Path, tmp_path: Path) -> None:
    pub = tmp_path / "log.pem"
    assert run(["audit", "public-key", "--out", str(pub)], db_path, "root", "admin").returncode == 0
    receipt = tmp_path / "receipt.json"
    proc = run(["gallery", "delete", "watch", "--subject", "watch-s1", "--receipt", str(receipt), "--json"],
               db_path, "root", "admin")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["receipt"] == str(receipt) and faces(db_path, "watch") == {"watch-s0", "watch-s2"}
    checked = run(["privacy", "verify-receipt", str(receipt), "--public-key", str(pub), "--json"], db_path,
                  "anyone", "operator")
    assert checked.returncode == 0, checked.stdout
    report = json.loads(checked.stdout)
    assert report["ok"] and report["seq"] == out["audit_seq"]
    # the claims are the signed record's (a sealed token), the subject is shown by the commitment and the salt
    assert report["claims"]["erased"]["subject_id"].startswith("sealed.s.") and report["claims"]["erased"]["faces"] == 1
    assert report["subject_id"] == "watch-s1" and "erased the data of the subject" in report["scope"]
    doc = json.loads(receipt.read_text())
    doc["claims"]["erased"]["faces"] = 3
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    failed = run(["privacy", "verify-receipt", str(forged), "--public-key", str(pub), "--json"], db_path,
                 "anyone", "operator")
    assert failed.returncode == 1 and json.loads(failed.stdout)["fault"]["kind"] == "claims_mismatch"
    assert "claims_mismatch" in run(["privacy", "verify-receipt", str(forged), "--public-key", str(pub)], db_path,
                                    "anyone", "operator").stdout
    doc = json.loads(receipt.read_text())
    doc["subject"]["subject_id"] = "watch-s0"  # someone else's id on the requester's receipt
    other = tmp_path / "other-subject.json"
    other.write_text(json.dumps(doc))
    failed = run(["privacy", "verify-receipt", str(other), "--public-key", str(pub), "--json"], db_path,
                 "anyone", "operator")
    assert failed.returncode == 1 and json.loads(failed.stdout)["fault"]["kind"] == "subject_mismatch"
    # an existing --receipt file is refused before anything is erased; so is the key store elsewhere
    for target in (receipt, tmp_path / "vault" / "ft.keys", Path(f"{db_path}.evidence") / "r.json"):
        refused = run(["gallery", "delete", "watch", "--subject", "watch-s0", "--receipt", str(target), "--json"],
                      db_path, "root", "admin")
        assert refused.returncode == 2 and json.loads(refused.stdout)["code"] == "output_refused", refused.stdout
    assert faces(db_path, "watch") == {"watch-s0", "watch-s2"}
    later = tmp_path / "later.json"
    assert run(["privacy", "receipt", str(out["audit_seq"]), "--out", str(later)], db_path, "dpo",
               "auditor").returncode == 0
    checked_later = run(["privacy", "verify-receipt", str(later), "--public-key", str(pub)], db_path,
                        "anyone", "operator")
    assert checked_later.returncode == 0 and "not whose data it erased" in checked_later.stdout


def test_a_gallery_schedule_then_a_dry_run_then_the_run_with_its_receipt(db_path: Path, tmp_path: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    refused = run(["gallery", "retention", "fair", "--until", today, "--json"], db_path, "olga", "operator")
    assert refused.returncode == 2 and json.loads(refused.stdout)["code"] == "forbidden"
    bad = run(["gallery", "retention", "fair", "--after-days", "0", "--json"], db_path, "root", "admin")
    assert bad.returncode == 2 and "--after-days" in json.loads(bad.stdout)["error"]
    done = run(["gallery", "retention", "fair", "--until", today, "--purpose", "security of the fair", "--json"],
               db_path, "root", "admin")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["until"] == today and json.loads(done.stdout)["purpose"] == "security of the fair"
    inventory = {h["place"]: h for h in json.loads(run(["privacy", "inventory", "--json"], db_path, "dpo",
                                                       "auditor").stdout)}
    assert f"fair: the whole gallery erased on {today}" in inventory["table:gallery_faces"]["retention"]
    assert "file:ft.keys" in inventory  # the key store FACETRAIL_KEYSTORE puts elsewhere is listed
    dpo = token_for(db_path, "dpo", "auditor")
    before = rows(db_path)
    dry = run(["retention", "run", "--dry-run", "--json"], db_path, "dpo", "auditor", token=dpo)
    assert dry.returncode == 0, dry.stderr
    assert [g["gallery_name"] for g in json.loads(dry.stdout)["galleries"]] == ["fair"]
    assert rows(db_path) == before  # a dry run changes no row
    receipt = tmp_path / "retention.json"
    ran = run(["retention", "run", "--receipt", str(receipt), "--json"], db_path, "dpo", "auditor")
    assert ran.returncode == 0, ran.stderr
    assert [g["gallery_name"] for g in json.loads(ran.stdout)["galleries"]] == ["fair"]
    listed = json.loads(run(["gallery", "list", "--json"], db_path, "dpo", "auditor").stdout)
    assert "fair" not in json.dumps(listed) and faces(db_path, "watch") == {"watch-s0", "watch-s1", "watch-s2"}
    pub = tmp_path / "log.vkey"
    run(["audit", "public-key", "--vkey", "--out", str(pub)], db_path, "root", "admin")
    checked = json.loads(run(["privacy", "verify-receipt", str(receipt), "--public-key", str(pub), "--json"],
                             db_path, "anyone", "operator").stdout)
    assert checked["ok"] and checked["claims"]["erased"]["galleries"] == [{"gallery": "fair", "faces": 3}]
    again = json.loads(run(["retention", "run", "--json"], db_path, "dpo", "auditor").stdout)
    assert again["galleries"] == [] and again["audit_seq"] > json.loads(ran.stdout)["audit_seq"]


def test_a_log_schedule_below_the_legal_minimum_is_refused(db_path: Path) -> None:
    proc = run(["retention", "run", "--dry-run", "--json"], db_path, "dpo", "auditor",
               FACETRAIL_LOG_PERSONAL_DAYS="30", FACETRAIL_LOG_PERSONAL_MIN_DAYS="183")
    assert proc.returncode == 2 and json.loads(proc.stdout)["code"] == "retention_below_minimum"
    assert "legal minimum" in proc.stderr and "FACETRAIL_LOG_PERSONAL_DAYS=30" in proc.stderr
    ok = run(["retention", "run", "--dry-run", "--json"], db_path, "dpo", "auditor",
             FACETRAIL_LOG_PERSONAL_DAYS="365")
    fields = json.loads(ok.stdout)["log_personal_fields"]
    assert (fields["days"], fields["minimum_days"], fields["records_due"], fields["field_keys_due"]) == (
        "365", "183", 0, 0)
    assert "0 subject field key(s) due (nothing_due)" in run(["retention", "run", "--dry-run"], db_path, "dpo",
                                                             "auditor", FACETRAIL_LOG_PERSONAL_DAYS="365").stdout
