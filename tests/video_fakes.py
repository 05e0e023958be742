"""Footage a fake face pipeline understands, for fast tests of the audited video search (no model).

The engine, the tracker, the gallery store and the audit trail are the real ones; only
:class:`core._deepface.FacePipeline` is replaced by :class:`VideoFakePipeline`. In the
footage made here (:func:`write_footage`, rendered with OpenCV's writer through
``tests/core/footage.py``), a *face* is a bright textured square on a dark background,
and its colour says who it is (:data:`PALETTE`): the fake detects bright squares and
embeds a square as its colour's subject vector. Ground truth is the script of
:class:`Walk` s, not the engine.

The real-model tests (``tests/core/test_video_search.py``) render congress_small
portraits instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.config import ModelConfig
from core.errors import NoFaceDetected
from core.gallery import EnrollItem, GalleryStore
from core.results import Embedding, Face
from tests.core.footage import write_frames

__all__ = ["PALETTE", "VideoFakePipeline", "Walk", "enroll_fake", "subject_vector", "write_footage"]

#: Subject -> the colour of its face in the footage (far apart, so codecs cannot blur one into another).
PALETTE: dict[str, tuple[int, int, int]] = {
    "subject-alpha": (225, 45, 45),
    "subject-bravo": (45, 215, 60),
    "subject-charlie": (60, 80, 225),
    "subject-delta": (225, 205, 40),
    "stranger-echo": (210, 60, 210),  # never enrolled
}
_BACKGROUND = 35
_SIDE = 80


def subject_vector(subject: str, dims: int = 128) -> np.ndarray:
    """The fake embedding of every face of ``subject``: a unit vector seeded by its name."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(subject.encode()).digest()[:8], "big"))
    vector = rng.standard_normal(dims)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class VideoFakePipeline:
    """Stands in for :class:`core._deepface.FacePipeline` on footage made by :func:`write_footage`."""

    def __init__(self) -> None:
        self.detections = 0
        self.embeddings = 0

    def detect_first(self, rgb: np.ndarray) -> list[Face]:
        """The fake has one detector: :meth:`detect`."""
        return self.detect(rgb)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every bright, square-ish blob of at least 12 px a side is a face."""
        self.detections += 1
        mask = (rgb.max(axis=2) > 140).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        return [
            Face(int(x), int(y), int(w), int(h), 0.99, "dlib")
            for x, y, w, h, area in stats[1:]
            if w >= 12 and h >= 12 and area >= 0.6 * w * h and 0.5 <= w / h <= 2.0
        ]

    def embed(self, rgb: np.ndarray, policy: str = "largest") -> tuple[np.ndarray, Face, int]:
        """A still image's largest square, embedded as :meth:`embed_face` does (for image searches)."""
        faces = self.detect(rgb)
        if not faces:
            raise NoFaceDetected("no face was found in the image")
        largest = max(faces, key=lambda f: f.w * f.h)
        return self.embed_face(rgb, largest), largest, len(faces)

    def embed_face(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The vector of the palette colour nearest the box's median colour."""
        self.embeddings += 1
        box = rgb[max(0, face.y) : face.y + face.h, max(0, face.x) : face.x + face.w].reshape(-1, 3)
        if box.size == 0:
            raise NoFaceDetected("no face around the box")
        colour = np.median(box.astype(np.float32), axis=0)
        subject = min(PALETTE, key=lambda s: float(np.abs(np.asarray(PALETTE[s], np.float32) - colour).sum()))
        return subject_vector(subject)


@dataclass(frozen=True)
class Walk:
    """``subject`` in view from ``start_s`` to ``end_s`` (inclusive), moving from ``start_xy`` to ``end_xy``."""

    subject: str
    start_s: float
    end_s: float
    start_xy: tuple[int, int]
    end_xy: tuple[int, int]

    def at(self, t: float) -> tuple[int, int] | None:
        """Top-left corner of the face at ``t`` seconds, or ``None`` when out of view."""
        if not self.start_s <= t <= self.end_s:
            return None
        a = 0.0 if self.end_s == self.start_s else (t - self.start_s) / (self.end_s - self.start_s)
        return (int(round(self.start_xy[0] + a * (self.end_xy[0] - self.start_xy[0]))),
                int(round(self.start_xy[1] + a * (self.end_xy[1] - self.start_xy[1]))))


def _face(subject: str) -> np.ndarray:
    base = np.asarray(PALETTE[subject], np.int16)
    yy, xx = np.mgrid[0:_SIDE, 0:_SIDE]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 25, -25)[:, :, None]  # texture: sharpness for the tracker
    return np.clip(base + checker, 0, 255).astype(np.uint8)


def write_footage(path: Path, walks: Sequence[Walk], duration_s: float, *, size: tuple[int, int] = (320, 240),
                  fps: float = 10.0) -> None:
    """Render ``walks`` over a dark, slightly noisy background into ``path`` (codec by suffix)."""
    width, height = size
    rng = np.random.default_rng(0)
    frames = []
    for i in range(int(round(duration_s * fps))):
        t = i / fps
        frame = np.clip(_BACKGROUND + rng.normal(0, 4, (height, width, 3)), 0, 255).astype(np.uint8)
        for walk in walks:
            corner = walk.at(t)
            if corner is not None:
                x, y = corner
                frame[y : y + _SIDE, x : x + _SIDE] = _face(walk.subject)[: height - y, : width - x]
        frames.append(frame)
    write_frames(frames, path, fps)


def enroll_fake(store: GalleryStore, gallery: str, config: ModelConfig, subjects: Sequence[str]) -> None:
    """Create ``gallery`` under ``config`` and enrol one face per subject (its :func:`subject_vector`)."""
    store.create(gallery, config)
    items = []
    for subject in subjects:
        digest = hashlib.sha256(f"photo of {subject}".encode()).hexdigest()
        embedding = Embedding(subject_vector(subject), digest, Face(0, 0, _SIDE, _SIDE, 0.99, "dlib"), 1, config)
        items.append(EnrollItem(subject, embedding, f"{subject}.png"))
    store.enroll(gallery, items)
