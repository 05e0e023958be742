"""Privacy through the real ``facetrail`` command, as an outsider holding every file it wrote.

Probe test: after searches and verifies, no table and no file (database, write-ahead log,
key store) holds a probe's embedding. Erasure test: a subject's embedding bytes, its key and
its id are taken before ``gallery delete NAME --subject ID``; afterwards no file facetrail wrote
(and no export made afterwards) holds them, the audit records included (they hold the id sealed
under a key the erasure destroyed: audit.trail.sealed), and ``audit verify`` still passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import Database
from core.keystore import KeyStore
from tests.auth import token_for

pytestmark = [pytest.mark.model, pytest.mark.data, pytest.mark.slow]


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "people" not in p.parts}


def float_columns_holding(db_path: Path, vector: np.ndarray) -> list[str]:
    """Every float-list column of every table holding ``vector`` (a search through values)."""
    db = Database(str(db_path))
    try:
        with db.connect() as con:
            cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                               "WHERE data_type LIKE 'FLOAT[]%'").fetchall()
            hits = []
            for table, column in cols:
                for (value,) in con.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall():
                    if np.allclose(np.asarray(value, np.float32), vector, atol=1e-5):
                        hits.append(f"{table}.{column}")
    finally:
        db.close()
    return hits


def subject_in_tables(db_path: Path, subject: str) -> list[str]:
    db = Database(str(db_path))
    try:
        with db.connect() as con:
            tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            return [t for t in tables if t != "audit_log" and subject in repr(con.execute(f'SELECT * FROM "{t}"').fetchall())]
    finally:
        db.close()


_TOKENS: dict[tuple[str, str], str] = {}


def run(args: list[str], db: Path, role: str = "operator") -> subprocess.CompletedProcess[str]:
    """``facetrail --db DB ARGS`` as the database's ``privacy-<role>`` account."""
    if (str(db), role) not in _TOKENS:
        _TOKENS[(str(db), role)] = token_for(db, f"privacy-{role}", role)
    env = {**os.environ, "FACETRAIL_PURPOSE": "privacy test", "FACETRAIL_CONFIG_DIR": str(db.parent / "config"),
           "FACETRAIL_TOKEN": _TOKENS[(str(db), role)]}
    env.pop("FACETRAIL_OPERATOR", None)
    env.pop("FACETRAIL_KEYSTORE", None)
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, check=False, timeout=600)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, congress_pairs):
    root = tmp_path_factory.mktemp("privacy")
    folder = root / "people"
    for pid, old, _ in congress_pairs[:4]:
        (folder / pid).mkdir(parents=True)
        shutil.copy(old, folder / pid / "2019.jpg")
    db = root / "ft.duckdb"
    assert run(["gallery", "create", "g", "--json"], db, "admin").returncode == 0
    enrolled = run(["gallery", "enroll", "g", "--folder", str(folder), "--json", "--workers", "1"], db, "admin")
    assert enrolled.returncode == 0, enrolled.stderr
    return root, db


def test_searches_and_verifies_store_no_probe_embedding(workspace, congress_pairs, real_engine) -> None:
    root, db = workspace
    probes = [congress_pairs[0][2], congress_pairs[1][2], congress_pairs[9][2]]  # two members, one stranger
    searched = run(["search", *map(str, probes), "--gallery", "g", "--json"], db)
    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout.splitlines()[0])["candidates"][0]["subject_id"] == congress_pairs[0][0]
    verified = run(["verify", str(probes[0]), str(congress_pairs[0][1]), "--json"], db)
    assert verified.returncode == 0 and json.loads(verified.stdout)["verified"] is True
    vectors = [real_engine.embed(p).vector for p in probes]
    raw = b"".join(files(root).values())
    for v in vectors:
        assert v.tobytes() not in raw  # database, WAL (if any), key store, audit key
        assert float_columns_holding(db, v) == []


def test_erasure_leaves_nothing_an_outsider_can_read(workspace, congress_pairs, real_engine) -> None:
    root, db = workspace
    victim, photo, _ = congress_pairs[3]
    vector = real_engine.embed(photo).vector.tobytes()
    keys_before = KeyStore(root / "ft.duckdb.keys")
    before = {k: v for k, v in keys_before.get_many(keys_before.key_ids()).items()}
    deleted = run(["gallery", "delete", "g", "--subject", victim, "--json"], db, "admin")
    assert deleted.returncode == 0, deleted.stderr
    after = KeyStore(root / "ft.duckdb.keys").key_ids()
    gone = [before[k] for k in set(before) - after]
    assert len(gone) == 3  # exactly the subject's keys: its rows' key, its log field key and that key's index entry
    out = root / "exports"
    out.mkdir()
    for fmt in ("csv", "jsonl", "parquet"):
        for extra in ([], ["--pseudonymize"]):
            name = f"log{'-pseudo' if extra else ''}.{fmt}"
            exported = run(["audit", "export", "--format", fmt, "--out", str(out / name), *extra], db, "auditor")
            assert exported.returncode == 0, exported.stderr
    for path, data in files(root).items():
        assert vector not in data, path.name
        assert all(key not in data for key in gone), path.name
        assert victim.encode() not in data, path.name  # the database, its WAL, the key store, every export
    assert subject_in_tables(db, victim) == []
    assert float_columns_holding(db, np.frombuffer(vector, np.float32)) == []
    verified = run(["audit", "verify", "--json"], db, "auditor")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    searched = run(["search", str(congress_pairs[3][2]), "--gallery", "g", "--json"], db)
    assert all(c["subject_id"] != victim for c in json.loads(searched.stdout)["candidates"])
