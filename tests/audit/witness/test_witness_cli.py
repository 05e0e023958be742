"""The witness and the signed log from the outside: real CLI processes on a real database file.

The independent verifier below is written from the C2SP signed-note, tlog-checkpoint and
tlog-cosignature texts and RFC 6962 / RFC 9162 (consistency proofs), with only ``hashlib``
and ``cryptography``: no facetrail code checks what facetrail signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.trail.log import AuditLog
from core.storage.connection import Database
from tests.audit.trail._helpers import record_fields

ROOT = Path(__file__).resolve().parents[3]


# -- an independent verifier (specs only) ------------------------------------------------------------


def _key_id(name: str, kind: int, key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + key).digest()[:4]


def _vkey(text: str) -> tuple[str, bytes, int]:
    name, hex_id, b64 = text.strip().split("+", 2)
    raw = base64.b64decode(b64)
    assert _key_id(name, raw[0], raw[1:]) == bytes.fromhex(hex_id)
    return name, raw[1:], raw[0]


def spec_verify_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """signed-note + tlog-checkpoint: text, blank line, em-dash signature lines; Ed25519 over the text."""
    name, key, kind = _vkey(vkey)
    assert kind == 0x01
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    origin, size, root = text.split("\n")[:3]
    found = False
    for line in sigs.strip("\n").split("\n"):
        assert line.startswith("\u2014 ")
        who, blob = line[2:].split(" ")
        raw = base64.b64decode(blob)
        if who == name and raw[:4] == _key_id(name, 0x01, key):
            Ed25519PublicKey.from_public_bytes(key).verify(raw[4:], text.encode())  # raises if bad
            found = True
    assert found and origin == name
    return origin, int(size), base64.b64decode(root)


def spec_verify_cosignature(note: str, witness_vkey: str) -> int:
    """tlog-cosignature cosignature/v1: timestamp || Ed25519("cosignature/v1\\ntime T\\n" || checkpoint text)."""
    name, key, kind = _vkey(witness_vkey)
    assert kind == 0x04
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    for line in sigs.strip("\n").split("\n"):
        who, blob = line[2:].split(" ")
        raw = base64.b64decode(blob)
        if who == name and raw[:4] == _key_id(name, 0x04, key):
            (t,) = struct.unpack(">Q", raw[4:12])
            Ed25519PublicKey.from_public_bytes(key).verify(raw[12:], f"cosignature/v1\ntime {t}\n".encode() +
                                                          text.encode())
            return int(t)
    raise AssertionError("no cosignature by the witness")


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def spec_verify_consistency(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2, step by step."""
    if m == n:
        return not proof and old == new
    if m == 0 or not proof:
        return m == 0 and not proof
    if m & (m - 1) == 0:
        proof = [old, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _h(b"\x01" + c + fr), _h(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _h(b"\x01" + sr + c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old and sr == new


# -- the real CLI ----------------------------------------------------------------------------------


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = tmp_path / "facetrail.duckdb"
    key = tmp_path / "keys" / "audit.key"
    env = {**os.environ, "FACETRAIL_DB": str(db), "FACETRAIL_AUDIT_KEY": str(key),
           "FACETRAIL_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("FACETRAIL_WITNESSES", None)
    log = AuditLog(Database(db), key_path=key)
    for i in range(10):
        log.append(record_fields(i))
    vkey = log.vkey()
    log.db.close()
    witness = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "witness", "serve", "--state",
                                str(tmp_path / "witness"), "--port", "0", "--log-key", vkey],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert witness.stdout is not None
        line = witness.stdout.readline()
        parts = line.split()
        assert len(parts) > 4, witness.stderr.read() if witness.stderr else line
        wvkey, url = parts[3], parts[-1]
        env["FACETRAIL_WITNESSES"] = f"{url}={wvkey}"
        yield env, db, key, vkey, url, wvkey
    finally:
        witness.terminate()
        witness.wait(10)
        for stream in (witness.stdout, witness.stderr):
            if stream is not None:
                stream.close()


def _extend(db: Path, key: Path, n: int, operator: str = "alice") -> None:
    log = AuditLog(Database(db), key_path=key)
    for i in range(n):
        log.append(record_fields(100 + i, operator=operator))
    log.db.close()


@pytest.mark.slow
def test_publish_cosign_and_verify_independently(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env, db, key, vkey, url, wvkey = world
    r = cli(env, "audit", "publish", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["witnesses"][0]["ok"]
    out = json.loads(cli(env, "audit", "checkpoint", "--json").stdout)
    assert {"origin", "size", "root", "note"} <= set(out) and out["size"] == 10
    origin, size, root = spec_verify_checkpoint(out["note"], vkey)
    assert (origin, size, base64.b64encode(root).decode()) == (out["origin"], 10, out["root"])
    assert spec_verify_cosignature(out["note"], wvkey) > 0
    (tmp_path / "cp10").write_text(out["note"])
    _extend(db, key, 7)
    proof = json.loads(cli(env, "audit", "prove-consistency", "--from", "10", "--json").stdout)
    _, n, new_root = spec_verify_checkpoint(proof["to_checkpoint"], vkey)
    assert n == 17 and spec_verify_consistency(10, 17, root, new_root, [base64.b64decode(p) for p in proof["proof"]])
    assert not spec_verify_consistency(10, 17, root, new_root, [base64.b64decode(p) for p in proof["proof"][:-1]])
    assert cli(env, "audit", "publish", "--json").returncode == 0
    v = json.loads(cli(env, "audit", "verify", "--witness", url, "--checkpoint", str(tmp_path / "cp10"),
                       "--json").stdout)
    assert v["ok"] and v["unwitnessed"] == 0 and v["checked_against"] == 2
    assert v["witnesses"][0]["cosignature_checked"] and v["witnesses"][0]["size"] == 17


@pytest.mark.slow
def test_rollback_and_fork_are_refused_by_the_witness_and_caught_by_verify(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env, db, key, vkey, url, wvkey = world
    shutil.copy(db, tmp_path / "yesterday.duckdb")
    _extend(db, key, 5)
    assert cli(env, "audit", "publish", "--json").returncode == 0
    published = json.loads(cli(env, "audit", "checkpoint", "--json").stdout)["note"]
    (tmp_path / "cp15").write_text(published)
    # rollback: yesterday's copy of the file put back (WAL folded in by the close above)
    shutil.copy(tmp_path / "yesterday.duckdb", db)
    r = cli(env, "audit", "verify", "--witness", url, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["fault"]["kind"] == "truncated"
    # fork: the old copy extended differently to the same size
    _extend(db, key, 5, operator="mallory")
    r = cli(env, "audit", "publish", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["witnesses"][0]["status"] == 409
    r = cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "cp15"), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["fault"]["kind"] == "inconsistent"


def _post(url: str, body: str) -> int:
    req = urllib.request.Request(url + "/add-checkpoint", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.mark.slow
def test_witness_answers_as_the_spec_says(world) -> None:  # type: ignore[no-untyped-def]
    env, db, key, vkey, url, wvkey = world
    log = AuditLog(Database(db), key_path=key)
    note = log.checkpoint().note
    assert _post(url, "old 0\n\n" + note) == 200
    assert _post(url, "old 3\n\n" + note) == 409  # not the size it holds
    assert _post(url, "old 10\n\n" + note.replace("\n10\n", "\n10\n", 1)) == 200  # same tree again
    forged = note.replace(note.split("\n")[2], base64.b64encode(b"\x00" * 32).decode())
    assert _post(url, "old 10\n\n" + forged) == 403  # the signature no longer verifies
    other = note.replace(log.origin, "facetrail.example/someone-else")
    assert _post(url, "old 0\n\n" + other) == 404
    for i in range(3):
        log.append(record_fields(200 + i))
    new = log.checkpoint().note
    good = log.prove_consistency(10)
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in good)
    assert _post(url, "old 10\n" + "".join(base64.b64encode(p).decode() + "\n" for p in good[:-1]) + "\n" + new) == 422
    assert _post(url, "old 10\nnot-base64\n\n" + new) == 400
    assert _post(url, "old 10\n" + lines + "\n" + new) == 200
    log.db.close()
