"""Fixtures for the dashboard tests: a fake scene (no models, no images) and the real demo scene (data)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from argon2 import PasswordHasher

from audit import AuditContext, EvaluationConfig, EvaluationStore, evaluate_embeddings
from audit.accounts import Actor, UserStore
from audit.runtime import Runtime
from core.storage.connection import Database
from dashboard.demo import DEMO_USERS, demo_password
from tests.auth import actor_for

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "web" / "streamlit_app.py")
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
DATA = Path(os.environ.get("FACETRAIL_TEST_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"))
FAKE_KEY = "fake-embedding-key"


def data_or_skip() -> Path:
    """The shared datasets folder, or skip the test with the reason."""
    if not (DATA / "lfw_small" / "labels.csv").is_file() or not (DATA / "congress_small" / "labels.csv").is_file():
        pytest.skip(f"needs lfw_small and congress_small in {DATA} (set FACETRAIL_TEST_DATA)")
    return DATA


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_fake_scene(path: Path) -> Runtime:
    """Accounts, a few recorded searches, reviews and refusals, one evaluation: no model needed."""
    rt = Runtime(str(path))
    users = UserStore(rt.db, hasher=FAST_HASHER)
    for name, role in DEMO_USERS:
        users.add(name, role, demo_password(name))
    gallery = {"name": "arrest_photos", "fingerprint": "10-" + "0" * 32, "size": 10}
    model = {"model": "Dlib", "detector": "dlib", "alignment": "dlib_5pt", "threshold": 0.07,
             "embedding_key": FAKE_KEY}
    for i in range(12):
        operator = f"operator{1 + i % 3}"
        ok = i % 3 != 1
        candidates = [{"subject_id": f"Person_{i}", "face_id": f"face{i:02d}", "distance": "0.050000", "similarity": "0.950000",
                       "rank": 1}] if ok else []
        rt.log.append({"action": "search", "outcome": "ok" if ok else "no_match", "operator": operator,
                       "purpose": "identify a suspect", "case_ref": f"CR-{i % 4}", "gallery": gallery,
                       "model_config": model, "probe_sha256": [_sha(f"probe{i}")], "faces_found": 1,
                       "candidates": candidates, "details": {"top_k": 5, "threshold": 0.07}, "latency_ms": 12.5})
    for seq, name, decision, note in ((1, "reviewer1", "confirm", "same person"), (1, "reviewer2", "confirm", "agree"),
                                      (3, "reviewer1", "reject", "different person")):
        rt.session(AuditContext(), actor_for(rt.db, name, "reviewer")).review(seq, decision, note=note)
    rt.log.append({"action": "refused", "outcome": "missing_context", "operator": "operator2",
                   "details": {"attempted": "search", "reason": "no purpose"}})
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(40), 3)
    centres = rng.normal(size=(40, 16))
    x = centres[subjects] + 0.6 * rng.normal(size=(120, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = pd.DataFrame({"sex": np.where(subjects % 2, "F", "M"), "race": np.where(subjects % 3, "a", "b")})
    report = evaluate_embeddings(
        x, subjects, labels, EvaluationConfig(by=(("sex",), ("race",)), default_threshold=0.3, bootstrap=20),
        dataset_fingerprint="fake", model_config=model,
    )
    EvaluationStore(rt.db).save(report, dataset_name="fake_set")
    rt.db.close()
    return rt


@pytest.fixture(scope="session")
def fake_scene_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake scene, built once; tests get their own copy (:func:`copy_db`), never this file."""
    path = tmp_path_factory.mktemp("dashboard") / "fake.duckdb"
    build_fake_scene(path)
    return path


def copy_db(template: Path, folder: Path) -> str:
    """Copy a database with its write-ahead log, key store, keys and evidence folder into ``folder``; return its path."""
    target = folder / template.name
    for source in template.parent.glob(template.name + "*"):
        if source.is_dir():
            shutil.copytree(source, folder / source.name)
        else:
            shutil.copy2(source, folder / source.name)
    return str(target)


@pytest.fixture
def fake_db(fake_scene_template: Path, tmp_path: Path) -> str:
    """A fresh copy of the fake scene for one test (tests may change it freely)."""
    return copy_db(fake_scene_template, tmp_path)


@pytest.fixture
def app_env(fake_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FACETRAIL_DB", fake_db)
    yield fake_db


def as_user(name: str, role: str) -> Actor:
    """A live dashboard session of account ``name`` (given ``role``) in the database the app serves ($FACETRAIL_DB)."""
    db = Database(os.environ["FACETRAIL_DB"])
    try:
        return actor_for(db, name, role, method="dashboard_session")
    finally:
        db.close()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small real demo scene: 15 LFW people in the gallery, 8 Congress probes, both evaluations."""
    from dashboard.demo import build_scene

    data = data_or_skip()
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    rt = Runtime(str(path))
    build_scene(rt, data, gallery_limit=15, probe_limit=8, bootstrap=20, workers=1, echo=lambda _: None)
    rt.db.close()
    return str(path)
