"""The detector cascade on real faces: the fallback finds what HOG misses, says so, and never invents a face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from core import Database, Engine, GalleryStore, default_config
from core.cache import EvaluationCache
from core.errors import ConfigMismatch, NoFaceDetected
from core.gallery import EnrollItem

pytestmark = [pytest.mark.model, pytest.mark.data, pytest.mark.slow]

ANGLES = (30, 35, 40)  # dlib's HOG detector covers roughly +-30 degrees of roll; its CNN detector more


@pytest.fixture(scope="module")
def hog_only() -> Engine:
    return Engine(default_config("Dlib", "dlib", "dlib_5pt", fallback_detectors=()))


@pytest.fixture(scope="module")
def cascade() -> Engine:
    return Engine(default_config("Dlib", "dlib", "dlib_5pt", fallback_detectors=("dlib_cnn",)))


def _rotated(path: Path, angle: int) -> np.ndarray:
    image = PILImage.open(path).convert("RGB")
    return np.asarray(image.rotate(angle, resample=PILImage.Resampling.BILINEAR, fillcolor=(255, 255, 255)))


@pytest.fixture(scope="module")
def hog_miss(hog_only: Engine, congress_pairs) -> tuple[str, Path, np.ndarray]:
    """A real portrait rotated until HOG finds no face in it (searched at test time, in a fixed order)."""
    for pid, _, photo in congress_pairs[:40]:
        for angle in ANGLES:
            pixels = _rotated(photo, angle)
            if not hog_only.detect(pixels):
                return pid, photo, pixels
    pytest.fail(f"HOG found a face in every one of 40 portraits rotated by {ANGLES} degrees")


def test_only_the_fallback_finds_the_face_and_the_result_says_so(hog_only, cascade, hog_miss, congress_pairs) -> None:
    pid, photo, pixels = hog_miss
    with pytest.raises(NoFaceDetected):
        hog_only.embed(pixels)
    embedding = cascade.embed(pixels)
    assert embedding.face.detector == "dlib_cnn" and embedding.detector == "dlib_cnn"
    assert embedding.to_dict()["detector"] == "dlib_cnn" and embedding.to_dict()["face"]["detector"] == "dlib_cnn"
    assert embedding.config.fallback_detectors == ("dlib_cnn",)
    # it is that member's face: nearer to the member's upright photo than to ten other members' photos
    upright = cascade.embed(photo)
    assert upright.face.detector == "dlib"  # HOG found the upright face: the fallback did not run
    others = [cascade.embed(p) for other, _, p in congress_pairs[40:50] if other != pid]
    own = float(embedding.vector @ upright.vector)
    assert all(own > float(embedding.vector @ o.vector) for o in others)
    result = cascade.verify(pixels, photo, threshold=2.0)
    assert result.to_dict()["detectors"] == ["dlib_cnn", "dlib"]


def test_a_batch_records_which_detector_found_each_face(cascade, hog_miss, tmp_path: Path) -> None:
    _, photo, pixels = hog_miss
    rotated = tmp_path / "rotated.png"
    PILImage.fromarray(pixels).save(rotated)
    cache = EvaluationCache(Database(tmp_path / "cache.duckdb"), retention_days=30)  # the cache that keeps embeddings
    first = cascade.embed_batch([str(rotated), str(photo)], cache=cache, workers=1)
    again = cascade.embed_batch([str(rotated), str(photo)], cache=cache, workers=1)
    for batch in (first, again):
        assert [batch.embeddings[str(p)].face.detector for p in (rotated, photo)] == ["dlib_cnn", "dlib"]
    assert first.computed == 2 and again.from_cache == 2 and again.computed == 0


def test_no_face_anywhere_is_still_no_face_detected(cascade) -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(NoFaceDetected):
        cascade.embed(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    with pytest.raises(NoFaceDetected):
        cascade.embed(np.full((200, 200, 3), 127, dtype=np.uint8))
    assert cascade.detect(np.full((200, 200, 3), 127, dtype=np.uint8)) == []


def test_with_and_without_the_cascade_share_no_gallery_and_no_cache(hog_only, cascade, congress_pairs, tmp_path) -> None:
    assert hog_only.config.embedding_key != cascade.config.embedding_key
    store = GalleryStore(Database(tmp_path / "g.duckdb"))
    cache = EvaluationCache(store.db, retention_days=30)
    photo = congress_pairs[0][1]
    with_cascade = cascade.embed_batch([str(photo)], cache=cache, workers=1)
    without = hog_only.embed_batch([str(photo)], cache=cache, workers=1)
    assert with_cascade.computed == 1 and without.computed == 1 and without.from_cache == 0
    store.create("plain", hog_only.config)
    with pytest.raises(ConfigMismatch):
        store.enroll("plain", [EnrollItem("m", with_cascade.embeddings[str(photo)], photo.name)])
