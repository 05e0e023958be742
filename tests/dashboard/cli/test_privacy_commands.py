"""``facetrail privacy inventory`` and ``privacy purge-evaluation-cache`` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core import Database, Embedding, EnrollItem, Face, GalleryStore
from core.cache import CachedOutcome, EvaluationCache, image_refs
from core.keystore import KeyStore
from tests.auth import token_for
from tests.conftest import make_config, random_unit

pytestmark = [pytest.mark.slow]
FACE = Face(0, 0, 10, 10, 1.0, "dlib")


def run(args: list[str], db: Path, name: str, role: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACETRAIL_PURPOSE": "privacy review", "FACETRAIL_CONFIG_DIR": str(db.parent / "config"),
           "FACETRAIL_TOKEN": token_for(db, name, role)}
    for gone in ("FACETRAIL_OPERATOR", "FACETRAIL_KEYSTORE", "FACETRAIL_EVALUATION_CACHE_DAYS"):
        env.pop(gone, None)
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, check=False, timeout=300)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "ft.duckdb"
    db = Database(path)
    store = GalleryStore(db)
    config = make_config()
    store.create("g", config)
    vectors = random_unit(5)
    store.enroll("g", [EnrollItem(f"s{i % 3}", Embedding(vectors[i], f"{i:064x}", FACE, 1, config), f"{i}.png")
                       for i in range(5)])
    now = datetime.now(UTC)
    for age, names in ((40, ("a", "b")), (45, ("c",)), (2, ("d",))):
        cache = EvaluationCache(db, clock=lambda age=age: now - timedelta(days=age), retention_days=30)
        cache.put_many("k", [CachedOutcome(n, np.ones(128, np.float32), FACE, 1, None, None) for n in names])
    db.close()
    return path


def test_inventory_lists_every_holding_with_counts(db_path: Path) -> None:
    proc = run(["privacy", "inventory", "--json"], db_path, "dpo", "auditor")
    assert proc.returncode == 0, proc.stderr
    places = {h["place"]: h for h in json.loads(proc.stdout)}
    assert places["table:gallery_faces"]["rows"] == 5 and places["table:gallery_faces"]["subjects"] == 3
    assert places["table:evaluation_cache"]["rows"] == 4
    assert "30 days" in places["table:evaluation_cache"]["retention"]
    assert places["file:ft.duckdb.keys"]["rows"] == 3 + 3  # three subjects, three cache days
    assert {"table:audit_log", "table:users", "table:embedding_cache"} <= places.keys()
    assert all({"kind", "oldest", "retention", "protection"} <= h.keys() for h in places.values())


def test_purge_dry_run_then_purge_then_nothing(db_path: Path) -> None:
    dry = run(["privacy", "purge-evaluation-cache", "--dry-run", "--json"], db_path, "auditor1", "auditor")
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert (counted["entries"], counted["keys_destroyed"], counted["dry_run"]) == (3, 2, True)
    assert counted["oldest_kept"] is not None
    done = json.loads(run(["privacy", "purge-evaluation-cache", "--json"], db_path, "auditor1", "auditor").stdout)
    assert (done["entries"], done["keys_destroyed"], done["dry_run"]) == (3, 2, False)
    again = json.loads(run(["privacy", "purge-evaluation-cache", "--json"], db_path, "auditor1", "auditor").stdout)
    assert (again["entries"], again["keys_destroyed"]) == (0, 0)
    db = Database(db_path)
    with db.connect() as con:
        kept = image_refs(KeyStore.for_database(db, db.path), ["d"])  # entries are keyed (schema version 9)
        assert con.execute("SELECT image_sha256 FROM evaluation_cache").fetchall() == [(kept[0],)]
    db.close()


def test_an_operator_may_not_purge_nor_read_the_inventory(db_path: Path) -> None:
    for args in (["privacy", "purge-evaluation-cache", "--json"], ["privacy", "inventory", "--json"]):
        proc = run(args, db_path, "olga", "operator")
        assert proc.returncode == 2 and json.loads(proc.stdout)["code"] == "forbidden", proc.stdout
    listed = run(["audit", "list", "--action", "refused", "--json"], db_path, "audrey", "auditor")
    refused = [r["record"]["details"]["attempted"] for r in json.loads(listed.stdout)]
    assert refused[-2:] == ["evaluate", "report"]
    db = Database(db_path)
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM evaluation_cache").fetchall()[0][0] == 4
    db.close()


def test_retention_run_dry_run_then_run_then_nothing(db_path: Path) -> None:
    dry = run(["retention", "run", "--dry-run", "--json"], db_path, "auditor1", "auditor")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["evaluation_cache"]["entries"] == 3 and json.loads(dry.stdout)["dry_run"] is True
    done = json.loads(run(["retention", "run", "--json"], db_path, "auditor1", "auditor").stdout)
    assert done["evaluation_cache"]["entries"] == 3 and done["audit_seq"] > 0
    again = json.loads(run(["retention", "run", "--json"], db_path, "auditor1", "auditor").stdout)
    assert again["evaluation_cache"]["entries"] == 0 and again["audit_seq"] == done["audit_seq"] + 1
    shown = run(["audit", "show", str(done["audit_seq"]), "--json"], db_path, "auditor1", "auditor")
    assert json.loads(shown.stdout)["record"]["action"] == "retention"
