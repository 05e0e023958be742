"""The detector cascade is part of the configuration and of the embedding key (no weights needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from core.cache import CachedOutcome, EmbeddingCache, EvaluationCache, face_from_fields
from core.config import ModelConfig
from core.errors import ConfigMismatch
from core.gallery import EnrollItem, GalleryStore
from core.results import Embedding, Face
from core.storage.connection import Database
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


def test_cascade_and_plain_configs_never_share_cached_embeddings(tmp_path) -> None:
    cache = EvaluationCache(Database(tmp_path / "c.duckdb"), retention_days=30)
    sha = "f" * 64
    vector = random_unit(1, seed=5)[0]
    cache.put_many(CASCADE.embedding_key, [CachedOutcome(sha, vector, Face(1, 2, 30, 40, 0.9, "dlib_cnn"), 1, None, None)])
    assert cache.get_many([sha], PLAIN.embedding_key) == {}
    hit = cache.get_many([sha], CASCADE.embedding_key)[sha]
    assert hit.face == Face(1, 2, 30, 40, 0.9, "dlib_cnn")
    assert np.array_equal(hit.vector, vector)
    # "no face" under the plain config says nothing about the cascade, and the other way round
    failures = EmbeddingCache(Database(tmp_path / "c.duckdb"))
    failures.put_many(PLAIN.embedding_key, [CachedOutcome("e" * 64, None, None, 0, "no_face", "no face")])
    assert failures.get_many(["e" * 64], CASCADE.embedding_key) == {}
    assert failures.get_many(["e" * 64], PLAIN.embedding_key)["e" * 64].error_code == "no_face"


def test_a_stored_face_that_names_no_detector_is_not_a_hit() -> None:
    legacy = {"x": 0, "y": 0, "w": 5, "h": 5, "confidence": 1.0}  # as rows were written before faces named it
    assert face_from_fields(legacy) is None
    assert face_from_fields({**legacy, "detector": "dlib_cnn"}) == Face(0, 0, 5, 5, 1.0, "dlib_cnn")


def test_a_stale_failure_is_replaced(tmp_path) -> None:
    cache = EmbeddingCache(Database(tmp_path / "c.duckdb"))
    sha, key = "a" * 64, PLAIN.embedding_key
    cache.put_many(key, [CachedOutcome(sha, None, None, 2, "multiple_faces", "2 faces")])
    assert cache.get_many([sha], key)[sha].error_code == "multiple_faces"
    cache.put_many(key, [], replace=[sha])
    assert cache.get_many([sha], key) == {}


def test_face_and_embedding_dicts_name_the_detector() -> None:
    embedding = _embedding(CASCADE, "dlib_cnn")
    assert embedding.detector == "dlib_cnn"
    data = embedding.to_dict()
    assert data["detector"] == "dlib_cnn" and data["face"]["detector"] == "dlib_cnn"
    assert data["embedding_key"] == CASCADE.embedding_key and "vector" not in data
    assert Face.from_dict(embedding.face.to_dict()) == embedding.face


def test_mirror_averaging_is_part_of_the_key_the_name_and_the_record() -> None:
    mirrored = replace(CASCADE, mirror_average=True)
    assert mirrored.embedding_key not in {PLAIN.embedding_key, CASCADE.embedding_key}
    assert replace(PLAIN, mirror_average=True).embedding_key != PLAIN.embedding_key
    assert mirrored.name == "Dlib/dlib>dlib_cnn>mtcnn/dlib_5pt+mirror"
    assert mirrored.to_dict()["mirror_average"] is True
    assert ModelConfig.from_dict(mirrored.to_dict()) == mirrored


def _faces(*boxes: tuple[int, int, int, int]) -> list[Face]:
    faces = [Face(x, y, w, h, 0.9, "dlib") for x, y, w, h in boxes]
    return sorted(faces, key=lambda f: f.area, reverse=True)


def test_central_policy_embeds_the_face_nearest_the_centre_largest_the_biggest() -> None:
    from core._deepface import FacePipeline

    # a 250 x 250 photo cropped around its subject (76, 86, 90, 91), with a larger bystander at the edge
    faces = _faces((76, 86, 90, 91), (127, 32, 109, 109))
    assert FacePipeline._choose(faces, "largest", (250, 250, 3)) == Face(127, 32, 109, 109, 0.9, "dlib")
    assert FacePipeline._choose(faces, "central", (250, 250, 3)) == Face(76, 86, 90, 91, 0.9, "dlib")
    one = _faces((0, 0, 40, 40))
    assert FacePipeline._choose(one, "central", (250, 250, 3)) == one[0]  # one face: that face, wherever it is


class _TwoFacePipeline:
    """Stands in for the models: every image shows two faces; the vector says which one was embedded."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, rgb: np.ndarray, policy: str) -> tuple[np.ndarray, Face, int]:
        from core._deepface import FacePipeline

        self.calls += 1
        faces = _faces((0, 0, 60, 60), (rgb.shape[1] // 2 - 10, rgb.shape[0] // 2 - 10, 20, 20))
        face = FacePipeline._choose(faces, policy, rgb.shape)  # type: ignore[arg-type]
        vector = np.zeros(128, dtype=np.float32)
        vector[0 if face.w == 60 else 1] = 1.0
        return vector, face, len(faces)


def _engine(policy: str, pipeline: _TwoFacePipeline):
    from core.engine import Engine

    engine = Engine(PLAIN, face_policy=policy)  # type: ignore[arg-type]
    engine._pipeline = pipeline  # type: ignore[assignment]
    return engine


def test_each_face_policy_has_its_own_cache_entries(tmp_path) -> None:
    from PIL import Image as PILImage

    path = tmp_path / "two.png"
    PILImage.new("RGB", (100, 100), "gray").save(path)
    cache = EvaluationCache(Database(tmp_path / "c.duckdb"), retention_days=30)  # it keeps embeddings
    pipeline = _TwoFacePipeline()
    largest, central, refuse = (_engine(p, pipeline) for p in ("largest", "central", "refuse"))
    assert largest.cache_key == PLAIN.embedding_key
    assert len({largest.cache_key, central.cache_key, refuse.cache_key}) == 3

    refused = refuse.embed_batch([str(path)], cache=cache, workers=1)
    assert [f.code for f in refused.failures] == ["multiple_faces"]
    big = largest.embed_batch([str(path)], cache=cache, workers=1).embeddings[str(path)]
    small = central.embed_batch([str(path)], cache=cache, workers=1).embeddings[str(path)]
    assert (big.face.w, small.face.w) == (60, 20) and float(big.vector @ small.vector) == 0.0
    assert pipeline.calls == 3
    again = [e.embed_batch([str(path)], cache=cache, workers=1) for e in (largest, central, refuse)]
    assert pipeline.calls == 3 and [b.from_cache for b in again] == [1, 1, 1]
    assert again[0].embeddings[str(path)].face.w == 60 and again[1].embeddings[str(path)].face.w == 20


def test_a_refusal_cached_under_the_embedding_key_by_an_older_version_does_not_stop_largest(tmp_path) -> None:
    from PIL import Image as PILImage

    from core.image import sha256_file

    path = tmp_path / "two.png"
    PILImage.new("RGB", (100, 100), "gray").save(path)
    cache = EvaluationCache(Database(tmp_path / "c.duckdb"), retention_days=30)
    sha = sha256_file(path)
    cache.put_many(PLAIN.embedding_key, [CachedOutcome(sha, None, None, 2, "multiple_faces", "2 faces")])
    pipeline = _TwoFacePipeline()
    batch = _engine("largest", pipeline).embed_batch([str(path)], cache=cache, workers=1)
    assert batch.failures == () and batch.embeddings[str(path)].face.w == 60
    hit = cache.get_many([sha], PLAIN.embedding_key)[sha]
    assert hit.error_code is None and hit.face is not None and hit.face.w == 60  # the stale refusal was replaced


def test_an_unknown_face_policy_is_refused() -> None:
    from core.engine import Engine
    from core.errors import BadInput

    with pytest.raises(BadInput, match="unknown face policy 'center'"):
        Engine(PLAIN, face_policy="center")  # type: ignore[arg-type]


def test_with_face_policy_embeds_under_the_new_policy_with_the_same_models(tmp_path) -> None:
    from PIL import Image as PILImage

    from core.errors import BadInput

    path = tmp_path / "two.png"
    PILImage.new("RGB", (100, 100), "gray").save(path)
    pipeline = _TwoFacePipeline()
    largest = _engine("largest", pipeline)
    central = largest.with_face_policy("central")
    assert largest.with_face_policy("largest") is largest and largest.face_policy == "largest"
    assert central.face_policy == "central" and central.pipeline is pipeline and central.config == largest.config
    assert central.cache_key != largest.cache_key
    assert central.embed(str(path)).face.w == 20 and largest.embed(str(path)).face.w == 60
    with pytest.raises(BadInput, match=r"unknown face policy 'middle'; choose one of \['largest', 'central', 'refuse'\]"):
        largest.with_face_policy("middle")  # type: ignore[arg-type]
