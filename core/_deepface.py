"""The only module that imports deepface.

deepface is a capable toolbox with habits facetrail must not inherit. This
adapter builds deepface's model and detector objects directly (through
``deepface.modules.modeling``, never ``deepface.DeepFace``) and keeps:

- **its output quiet**: deepface's logger prints to stdout; its level is raised
  to ERROR before any model is built;
- **its warning filters out**: ``deepface/DeepFace.py`` calls
  ``warnings.filterwarnings("ignore")`` for the whole process at import time; we
  never import that module;
- **its downloads off**: every weight file is checked by
  :func:`core.models.check_available` before deepface is asked to build
  anything, and deepface's home is pointed at facetrail's model folder only
  while building;
- **its silent fallbacks out**: no face is :class:`NoFaceDetected`, never a
  whole-frame embedding (deepface's ``enforce_detection=False``), and several
  faces follow facetrail's explicit policy, never deepface's "closest pair".

Two alignments are offered (see :data:`core.config.ALIGNMENTS`):

``dlib_5pt``
    dlib's 5-point landmarks on the detected box and ``dlib.get_face_chip``
    (model input size, padding 0.25), then the model on the chip with
    detection skipped.
``deepface``
    deepface's own pipeline: its detector with eye-line alignment, crop,
    letterbox resize to the model input, then the model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from core import models as model_files
from core.config import FacePolicy
from core.errors import ModelUnavailable, MultipleFaces, NoFaceDetected
from core.results import Face

__all__ = ["FacePipeline", "library_versions"]

log = logging.getLogger(__name__)

_BUILD_LOCK = threading.Lock()
_NORMALIZATION = {"Dlib": "base", "Facenet": "Facenet"}


@functools.lru_cache(maxsize=32)
def library_versions(model: str, detector: str) -> tuple[tuple[str, str], ...]:
    """Versions of the libraries that compute an embedding for this model and detector."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    packages = ["deepface"]
    if model == "Dlib" or detector == "dlib":
        packages.append("dlib-bin")
    packages.append("opencv-contrib-python-headless")  # opencv resizes and pads in every pipeline
    if model == "Facenet" or detector == "mtcnn":
        packages.append("tensorflow")
    if detector == "mtcnn":
        packages.append("mtcnn")
    out = []
    for package in packages:
        try:
            out.append((package, version(package)))
        except PackageNotFoundError:
            out.append((package, "not-installed"))
    return tuple(sorted(out))


@contextlib.contextmanager
def _deepface_home() -> Iterator[None]:
    """Point deepface at facetrail's model folder while models are built."""
    previous = os.environ.get("DEEPFACE_HOME")
    os.environ["DEEPFACE_HOME"] = str(model_files.models_dir())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DEEPFACE_HOME", None)
        else:
            os.environ["DEEPFACE_HOME"] = previous


def _silence_deepface() -> None:
    from deepface.commons.logger import Logger  # noqa: PLC0415

    Logger().log_level = logging.ERROR


class FacePipeline:
    """Detection, alignment and embedding for one model x detector x alignment.

    Build once and reuse; building loads weights (hundreds of milliseconds).

    Raises
    ------
    ModelUnavailable
        When a weight file or package is missing (the message names the fix).
    """

    def __init__(self, model: str, detector: str, alignment: str) -> None:
        model_files.check_available(model, detector, alignment)
        self.model_name = model
        self.detector_name = detector
        self.alignment = alignment
        if model == "Facenet" or detector == "mtcnn":
            # TensorFlow's C++ logging goes to stderr at import; keep it to errors unless the user chose
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _BUILD_LOCK, _deepface_home():
            _silence_deepface()
            from deepface.modules import modeling  # noqa: PLC0415

            self._recognizer: Any = modeling.build_model(task="facial_recognition", model_name=model)
            self._detector: Any = modeling.build_model(task="face_detector", model_name=detector)
            self._shape_predictor: Any = None
            if alignment == "dlib_5pt":
                import dlib  # noqa: PLC0415

                self._dlib = dlib
                self._shape_predictor = dlib.shape_predictor(
                    str(model_files.weights_dir() / model_files.DLIB_LANDMARKS)
                )
        height, width = self._recognizer.input_shape
        self._input_size = (int(height), int(width))

    # detection -----------------------------------------------------------------

    def _regions(self, rgb: np.ndarray) -> list[Any]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return list(self._detector.detect_faces(bgr))

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Return every face the detector finds, largest first."""
        faces = [_face(region) for region in self._regions(rgb)]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    @staticmethod
    def _choose(faces: list[Face], policy: FacePolicy) -> Face:
        if not faces:
            raise NoFaceDetected("no face was found in the image")
        if len(faces) > 1 and policy == "refuse":
            raise MultipleFaces(f"{len(faces)} faces were found and the face policy is 'refuse'")
        return faces[0]

    # embedding -----------------------------------------------------------------

    def embed(self, rgb: np.ndarray, policy: FacePolicy = "largest") -> tuple[np.ndarray, Face, int]:
        """Detect, choose a face by ``policy``, align and embed it.

        Returns
        -------
        tuple
            ``(unit float32 vector, chosen face, number of faces detected)``.

        Raises
        ------
        NoFaceDetected
            No face in the image.
        MultipleFaces
            Several faces and ``policy == "refuse"``.
        """
        if self.alignment == "dlib_5pt":
            faces = self.detect(rgb)
            face = self._choose(faces, policy)
            vector = self._embed_dlib_chip(rgb, face)
            return vector, face, len(faces)
        return self._embed_deepface_aligned(rgb, policy)

    def embed_face(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """Embed a face that :meth:`detect` already found in ``rgb`` (detect once, embed the chosen faces).

        Under ``dlib_5pt`` the box is used as detected: landmarks, chip, model. Under
        ``deepface`` alignment deepface needs its detector's eye points, which a
        :class:`Face` does not carry, so deepface's pipeline runs again on the pixels
        around the box (pass a crop with a margin) and embeds the largest face there.

        Raises
        ------
        NoFaceDetected
            ``deepface`` alignment only: the detector found no face around the box.
        """
        if self.alignment == "dlib_5pt":
            return self._embed_dlib_chip(rgb, face)
        vector, _, _ = self._embed_deepface_aligned(rgb, "largest")
        return vector

    def _embed_dlib_chip(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        dlib = self._dlib
        rect = dlib.rectangle(face.x, face.y, face.x + face.w, face.y + face.h)
        shape = self._shape_predictor(rgb, rect)
        size = self._input_size[0]
        chip = dlib.get_face_chip(rgb, shape, size=size, padding=0.25)
        chip_bgr = np.ascontiguousarray(np.asarray(chip, dtype=np.uint8)[:, :, ::-1])
        return self._forward(chip_bgr.astype(np.float32)[None, ...] / 255.0)

    def _embed_deepface_aligned(self, rgb: np.ndarray, policy: FacePolicy) -> tuple[np.ndarray, Face, int]:
        from deepface.modules import detection, preprocessing  # noqa: PLC0415

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with _BUILD_LOCK, _deepface_home():  # the environment is process-wide: change it under the lock
            detected = detection.detect_faces(detector_backend=self.detector_name, img=bgr, align=True)
        detected = [d for d in detected if d.img.shape[0] > 0 and d.img.shape[1] > 0]
        pairs = sorted(((_face(d.facial_area), d) for d in detected), key=lambda p: p[0].area, reverse=True)
        face = self._choose([p[0] for p in pairs], policy)
        crop = pairs[0][1].img.astype(np.float32)
        if crop.max() > 1.0:
            crop = crop / 255.0
        resized = preprocessing.resize_image(img=crop, target_size=self._input_size)
        return self._forward(resized), face, len(pairs)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a (1, H, W, 3) BGR batch scaled to [0, 1]; return a unit vector."""
        from deepface.modules import preprocessing  # noqa: PLC0415

        normalized = preprocessing.normalize_input(img=batch.copy(), normalization=_NORMALIZATION[self.model_name])
        raw = np.asarray(self._recognizer.forward(normalized), dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(raw))
        if not np.isfinite(norm) or norm == 0.0:
            raise ModelUnavailable(f"model {self.model_name} returned an empty embedding")
        return raw / norm


def _face(region: Any) -> Face:
    confidence = region.confidence if region.confidence is not None else 0.0
    return Face(
        x=int(max(0, region.x)),
        y=int(max(0, region.y)),
        w=int(region.w),
        h=int(region.h),
        confidence=float(confidence),
    )
