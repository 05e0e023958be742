"""Shared fixtures.

Real faces come from ``$FACETRAIL_TEST_DATA`` (default ``../shared/datasets``
beside the repository). Tests that need them skip with a clear reason when the
folder is absent; ``.ci/run`` sets the variable and fails the run if any such
test was skipped.

The whole run keeps its accounts' sessions and the logs' signing keys in one private
temporary configuration folder (``$FACETRAIL_CONFIG_DIR``), never in the user's own
``~/.config/facetrail``; a test that needs its own folder sets the variable itself.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from core.config import ModelConfig, ThresholdSource

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Point ``$FACETRAIL_CONFIG_DIR`` at a private folder for the run, unless the caller chose one."""
    if "FACETRAIL_CONFIG_DIR" not in os.environ:
        os.environ["FACETRAIL_CONFIG_DIR"] = tempfile.mkdtemp(prefix="facetrail-test-config-")


def _data_dir() -> Path:
    raw = os.environ.get("FACETRAIL_TEST_DATA")
    return Path(raw).expanduser().resolve() if raw else (REPO.parent / "shared" / "datasets").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The labelled face datasets (skip when absent)."""
    path = _data_dir()
    if not (path / "congress_small" / "labels.csv").is_file():
        pytest.skip(f"face datasets not found at {path}: set FACETRAIL_TEST_DATA to the shared datasets folder")
    return path


@pytest.fixture(scope="session")
def congress_pairs(data_dir: Path) -> list[tuple[str, Path, Path]]:
    """(bioguide id, 2019 photo, 2023 photo) for every member of congress_small."""
    photos: dict[str, dict[str, Path]] = {}
    with open(data_dir / "congress_small" / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            photos.setdefault(row["bioguide_id"], {})[Path(row["image"]).stem] = (
                data_dir / "congress_small" / row["image"]
            )
    return [(pid, p["c116"], p["c118"]) for pid, p in sorted(photos.items())]


@pytest.fixture(scope="session")
def real_engine():
    """The default engine with real weights (fails with the install command when weights are missing)."""
    from core import Engine

    return Engine()


def make_config(alignment: str = "dlib_5pt", threshold: float = 0.1) -> ModelConfig:
    """A configuration that needs no installed weights (for storage and index tests)."""
    return ModelConfig(
        model="Dlib",
        detector="dlib",
        alignment=alignment,
        threshold=threshold,
        threshold_source=ThresholdSource(kind="user", description="test"),
        weights_sha256=(("fake.dat", "0" * 64),),
        versions=(("deepface", "test"),),
    )


def random_unit(n: int, dims: int = 128, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors (float32)."""
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, dims)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture
def memory_db():
    """A fresh in-memory database."""
    from core.storage.connection import Database

    db = Database(":memory:")
    yield db
    db.close()


@pytest.fixture
def fake_pipeline():
    """The fake face pipeline (see :mod:`tests.fakes`)."""
    from tests.fakes import FakePipeline

    return FakePipeline()


@pytest.fixture
def fake_engine(fake_pipeline):
    """A real :class:`core.Engine` whose models are the fake pipeline (no weights needed)."""
    from core import Engine

    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = fake_pipeline
    return engine
