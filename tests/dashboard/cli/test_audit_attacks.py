"""Attacks on the audit log from the attacker's side: raw writes to the database file, then the real CLI.

Each attack is what someone with write access to the file (and in the last one, the key
file too) can do; each must be detected by ``facetrail audit verify`` (exit 1, the first
record named with the kind of fault) or ``verify-excerpt``, or refused.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.trail.chain import GENESIS, entry_hash
from audit.trail.log import AuditLog
from audit.trail.notes import sign_checkpoint_note
from audit.trail.records import AuditRecord, canonical_bytes
from core.storage.connection import Database
from dashboard.cli import main
from tests.audit.trail._helpers import record_fields
from tests.auth import session_token_for

N = 12
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_PURPOSE", "FACETRAIL_CASE", "FACETRAIL_TOKEN",
                 "FACETRAIL_WITNESSES"):
        monkeypatch.delenv(name, raising=False)
    key = tmp_path / "keys" / "audit.key"
    monkeypatch.setenv("FACETRAIL_AUDIT_KEY", str(key))
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    db = tmp_path / "facetrail.duckdb"
    log = AuditLog(Database(db), key_path=key)
    for i in range(N):
        log.append(record_fields(i, case="CASE-1" if i < 6 else "CASE-2"))
    (tmp_path / "pinned.vkey").write_text(log.vkey() + "\n")
    log.db.close()
    return {"db": str(db), "key": key, "dir": tmp_path, "vkey": str(tmp_path / "pinned.vkey")}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip()
    return code, json.loads(out) if out.startswith(("{", "[")) else out


def raw(db: str, statement: str, params: list[Any] | None = None) -> list[Any]:
    """What someone with write access to the file does."""
    d = Database(db)
    try:
        with d.connect() as con:
            return con.execute(statement, params or []).fetchall()
    finally:
        d.close()


def rows(db: str) -> list[tuple[int, bytes, str | None]]:
    return [(int(s), bytes(r), n) for s, r, n in raw(db, "SELECT seq, record, note FROM audit_log ORDER BY seq")]


def rechain(db: str, records: list[tuple[int, bytes, str | None]]) -> None:
    """Rewrite the whole table consistently (seqs, prev and entry hashes recomputed), keeping the notes as stored."""
    raw(db, "DELETE FROM audit_log")
    prev = GENESIS
    for seq, blob, note in records:
        h = entry_hash(prev, blob)
        raw(db, "INSERT INTO audit_log (seq, prev_hash, entry_hash, record, note) VALUES (?, ?, ?, ?, ?)",
            [seq, prev, h, blob, note])
        prev = h


def with_seq(blob: bytes, seq: int, **changes: Any) -> bytes:
    rec = json.loads(blob)
    rec.update(changes, seq=seq)
    return canonical_bytes(rec)


def fault_of(capsys: pytest.CaptureFixture[str], w: dict[str, Any], *extra: str) -> dict[str, Any]:
    code, out = run(capsys, "audit", "verify", "--db", w["db"], "--json", *extra)
    assert code == 1 and not out["ok"], out
    return dict(out["fault"])


def test_untouched_log_verifies_and_checkpoint_prints_the_note(world: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "audit", "verify", "--db", world["db"], "--json", "--public-key", world["vkey"])
    assert code == 0 and out["ok"] and out["signed"] == N and out["unwitnessed"] == N
    code, cp = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    assert code == 0 and cp["size"] == N and cp["note"].startswith(cp["origin"] + f"\n{N}\n{cp['root']}\n\n")
    assert cp["seq"] == N and len(bytes.fromhex(cp["head"])) == 32  # the old keys are still there
    code, out = run(capsys, "audit", "verify", "--db", world["db"], "--json", "--all-signatures")
    assert code == 0 and out["ok"] and out["checkpoints"] == N


def test_edit(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    raw(world["db"], "UPDATE audit_log SET record = replace(record::VARCHAR, 'alice', 'eve')::BLOB WHERE seq = 5")
    assert (fault_of(capsys, world)["seq"], fault_of(capsys, world)["kind"]) == (5, "hash_mismatch")


def test_edit_and_rechain(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    stored = rows(world["db"])
    stored[4] = (5, with_seq(stored[4][1], 5, operator="eve"), stored[4][2])
    rechain(world["db"], stored)
    f = fault_of(capsys, world)
    assert (f["seq"], f["kind"]) == (5, "rewritten")


def test_forged_tail_is_named_and_never_signed(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    stored = rows(world["db"])
    forged = canonical_bytes(AuditRecord.from_dict({**record_fields(99, operator="eve"), "seq": N + 1}).to_dict())
    for note in (None, stored[-1][2]):  # no note, or the last genuine one copied
        rechain(world["db"], [*stored, (N + 1, forged, note)])
        f = fault_of(capsys, world)
        assert f["seq"] == N + 1 and f["kind"] in ({"unsigned"} if note is None else {"rewritten"})
    # the log refuses to sign on top of it: the next audited action fails instead of covering the forgery
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    with pytest.raises(Exception, match="unsigned|rewritten"):
        log.append(record_fields(100))
    log.db.close()
    code, out = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    assert code != 0


def test_delete_middle_and_renumber(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    stored = rows(world["db"])
    kept = [r for r in stored if r[0] != 6]
    rechain(world["db"], [(i, with_seq(blob, i), note) for i, (_, blob, note) in enumerate(kept, start=1)])
    f = fault_of(capsys, world)
    assert f["seq"] == 6 and f["kind"] in {"rewritten", "bad_signature"}


def test_garbage_record_with_recomputed_hash(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    stored = rows(world["db"])
    stored[7] = (8, b"\xff\xfenot a record", stored[7][2])
    rechain(world["db"], stored)
    f = fault_of(capsys, world)
    assert (f["seq"], f["kind"]) in {(8, "rewritten"), (8, "bad_record")}
    code, out = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    assert code != 0  # never signed


@pytest.mark.slow
def test_truncation_by_restoring_yesterdays_file(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    yesterday = world["dir"] / "yesterday.duckdb"
    shutil.copy(world["db"], yesterday)
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    for i in range(5):
        log.append(record_fields(50 + i))
    log.db.close()
    code, cp = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    published = world["dir"] / "published.json"
    published.write_text(json.dumps(cp))
    shutil.copy(yesterday, world["db"])
    Path(world["db"] + ".wal").unlink(missing_ok=True)
    env = {**os.environ}
    verify = [sys.executable, "-m", "dashboard.cli", "audit", "verify", "--db", world["db"], "--json"]
    done = subprocess.run(verify, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # the file alone cannot tell...
    done = subprocess.run([*verify, "--checkpoint", str(published)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    f = json.loads(done.stdout)["fault"]  # ...a checkpoint published earlier can
    assert done.returncode == 1 and (f["seq"], f["kind"]) == (N + 1, "truncated")


def test_origin_swap(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    raw(world["db"], "UPDATE audit_log_meta SET value = 'someone-else' WHERE name = 'log_id'")
    f = fault_of(capsys, world)
    assert f["kind"] in {"bad_signature", "origin_mismatch"}
    code, out = run(capsys, "audit", "verify", "--db", world["db"], "--json", "--public-key", world["vkey"])
    assert code == 0  # the notes themselves are intact: a verifier pinning the origin still checks them


def test_history_resigned_with_a_new_key(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """With the database and the key file: replace the key and re-sign every note. Only a pinned key catches it."""
    stored = rows(world["db"])
    origin = stored[0][2].split("\n")[0] if stored[0][2] else ""
    stored[2] = (3, with_seq(stored[2][1], 3, operator="eve"), None)
    rechain(world["db"], stored)
    new = Ed25519PrivateKey.generate()
    hashes = [bytes(h) for (h,) in raw(world["db"], "SELECT entry_hash FROM audit_log ORDER BY seq")]
    from audit.trail.chain import merkle_root

    for i in range(1, N + 1):
        raw(world["db"], "UPDATE audit_log SET note = ? WHERE seq = ?",
            [sign_checkpoint_note(origin, i, merkle_root(hashes[:i], hashed=True), new), i])
    from cryptography.hazmat.primitives import serialization

    os.chmod(world["key"], 0o600)
    world["key"].write_bytes(new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    code, out = run(capsys, "audit", "verify", "--db", world["db"], "--json")
    assert code == 0  # the machine's own key now signs the forgery: that is why the key must be pinned elsewhere
    f = fault_of(capsys, world, "--public-key", world["vkey"])
    assert (f["seq"], f["kind"]) == (1, "bad_signature")


def _excerpt(capsys: pytest.CaptureFixture[str], w: dict[str, Any], name: str, *extra: str) -> Path:
    out = w["dir"] / name
    w.setdefault("token", session_token_for(w["db"], "auditor1", "auditor"))
    os.environ["FACETRAIL_TOKEN"] = w["token"]
    try:
        code, res = run(capsys, "audit", "excerpt", "--db", w["db"], "--out", str(out), "--purpose", "oversight",
                        "--json", *extra)
    finally:
        del os.environ["FACETRAIL_TOKEN"]
    assert code == 0, res
    return out


def test_excerpts_stale_checkpoints_garbage_and_short_proofs(world: dict[str, Any],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, cp = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    held = world["dir"] / "held.note"
    held.write_text(cp["note"])
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    for i in range(4):
        log.append(record_fields(70 + i))
    log.db.close()
    excerpt = _excerpt(capsys, world, "case2.json", "--case", "CASE-2")
    size = json.loads(excerpt.read_text())["manifest"]["size"]
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"], "--json")
    assert code == 0 and rep["ok"]
    # a stale checkpoint held by the third party: no proof, no verdict
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"],
                    "--trusted", str(held), "--json")
    assert code == 1 and rep["fault"]["kind"] == "no_proof"
    code, proof = run(capsys, "audit", "prove-consistency", "--db", world["db"], "--from", str(N), "--to", str(size),
                      "--json")
    proof_file = world["dir"] / "proof.json"
    proof_file.write_text(json.dumps(proof))
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"],
                    "--trusted", str(held), "--proof", str(proof_file), "--json")
    assert code == 0 and rep["ok"] and rep["trusted_size"] == N
    # short proof, garbage proof, proof for other sizes
    for bad in ({**proof, "proof": proof["proof"][:-1]}, {**proof, "proof": [base64.b64encode(b"x" * 32).decode()]},
                {**proof, "proof": []}):
        proof_file.write_text(json.dumps(bad))
        code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"],
                        "--trusted", str(held), "--proof", str(proof_file), "--json")
        assert code == 1 and rep["fault"]["kind"] == "inconsistent", rep
    proof_file.write_text(json.dumps({**proof, "proof": ["not base64!"]}))
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"],
                    "--trusted", str(held), "--proof", str(proof_file), "--json")
    assert code == 2
    # a short inclusion proof inside the excerpt
    doc = json.loads(excerpt.read_text())
    doc["records"][0]["proof"] = doc["records"][0]["proof"][:-1]
    excerpt.write_text(json.dumps(doc))
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"], "--json")
    assert code == 1 and rep["fault"]["kind"] == "bad_proof"


def test_a_contradicting_history_fails_against_the_checkpoint_a_third_party_holds(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Last week's excerpt and checkpoint are held; the history is then rewritten and re-signed with the key."""
    code, cp = run(capsys, "audit", "checkpoint", "--db", world["db"], "--json")
    held = world["dir"] / "held.note"
    held.write_text(cp["note"])
    # the operator (with the key) rewrites record 2 and replays history on top of it, all signed
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    records = [json.loads(b) for _, b, _ in rows(world["db"])]
    log.db.close()
    raw(world["db"], "DELETE FROM audit_log")
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    for rec in records:
        rec.pop("seq")
        if rec["case_ref"] == "CASE-1":
            rec["operator"] = "someone-else"
        log.append(rec)
    log.append(record_fields(90))
    log.db.close()
    excerpt = _excerpt(capsys, world, "now.json", "--case", "CASE-2")
    size = json.loads(excerpt.read_text())["manifest"]["size"]
    code, proof = run(capsys, "audit", "prove-consistency", "--db", world["db"], "--from", str(N), "--to", str(size),
                      "--json")
    (world["dir"] / "proof.json").write_text(json.dumps(proof))
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"], "--json")
    assert code == 0  # on its own the rewritten history is well signed...
    code, rep = run(capsys, "audit", "verify-excerpt", str(excerpt), "--public-key", world["vkey"],
                    "--trusted", str(held), "--proof", str(world["dir"] / "proof.json"), "--json")
    assert code == 1 and rep["fault"]["kind"] == "inconsistent"  # ...but not consistent with what was held
    f = fault_of(capsys, world, "--checkpoint", str(held))
    assert (f["seq"], f["kind"]) == (N, "inconsistent")


def test_key_rotation_is_recorded_and_history_checks_with_either_key(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(capsys, "audit", "rotate-key", "--db", world["db"], "--json")
    assert code == 2  # nobody signed in
    monkeypatch.setenv("FACETRAIL_TOKEN", session_token_for(world["db"], "root", "admin"))
    code, out = run(capsys, "audit", "rotate-key", "--db", world["db"], "--json")
    assert code == 0, out
    new_vkey = world["dir"] / "new.vkey"
    new_vkey.write_text(out["new_vkey"] + "\n")
    assert out["old_vkey"] == Path(world["vkey"]).read_text().strip() != out["new_vkey"]
    code, rec = run(capsys, "audit", "show", str(out["audit_seq"]), "--db", world["db"], "--json")
    assert rec["record"]["action"] == "rotate_key" and rec["record"]["operator"] == "root"
    log = AuditLog(Database(world["db"]), key_path=world["key"])
    log.append(record_fields(80))
    assert log.vkey() == out["new_vkey"]
    log.db.close()
    for pinned in (world["vkey"], str(new_vkey)):
        code, res = run(capsys, "audit", "verify", "--db", world["db"], "--json", "--public-key", pinned,
                        "--all-signatures")
        assert code == 0 and res["ok"], res


def test_out_never_overwrites_the_database_its_wal_a_key_or_an_existing_file(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRAIL_TOKEN", session_token_for(world["db"], "auditor1", "auditor"))
    wal = world["db"] + ".wal"
    Path(wal).write_bytes(b"")
    link = world["dir"] / "innocent-name"
    link.symlink_to(world["db"])
    before = Path(world["db"]).read_bytes()
    for target in (world["db"], wal, str(world["key"]), str(link)):
        for argv in (("audit", "export", "--format", "jsonl", "--purpose", "oversight"),
                     ("audit", "excerpt", "--purpose", "oversight"), ("audit", "public-key")):
            code, out = run(capsys, *argv, "--db", world["db"], "--out", target, "--force", "--json")
            assert code == 2 and out["code"] == "output_refused", (argv, target, out)
    assert Path(world["db"]).read_bytes() == before
    existing = world["dir"] / "report.jsonl"
    existing.write_text("keep me")
    code, out = run(capsys, "audit", "export", "--db", world["db"], "--out", str(existing), "--purpose", "oversight",
                    "--json")
    assert code == 2 and "--force" in out["error"] and existing.read_text() == "keep me"
    code, out = run(capsys, "audit", "export", "--db", world["db"], "--out", str(existing), "--purpose", "oversight",
                    "--force", "--json")
    assert code == 0 and existing.read_text() != "keep me"


def test_a_tampered_stored_subtree_hash_gives_no_proof_and_says_why(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Proofs are read from the subtree hashes stored with the records (schema version 7). Someone with the file
    overwrites one: prove-consistency refuses (exit 2, naming the fault) instead of printing a proof that would not
    verify; the records, hashes and notes are untouched, so verify still says ok."""
    code, good = run(capsys, "audit", "prove-consistency", "--db", world["db"], "--from", "3", "--json")
    assert code == 0 and len(good["proof"]) >= 2
    raw(world["db"], "UPDATE audit_log SET subtrees = ? WHERE seq = 8", [bytes(32 * 3)])
    code, out = run(capsys, "audit", "prove-consistency", "--db", world["db"], "--from", "3", "--json")
    assert code == 2 and "proof" not in out
    assert "checkpoint_mismatch" in out["error"] and "audit verify" in out["error"]
    code, rep = run(capsys, "audit", "verify", "--db", world["db"], "--json")
    assert code == 0 and rep["ok"]
