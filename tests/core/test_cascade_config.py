"""The detector cascade is part of the configuration and of the embedding key (no weights needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from core.cache import CachedOutcome, EmbeddingCache
from core.config import ModelConfig
from core.errors import ConfigMismatch
from core.gallery import EnrollItem, GalleryStore
from core.results import Embedding, Face
from tests.conftest import make_config, random_unit

PLAIN = make_config()
CASCADE = replace(PLAIN, fallback_detectors=("dlib_cnn", "mtcnn"))


def _legacy_key(config: ModelConfig) -> str:
    """The embedding key as it was computed before cascades existed (written out here, independently)."""
    payload = {
        "model": config.model,
        "detector": config.detector,
        "alignment": config.alignment,
        "weights": sorted(config.weights_sha256),
        "versions": sorted(config.versions),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def test_cascade_changes_the_embedding_key_and_a_config_without_one_keeps_its_old_key() -> None:
    assert PLAIN.embedding_key == _legacy_key(PLAIN)
    assert CASCADE.embedding_key != PLAIN.embedding_key
    reordered = replace(PLAIN, fallback_detectors=("mtcnn", "dlib_cnn"))
    assert reordered.embedding_key not in {PLAIN.embedding_key, CASCADE.embedding_key}  # order is the cascade
    assert CASCADE.detectors == ("dlib", "dlib_cnn", "mtcnn")
    assert CASCADE.name == "Dlib/dlib>dlib_cnn>mtcnn/dlib_5pt" and PLAIN.name == "Dlib/dlib/dlib_5pt"


def test_cascade_round_trips_through_to_dict() -> None:
    data = CASCADE.to_dict()
    assert data["fallback_detectors"] == ["dlib_cnn", "mtcnn"]
    assert ModelConfig.from_dict(data) == CASCADE
    old_record = {k: v for k, v in PLAIN.to_dict().items() if k != "fallback_detectors"}
    assert ModelConfig.from_dict(old_record) == PLAIN  # records written before cascades read as no cascade


@pytest.mark.parametrize(
    ("detector", "fallbacks", "alignment", "message"),
    [
        ("dlib", ("retinaface",), "dlib_5pt", "unknown detector 'retinaface'"),
        ("dlib", ("dlib_cnn", "dlib_cnn"), "dlib_5pt", "names a detector twice"),
        ("dlib", ("dlib",), "dlib_5pt", "names a detector twice"),
        ("dlib", ("mtcnn",), "deepface", "fallback detectors need alignment dlib_5pt"),
        ("dlib_cnn", (), "deepface", "needs alignment dlib_5pt"),
    ],
)
def test_cascades_facetrail_cannot_run_are_refused(detector, fallbacks, alignment, message) -> None:
    with pytest.raises(ValueError, match=message):
        replace(PLAIN, detector=detector, fallback_detectors=fallbacks, alignment=alignment)


def _embedding(config: ModelConfig, detector: str, seed: int = 0) -> Embedding:
    vector = random_unit(1, seed=seed)[0]
    return Embedding(vector, f"{seed:064d}", Face(0, 0, 10, 10, 1.0, detector), 1, config)


def test_cascade_and_plain_configs_never_share_a_gallery(memory_db) -> None:
    store = GalleryStore(memory_db)
    store.create("plain", PLAIN)
    store.create("cascade", CASCADE)
    with pytest.raises(ConfigMismatch):
        store.enroll("plain", [EnrollItem("s1", _embedding(CASCADE, "dlib_cnn"), "a.jpg")])
    with pytest.raises(ConfigMismatch):
        store.enroll("cascade", [EnrollItem("s1", _embedding(PLAIN, "dlib"), "a.jpg")])
    store.enroll("cascade", [EnrollItem("s1", _embedding(CASCADE, "dlib"), "a.jpg")])  # HOG found it: same key
    assert store.info("cascade").size == 1 and store.info("plain").size == 0


def test_cascade_and_plain_configs_never_share_cached_embeddings(memory_db) -> None:
    cache = EmbeddingCache(memory_db)
    sha = "f" * 64
    vector = random_unit(1, seed=5)[0]
    cache.put_many(CASCADE.embedding_key, [CachedOutcome(sha, vector, Face(1, 2, 30, 40, 0.9, "dlib_cnn"), 1, None, None)])
    assert cache.get_many([sha], PLAIN.embedding_key) == {}
    hit = cache.get_many([sha], CASCADE.embedding_key)[sha]
    assert hit.face == Face(1, 2, 30, 40, 0.9, "dlib_cnn")
    assert np.array_equal(hit.vector, vector)
    # "no face" under the plain config says nothing about the cascade, and the other way round
    cache.put_many(PLAIN.embedding_key, [CachedOutcome("e" * 64, None, None, 0, "no_face", "no face")])
    assert cache.get_many(["e" * 64], CASCADE.embedding_key) == {}


def test_a_cached_face_that_names_no_detector_is_recomputed_and_replaced(memory_db) -> None:
    cache = EmbeddingCache(memory_db)
    sha, key = "a" * 64, PLAIN.embedding_key
    with memory_db.connect(transaction=True) as con:  # a row as written before faces named their detector
        con.execute(
            "INSERT INTO embedding_cache (image_sha256, embedding_key, embedding, face, faces_detected) "
            "VALUES (?, ?, ?, ?, 1)",
            [sha, key, [0.0] * 127 + [1.0], json.dumps({"x": 0, "y": 0, "w": 5, "h": 5, "confidence": 1.0})],
        )
    assert cache.get_many([sha], key) == {}
    fresh = random_unit(1, seed=9)[0]
    cache.put_many(key, [CachedOutcome(sha, fresh, Face(0, 0, 5, 5, 1.0, "dlib"), 1, None, None)])
    hit = cache.get_many([sha], key)[sha]
    assert hit.face is not None and hit.face.detector == "dlib" and np.array_equal(hit.vector, fresh)


def test_face_and_embedding_dicts_name_the_detector() -> None:
    embedding = _embedding(CASCADE, "dlib_cnn")
    assert embedding.detector == "dlib_cnn"
    data = embedding.to_dict()
    assert data["detector"] == "dlib_cnn" and data["face"]["detector"] == "dlib_cnn"
    assert data["embedding_key"] == CASCADE.embedding_key and "vector" not in data
    assert Face.from_dict(embedding.face.to_dict()) == embedding.face
