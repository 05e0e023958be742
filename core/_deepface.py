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
    detection skipped. The Dlib model is dlib's own ResNet, called with the
    RGB uint8 chip exactly as ``dlib.face_recognition_model_v1`` expects.
``deepface``
    deepface's own pipeline: its detector with eye-line alignment, crop,
    letterbox resize to the model input, then the model.

With ``dlib_5pt`` the detectors form a **cascade** (see
:attr:`core.config.ModelConfig.fallback_detectors`): the first detector runs on
every image, the next one only where every detector before it found no face.
Fallback detectors are built on first use, so an image set the first detector
handles never pays for loading them. ``dlib_cnn`` is dlib's CNN face detector,
which deepface does not offer; it is run here directly.

With mirror averaging, the aligned face and its left-right mirror image are
embedded and the normalised mean of the two vectors is the embedding.
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
from core.config import FacePolicy, check_cascade
from core.errors import ModelUnavailable, MultipleFaces, NoFaceDetected
from core.results import Face

__all__ = ["FacePipeline", "library_versions"]

log = logging.getLogger(__name__)

_BUILD_LOCK = threading.Lock()
_NORMALIZATION = {"Dlib": "base", "Facenet": "Facenet"}


#: dlib's CNN detector upsamples an image once (finding faces down to about 40 px) when the
#: image has at most this many pixels; larger images are scanned as they are (their faces are
#: larger, and an upsampled 12-megapixel frame would cost seconds and gigabytes).
CNN_UPSAMPLE_MAX_PIXELS = 2_000_000


@functools.lru_cache(maxsize=32)
def library_versions(
    model: str, detector: str, fallback_detectors: tuple[str, ...] = ()
) -> tuple[tuple[str, str], ...]:
    """Versions of the libraries that compute an embedding for this model and detector cascade."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    cascade = (detector, *fallback_detectors)
    packages = ["deepface"]
    if model == "Dlib" or "dlib" in cascade or "dlib_cnn" in cascade:
        packages.append("dlib-bin")
    packages.append("opencv-contrib-python-headless")  # opencv resizes and pads in every pipeline
    if model == "Facenet" or "mtcnn" in cascade:
        packages.append("tensorflow")
    if "mtcnn" in cascade:
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


class _DeepfaceDetector:
    """One of deepface's detector backends (``dlib`` HOG, ``opencv``, ``mtcnn``)."""

    def __init__(self, name: str) -> None:
        from deepface.modules import modeling  # noqa: PLC0415

        self.name = name
        self._model: Any = modeling.build_model(task="face_detector", model_name=name)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return [_face(region, self.name) for region in self._model.detect_faces(bgr)]


class _DlibCnnDetector:
    """dlib's CNN face detector (``mmod_human_face_detector.dat``), run on the RGB image."""

    name = "dlib_cnn"

    def __init__(self) -> None:
        import dlib  # noqa: PLC0415

        self._model: Any = dlib.cnn_face_detection_model_v1(
            str(model_files.weights_dir() / model_files.DLIB_CNN_DETECTOR)
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        upsample = 1 if height * width <= CNN_UPSAMPLE_MAX_PIXELS else 0
        faces = []
        for found in self._model(rgb, upsample):
            rect = found.rect
            x, y = max(0, rect.left()), max(0, rect.top())
            w, h = min(rect.right(), width) - x, min(rect.bottom(), height) - y
            if w > 0 and h > 0:
                # mmod scores are margins (about 0..2 for faces); clipped to 0..1 like deepface's HOG scores
                faces.append(Face(x, y, w, h, float(min(max(found.confidence, 0.0), 1.0)), self.name))
        return faces


def _build_detector(name: str) -> _DeepfaceDetector | _DlibCnnDetector:
    with _BUILD_LOCK, _deepface_home():
        _silence_deepface()
        if name == "dlib_cnn":
            return _DlibCnnDetector()
        return _DeepfaceDetector(name)


class FacePipeline:
    """Detection (a detector cascade), alignment and embedding for one configuration.

    Build once and reuse; building loads weights (hundreds of milliseconds).

    Parameters
    ----------
    model, detector, alignment
        As in :class:`core.config.ModelConfig`.
    fallback_detectors
        Detectors tried in order on an image where every detector before them found no face.
    mirror_average
        Average the embeddings of the aligned face and of its mirror image.

    Raises
    ------
    ModelUnavailable
        When a weight file or package is missing (the message names the fix).
    ValueError
        An invalid cascade (see :func:`core.config.check_cascade`).
    """

    def __init__(
        self,
        model: str,
        detector: str,
        alignment: str,
        fallback_detectors: tuple[str, ...] = (),
        *,
        mirror_average: bool = False,
    ) -> None:
        check_cascade(detector, fallback_detectors, alignment)
        model_files.check_available(model, detector, alignment, fallback_detectors)
        self.model_name = model
        self.detector_name = detector
        self.fallback_detectors = tuple(fallback_detectors)
        self.alignment = alignment
        self.mirror_average = mirror_average
        cascade = (detector, *fallback_detectors)
        if model == "Facenet" or "mtcnn" in cascade:
            # TensorFlow's C++ logging goes to stderr at import; keep it to errors unless the user chose
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _BUILD_LOCK, _deepface_home():
            _silence_deepface()
            from deepface.modules import modeling  # noqa: PLC0415

            self._recognizer: Any = modeling.build_model(task="facial_recognition", model_name=model)
            self._shape_predictor: Any = None
            self._dlib_net: Any = None
            if alignment == "dlib_5pt":
                import dlib  # noqa: PLC0415

                self._dlib = dlib
                self._shape_predictor = dlib.shape_predictor(
                    str(model_files.weights_dir() / model_files.DLIB_LANDMARKS)
                )
                if model == "Dlib":
                    # dlib's own ResNet, given RGB uint8 chips as its documentation asks
                    self._dlib_net = dlib.face_recognition_model_v1(
                        str(model_files.weights_dir() / model_files.DLIB_RECOGNITION)
                    )
        self._detectors: dict[str, _DeepfaceDetector | _DlibCnnDetector] = {}
        self._detectors_lock = threading.Lock()
        self._detector_for(detector)  # the first detector is loaded now; fallbacks on first use
        height, width = self._recognizer.input_shape
        self._input_size = (int(height), int(width))

    @property
    def detectors(self) -> tuple[str, ...]:
        """The cascade in the order it runs."""
        return (self.detector_name, *self.fallback_detectors)

    # detection -----------------------------------------------------------------

    def _detector_for(self, name: str) -> _DeepfaceDetector | _DlibCnnDetector:
        with self._detectors_lock:
            built = self._detectors.get(name)
            if built is None:
                built = _build_detector(name)
                self._detectors[name] = built
            return built

    def detect_first(self, rgb: np.ndarray) -> list[Face]:
        """Return the faces the cascade's first detector finds, largest first (no fallback).

        For video: a face the first detector misses in one frame is found in another, and
        a fallback run on every frame without a face would cost seconds per frame.
        """
        return sorted(self._detector_for(self.detector_name).detect(rgb), key=lambda f: f.area, reverse=True)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Return the faces found by the first detector of the cascade that finds any, largest first.

        Each :class:`Face` names the detector that found it. Empty when every detector found none.
        """
        for name in self.detectors:
            faces = self._detector_for(name).detect(rgb)
            if faces:
                return sorted(faces, key=lambda f: f.area, reverse=True)
        return []

    @staticmethod
    def _choose(faces: list[Face], policy: FacePolicy, shape: tuple[int, ...]) -> Face:
        """Pick the face to embed from ``faces`` (largest first) of an image of ``shape``."""
        if not faces:
            raise NoFaceDetected("no face was found in the image")
        if len(faces) > 1 and policy == "refuse":
            raise MultipleFaces(f"{len(faces)} faces were found and the face policy is 'refuse'")
        if policy == "central":
            cy, cx = shape[0] / 2.0, shape[1] / 2.0
            # min() keeps the first of equals: among faces equally near the centre, the largest
            return min(faces, key=lambda f: (f.x + f.w / 2.0 - cx) ** 2 + (f.y + f.h / 2.0 - cy) ** 2)
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
            No face in the image (no detector of the cascade found one).
        MultipleFaces
            Several faces and ``policy == "refuse"``.
        """
        if self.alignment == "dlib_5pt":
            faces = self.detect(rgb)
            face = self._choose(faces, policy, rgb.shape)
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
        chip = np.ascontiguousarray(np.asarray(dlib.get_face_chip(rgb, shape, size=size, padding=0.25), dtype=np.uint8))
        if self._dlib_net is None:
            chip_bgr = np.ascontiguousarray(chip[:, :, ::-1])
            return self._forward(chip_bgr.astype(np.float32)[None, ...] / 255.0)
        if not self.mirror_average:
            return _unit(np.asarray(self._dlib_net.compute_face_descriptor(chip), dtype=np.float32), self.model_name)
        mirrored = np.ascontiguousarray(chip[:, ::-1])
        pair = self._dlib_net.compute_face_descriptor([chip, mirrored])
        vectors = [_unit(np.asarray(v, dtype=np.float32), self.model_name) for v in pair]
        return _unit(vectors[0] + vectors[1], self.model_name)

    def _embed_deepface_aligned(self, rgb: np.ndarray, policy: FacePolicy) -> tuple[np.ndarray, Face, int]:
        from deepface.modules import detection, preprocessing  # noqa: PLC0415

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with _BUILD_LOCK, _deepface_home():  # the environment is process-wide: change it under the lock
            detected = detection.detect_faces(detector_backend=self.detector_name, img=bgr, align=True)
        detected = [d for d in detected if d.img.shape[0] > 0 and d.img.shape[1] > 0]
        pairs = sorted(
            ((_face(d.facial_area, self.detector_name), d) for d in detected), key=lambda p: p[0].area, reverse=True
        )
        face = self._choose([p[0] for p in pairs], policy, rgb.shape)
        crop = next(d for f, d in pairs if f is face).img.astype(np.float32)
        if crop.max() > 1.0:
            crop = crop / 255.0
        resized = preprocessing.resize_image(img=crop, target_size=self._input_size)
        return self._forward(resized), face, len(pairs)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a (1, H, W, 3) BGR batch scaled to [0, 1] (and its mirror image); return a unit vector."""
        vector = self._forward_one(batch)
        if not self.mirror_average:
            return vector
        return _unit(vector + self._forward_one(np.ascontiguousarray(batch[:, :, ::-1, :])), self.model_name)

    def _forward_one(self, batch: np.ndarray) -> np.ndarray:
        from deepface.modules import preprocessing  # noqa: PLC0415

        normalized = preprocessing.normalize_input(img=batch.copy(), normalization=_NORMALIZATION[self.model_name])
        raw = np.asarray(self._recognizer.forward(normalized), dtype=np.float32).reshape(-1)
        return _unit(raw, self.model_name)


def _unit(raw: np.ndarray, model: str) -> np.ndarray:
    vector = np.asarray(raw, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ModelUnavailable(f"model {model} returned an empty embedding")
    return vector / norm


def _face(region: Any, detector: str) -> Face:
    confidence = region.confidence if region.confidence is not None else 0.0
    return Face(
        x=int(max(0, region.x)),
        y=int(max(0, region.y)),
        w=int(region.w),
        h=int(region.h),
        confidence=float(confidence),
        detector=detector,
    )
