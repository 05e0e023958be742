"""The model configuration every facetrail result carries.

A :class:`ModelConfig` names everything that decides what an embedding is and
what a decision means: the recognition model, the face detector and its
fallbacks (the detector cascade), the alignment, whether a face's embedding is
averaged with its mirror image's, the weights (by checksum), the library
versions, the metric and the decision threshold with its provenance. It is
frozen and hashable.

Two parts matter differently:

- :attr:`ModelConfig.embedding_key` hashes what makes two embeddings comparable
  (model, detector cascade, alignment, mirror averaging, weights, library versions). Galleries and the
  embedding cache are keyed by it: embeddings of different keys never mix.
- The threshold and its provenance decide matches, not embeddings; changing the
  threshold (say, after a calibration) leaves galleries valid.

Scores are on one scale: ``similarity`` is the cosine similarity of unit
vectors (bigger means more alike) and ``distance = 1 - similarity``. The
threshold is a cosine *distance*: a pair matches when ``distance <= threshold``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from core.errors import BadInput

__all__ = [
    "ALIGNMENTS",
    "CASCADE_ALIGNMENTS",
    "DETECTORS",
    "MODELS",
    "FACE_POLICIES",
    "FacePolicy",
    "ModelConfig",
    "ThresholdSource",
    "check_cascade",
    "check_threshold",
    "config_id",
]

#: Recognition models facetrail can run offline, with their embedding size.
MODELS: dict[str, int] = {"Dlib": 128, "Facenet": 128}

#: Face detectors that work without downloading anything at run time: ``dlib`` (dlib's HOG
#: detector), ``dlib_cnn`` (dlib's CNN detector, ``mmod_human_face_detector.dat``; ``dlib_5pt``
#: alignment only), ``opencv`` (Haar cascade) and ``mtcnn`` (needs TensorFlow).
DETECTORS: tuple[str, ...] = ("dlib", "dlib_cnn", "opencv", "mtcnn")

#: ``dlib_5pt``: dlib's 5-point landmarks and ``get_face_chip`` (150 px, padding 0.25);
#: ``deepface``: deepface's own eye-line rotation and crop.
ALIGNMENTS: tuple[str, ...] = ("dlib_5pt", "deepface")

#: Alignments that can follow a detector cascade (facetrail's own chip pipeline; deepface's
#: alignment runs deepface's detection, one backend).
CASCADE_ALIGNMENTS: tuple[str, ...] = ("dlib_5pt",)

#: Detectors that only facetrail's own chip pipeline runs (deepface has no backend for them).
_CHIP_ONLY_DETECTORS = frozenset({"dlib_cnn"})

#: What to do when an image shows several faces: embed the largest, embed the one nearest the
#: image centre (the subject of a photo cropped around its subject, as in LFW), or refuse.
FacePolicy = Literal["largest", "central", "refuse"]

#: The face policies, in the order the CLI lists them.
FACE_POLICIES: tuple[str, ...] = ("largest", "central", "refuse")


def check_threshold(value: float) -> float:
    """Return ``value`` as a float if it is a usable decision threshold (a cosine distance in [0, 2]).

    Raises
    ------
    BadInput
        Not a number, not finite (``nan``, ``inf``, ``1e309``), or outside [0, 2].
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise BadInput(f"threshold {value!r} is not a number") from err
    if not math.isfinite(number):
        raise BadInput(f"threshold {value!r} is not a finite number; a cosine distance lies in [0, 2]")
    if not 0.0 <= number <= 2.0:
        raise BadInput(f"threshold {number} is not a cosine distance in [0, 2]")
    return number


@dataclass(frozen=True)
class ThresholdSource:
    """Where a decision threshold comes from.

    Attributes
    ----------
    kind
        ``"calibrated"`` (measured by ``facetrail calibrate``), ``"user"`` (named
        by the caller) or ``"deepface_builtin"`` (deepface's hard-coded value,
        never measured by facetrail; shown as such wherever it is used).
    description
        One line a reader understands, e.g. ``"FMR=1e-3 on congress_small (2026-11-26)"``.
    target_fmr
        The false-match rate the calibration aimed at, if any.
    achieved_fmr, achieved_fnmr
        The rates measured at the threshold on the calibration data.
    dataset, dataset_fingerprint
        The calibration dataset's name and fingerprint.
    calibrated_at
        UTC time of the calibration, ISO 8601.
    per_group_fmr
        FMR per demographic group at this threshold, as ``(group, fmr)`` pairs.
    """

    kind: Literal["calibrated", "user", "deepface_builtin"]
    description: str
    target_fmr: float | None = None
    achieved_fmr: float | None = None
    achieved_fnmr: float | None = None
    dataset: str | None = None
    dataset_fingerprint: str | None = None
    calibrated_at: str | None = None
    per_group_fmr: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out["per_group_fmr"] = {group: fmr for group, fmr in self.per_group_fmr}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdSource:
        """Rebuild from :meth:`to_dict` output."""
        values = dict(data)
        values["per_group_fmr"] = tuple(sorted((values.get("per_group_fmr") or {}).items()))
        return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """One explicit, hashable recognition configuration.

    Attributes
    ----------
    model
        Recognition model name, one of :data:`MODELS`.
    detector
        First face detector, one of :data:`DETECTORS`.
    alignment
        Face alignment, one of :data:`ALIGNMENTS`.
    metric
        Always ``"cosine"``: embeddings are unit vectors compared by cosine.
    threshold
        Decision threshold as a cosine distance (match when ``distance <= threshold``).
    threshold_source
        Provenance of :attr:`threshold`.
    weights_sha256
        SHA-256 of the weight files, as ``(file name, hex digest)`` pairs.
    versions
        Versions of the libraries that compute the embedding, as ``(package, version)`` pairs.
    fallback_detectors
        The rest of the detector cascade, in order: each runs on an image only when
        every detector before it found no face (empty: :attr:`detector` alone). Which
        detector found a face is recorded on every :class:`~core.results.Face`.
    mirror_average
        Embed the aligned face and its mirror image and use the normalised mean of
        the two embeddings (twice the recognition cost; measured in benchmarks/bench_variants.py).
    """

    model: str
    detector: str
    alignment: str
    threshold: float
    threshold_source: ThresholdSource
    metric: Literal["cosine"] = "cosine"
    weights_sha256: tuple[tuple[str, str], ...] = ()
    versions: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    fallback_detectors: tuple[str, ...] = ()
    mirror_average: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; facetrail runs {sorted(MODELS)}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"unknown alignment {self.alignment!r}; choose one of {list(ALIGNMENTS)}")
        check_cascade(self.detector, self.fallback_detectors, self.alignment)
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 2.0):
            raise ValueError(f"threshold {self.threshold} is not a cosine distance in [0, 2]")

    @property
    def detectors(self) -> tuple[str, ...]:
        """The detector cascade in the order it runs: :attr:`detector`, then the fallbacks."""
        return (self.detector, *self.fallback_detectors)

    @property
    def dimensions(self) -> int:
        """Length of this model's embeddings."""
        return MODELS[self.model]

    @property
    def name(self) -> str:
        """Short human-readable name, e.g. ``Dlib/dlib/dlib_5pt`` or, with a cascade, ``Dlib/dlib>dlib_cnn/dlib_5pt``."""
        return config_id(self.model, self.detectors, self.alignment, self.mirror_average)

    @cached_property
    def embedding_key(self) -> str:
        """Hash of everything that makes two embeddings comparable (not the threshold).

        The fallback detectors and mirror averaging enter the hash only when they are
        used, so a configuration with neither keeps the key it had before they existed
        (its embeddings are the same).
        """
        payload: dict[str, Any] = {
            "model": self.model,
            "detector": self.detector,
            "alignment": self.alignment,
            "weights": sorted(self.weights_sha256),
            "versions": sorted(self.versions),
        }
        if self.fallback_detectors:
            payload["fallback_detectors"] = list(self.fallback_detectors)  # order matters: it is the cascade
        if self.mirror_average:
            payload["mirror_average"] = True
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()[:24]

    def with_threshold(self, threshold: float, source: ThresholdSource) -> ModelConfig:
        """Return a copy deciding with another threshold (the embeddings stay comparable)."""
        return replace(self, threshold=float(threshold), threshold_source=source)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what audit records and results store)."""
        return {
            "model": self.model,
            "detector": self.detector,
            "fallback_detectors": list(self.fallback_detectors),
            "alignment": self.alignment,
            "mirror_average": self.mirror_average,
            "metric": self.metric,
            "threshold": self.threshold,
            "similarity_threshold": round(1.0 - self.threshold, 12),
            "threshold_source": self.threshold_source.to_dict(),
            "embedding_key": self.embedding_key,
            "weights_sha256": dict(self.weights_sha256),
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            model=data["model"],
            detector=data["detector"],
            alignment=data["alignment"],
            metric=data.get("metric", "cosine"),
            threshold=float(data["threshold"]),
            threshold_source=ThresholdSource.from_dict(data["threshold_source"]),
            weights_sha256=tuple(sorted(data.get("weights_sha256", {}).items())),
            versions=tuple(sorted(data.get("versions", {}).items())),
            fallback_detectors=tuple(data.get("fallback_detectors") or ()),
            mirror_average=bool(data.get("mirror_average", False)),
        )


def config_id(model: str, detectors: tuple[str, ...], alignment: str, mirror_average: bool = False) -> str:
    """Readable id of a configuration: ``model/detector[>fallback...]/alignment[+mirror]``.

    It names shipped calibrations (``core/calibrations.json``) and :attr:`ModelConfig.name`.
    """
    return f"{model}/{'>'.join(detectors)}/{alignment}{'+mirror' if mirror_average else ''}"


def check_cascade(detector: str, fallback_detectors: tuple[str, ...], alignment: str) -> None:
    """Refuse a detector cascade facetrail cannot run.

    Raises
    ------
    ValueError
        An unknown or repeated detector, a cascade with deepface's alignment, or
        ``dlib_cnn`` with deepface's alignment.
    """
    cascade = (detector, *fallback_detectors)
    for name in cascade:
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}; facetrail runs {list(DETECTORS)}")
    if len(set(cascade)) != len(cascade):
        raise ValueError(f"detector cascade {list(cascade)} names a detector twice")
    if fallback_detectors and alignment not in CASCADE_ALIGNMENTS:
        raise ValueError(
            f"fallback detectors need alignment {' or '.join(CASCADE_ALIGNMENTS)}; "
            f"alignment {alignment!r} runs deepface's detection with one detector"
        )
    if alignment not in CASCADE_ALIGNMENTS and detector in _CHIP_ONLY_DETECTORS:
        raise ValueError(f"detector {detector!r} needs alignment {' or '.join(CASCADE_ALIGNMENTS)}")
