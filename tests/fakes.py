"""A fake face pipeline at the deepface seam, and images it understands.

The engine, the gallery store and the audit trail under test are the real ones;
only :class:`core._deepface.FacePipeline` (the one module that runs models) is
replaced. Images are real PNG files made by :func:`face_png`: the top-left 8x8
block encodes who is shown, the block beside it how this photo varies, and a
white image has no face. The fake embeds a face as a unit vector seeded by the
subject block plus a little noise seeded by the variant block, so two photos of
one subject are close (distance about 0.01) and of two subjects far (about 1).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from core.config import FacePolicy
from core.errors import MultipleFaces, NoFaceDetected
from core.results import Face

__all__ = ["FakePipeline", "blank_png", "face_png", "fake_vector"]

_SIZE = 32


def _block(text: str) -> np.ndarray:
    digest = hashlib.sha256(text.encode()).digest() * 8
    return np.frombuffer(digest[: 8 * 8 * 3], dtype=np.uint8).reshape(8, 8, 3) // 2  # darker than white


def face_png(subject: str, variant: int = 0, *, faces: int = 1) -> bytes:
    """A PNG showing ``subject`` (photo ``variant``); ``faces`` > 1 marks extra faces in the corner."""
    pixels = np.full((_SIZE, _SIZE, 3), 128, dtype=np.uint8)
    pixels[:8, :8] = _block(f"subject:{subject}")
    pixels[:8, 8:16] = _block(f"variant:{subject}:{variant}")
    pixels[-1, -1] = (min(faces, 255), 0, 0)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def blank_png() -> bytes:
    """A white PNG: no face."""
    buf = io.BytesIO()
    Image.fromarray(np.full((_SIZE, _SIZE, 3), 255, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def fake_vector(subject_block: np.ndarray, variant_block: np.ndarray, dims: int = 128) -> np.ndarray:
    """The fake embedding of a face: a unit vector near the subject's direction."""
    base = np.random.default_rng(int.from_bytes(hashlib.sha256(subject_block.tobytes()).digest()[:8], "big"))
    noise = np.random.default_rng(int.from_bytes(hashlib.sha256(variant_block.tobytes()).digest()[:8], "big"))
    vector = base.standard_normal(dims) + 0.1 * noise.standard_normal(dims)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class FakePipeline:
    """Stands in for :class:`core._deepface.FacePipeline` (same methods, no model)."""

    def __init__(self, dims: int = 128) -> None:
        self.dims = dims
        self.calls = 0

    def detect_first(self, rgb: np.ndarray) -> list[Face]:
        """The fake has one detector: :meth:`detect`."""
        return self.detect(rgb)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """One face per marked face (none on a white image)."""
        if rgb.shape[0] < 16 or rgb.shape[1] < 16 or int(rgb.min()) == 255:
            return []
        count = max(1, int(rgb[-1, -1, 0]))
        return [Face(0, 0, 16 - i, 16 - i, 0.99, "dlib") for i in range(min(count, 8))]

    def embed(self, rgb: np.ndarray, policy: FacePolicy = "largest") -> tuple[np.ndarray, Face, int]:
        """Embed the face (``NoFaceDetected`` on a white image, ``MultipleFaces`` under ``refuse``)."""
        self.calls += 1
        faces = self.detect(rgb)
        if not faces:
            raise NoFaceDetected("no face was found in the image")
        if len(faces) > 1 and policy == "refuse":
            raise MultipleFaces(f"{len(faces)} faces were found and the face policy is 'refuse'")
        return fake_vector(rgb[:8, :8], rgb[:8, 8:16], self.dims), faces[0], len(faces)
