"""Typed, frozen results of the engine. Every result carries its :class:`ModelConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.config import ModelConfig

__all__ = [
    "Face",
    "Embedding",
    "Candidate",
    "GalleryRef",
    "VerifyResult",
    "SearchResult",
    "Failure",
    "BatchResult",
    "VideoSampling",
    "VideoTrack",
    "VideoSearchResult",
]


@dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes
    ----------
    x, y, w, h
        Bounding box in pixels of the (EXIF-rotated) image.
    confidence
        The detector's score clipped to 0..1 (deepface's convention; scales differ between detectors).
    detector
        The detector of the cascade that found the face (one of :data:`core.config.DETECTORS`).
    """

    x: int
    y: int
    w: int
    h: int
    confidence: float
    detector: str

    @property
    def area(self) -> int:
        """Box area in pixels."""
        return self.w * self.h

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "x": self.x,
            "y": self.y,
            "w": self.w,
            "h": self.h,
            "confidence": self.confidence,
            "detector": self.detector,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Face:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        KeyError
            A field is missing (e.g. ``detector`` in a record written before faces named their detector).
        """
        return cls(
            x=int(data["x"]),
            y=int(data["y"]),
            w=int(data["w"]),
            h=int(data["h"]),
            confidence=float(data["confidence"]),
            detector=str(data["detector"]),
        )


@dataclass(frozen=True, eq=False)
class Embedding:
    """The embedding of one face of one image.

    Attributes
    ----------
    vector
        Unit-length float32 vector.
    image_sha256
        Identity of the source image.
    face
        The face that was embedded.
    faces_detected
        How many faces the detector found in the image (the policy chose one).
    config
        The configuration that produced it.
    """

    vector: np.ndarray
    image_sha256: str
    face: Face
    faces_detected: int
    config: ModelConfig

    @property
    def detector(self) -> str:
        """The detector of the cascade that found the embedded face."""
        return self.face.detector

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the face (with its detector) and the configuration, without the vector."""
        return {
            "image_sha256": self.image_sha256,
            "face": self.face.to_dict(),
            "detector": self.face.detector,
            "faces_detected": self.faces_detected,
            "embedding_key": self.config.embedding_key,
            "config": self.config.to_dict(),
        }


@dataclass(frozen=True)
class Candidate:
    """One ranked gallery face returned by a search."""

    subject_id: str
    face_id: str
    distance: float
    similarity: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "subject_id": self.subject_id,
            "face_id": self.face_id,
            "distance": self.distance,
            "similarity": self.similarity,
            "rank": self.rank,
        }


@dataclass(frozen=True)
class GalleryRef:
    """A gallery as it was when a search ran: name, fingerprint and size."""

    name: str
    fingerprint: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"name": self.name, "fingerprint": self.fingerprint, "size": self.size}


@dataclass(frozen=True, eq=False)
class VerifyResult:
    """A 1:1 comparison of two images' faces."""

    distance: float
    similarity: float
    threshold: float
    verified: bool
    a: Embedding
    b: Embedding
    config: ModelConfig

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``facetrail verify --json`` shape)."""
        return {
            "distance": self.distance,
            "similarity": self.similarity,
            "threshold": self.threshold,
            "similarity_threshold": round(1.0 - self.threshold, 12),
            "verified": self.verified,
            "model": self.config.model,
            "faces_detected": [self.a.faces_detected, self.b.faces_detected],
            "detectors": [self.a.face.detector, self.b.face.detector],
            "images_sha256": [self.a.image_sha256, self.b.image_sha256],
            "threshold_source": self.config.threshold_source.to_dict(),
            "config": self.config.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class SearchResult:
    """A 1:N search of one probe against one gallery.

    ``detector`` is the detector of the cascade that found the probe's face.
    """

    image_sha256: str
    faces_detected: int
    detector: str
    candidates: tuple[Candidate, ...]
    gallery: GalleryRef
    threshold: float | None
    top_k: int
    config: ModelConfig
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one line of ``facetrail search --json``, without ``image``)."""
        return {
            "image_sha256": self.image_sha256,
            "faces_detected": self.faces_detected,
            "detector": self.detector,
            "candidates": [c.to_dict() for c in self.candidates],
            "gallery": self.gallery.to_dict(),
            "threshold": self.threshold,
            "top_k": self.top_k,
            "exact": self.exact,
            "threshold_source": self.config.threshold_source.to_dict(),
            "model": self.config.model,
        }


@dataclass(frozen=True)
class Failure:
    """One image a batch could not use, and why."""

    image: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"image": self.image, "error": self.message, "code": self.code}


@dataclass(frozen=True, eq=False)
class BatchResult:
    """Embeddings of a batch, keyed by the image path as given, and the failures."""

    embeddings: dict[str, Embedding]
    failures: tuple[Failure, ...]
    computed: int = 0
    from_cache: int = 0
    hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoSampling:
    """How a video was sampled and tracked (what an audit record calls "sampling").

    Attributes
    ----------
    fps
        Frames sampled per second of presentation time.
    min_face
        Smallest face side, in frame pixels, the detection was scaled to find.
    detection_scale
        Factor frames were resized by for detection (boxes are mapped back; faces are
        embedded from the full frame).
    searches_per_track
        Most searches a track gets (its best faces).
    track_gap_ms
        A track unseen for longer ended.
    max_duration_s, max_pixels_per_frame
        The limits the video was checked against.
    """

    fps: float
    min_face: int
    detection_scale: float
    searches_per_track: int
    track_gap_ms: float
    max_duration_s: float
    max_pixels_per_frame: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "fps": self.fps,
            "min_face": self.min_face,
            "detection_scale": self.detection_scale,
            "searches_per_track": self.searches_per_track,
            "track_gap_ms": self.track_gap_ms,
            "max_duration_s": self.max_duration_s,
            "max_pixels_per_frame": self.max_pixels_per_frame,
        }


@dataclass(frozen=True, eq=False)
class VideoTrack:
    """One appearance of a face in a video: its time range, its best face and its candidates.

    Attributes
    ----------
    track_id
        1, 2, ... in order of first appearance.
    start_ms, end_ms
        Presentation times of the track's first and last sighting.
    faces
        Sightings (sampled frames in which the face was detected).
    best_ms
        Time of the best face (highest detection confidence x size x sharpness).
    best_face
        Its box in frame coordinates.
    candidates
        Gallery subjects within the threshold, best distance per subject over the
        track's searches, ranked; at most ``top_k``.
    searches
        Gallery searches run for this track (its best faces, up to ``searches_per_track``).
    crop
        The best face with a quarter-side margin, RGB uint8 (longer side at most 256 px,
        read-only), when the track has candidates; ``None`` otherwise. Held in memory
        only: the engine never writes it anywhere, the caller decides whether to keep it.
    """

    track_id: int
    start_ms: int
    end_ms: int
    faces: int
    best_ms: int
    best_face: Face
    candidates: tuple[Candidate, ...]
    searches: int
    crop: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one element of ``tracks`` in ``facetrail search-video --json``)."""
        return {
            "track_id": self.track_id,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "faces": self.faces,
            "best_ms": self.best_ms,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True, eq=False)
class VideoSearchResult:
    """A stored video searched against one gallery, face track by face track.

    Attributes
    ----------
    video
        The path as given.
    video_sha256
        Hex SHA-256 of the file's bytes (the video itself is never stored).
    duration_ms
        End of the last decoded frame (its timestamp plus one frame interval).
    frames_sampled, frames_decoded
        Frames searched for faces, and frames decoded to find them.
    faces_detected
        Faces detected over all sampled frames.
    tracks
        Every track, with or without candidates, by ``track_id``.
    gallery
        The gallery as it was (name, fingerprint, size).
    config
        The configuration that decided, with the threshold's provenance.
    threshold, top_k, exact
        The query: cosine-distance threshold, candidates per track, exact search.
    searches
        Gallery searches run in all (the sum over tracks).
    sampling
        How frames were sampled and faces tracked.
    width, height, rotation
        Frame size as searched (upright) and the rotation the container asked for.
    """

    video: str
    video_sha256: str
    duration_ms: int
    frames_sampled: int
    frames_decoded: int
    faces_detected: int
    tracks: tuple[VideoTrack, ...]
    gallery: GalleryRef
    config: ModelConfig
    threshold: float
    top_k: int
    exact: bool
    searches: int
    sampling: VideoSampling
    width: int
    height: int
    rotation: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the keys of ``facetrail search-video --json`` (the caller adds ``audit_seq``)."""
        return {
            "video": self.video,
            "video_sha256": self.video_sha256,
            "duration_ms": self.duration_ms,
            "frames_sampled": self.frames_sampled,
            "faces_detected": self.faces_detected,
            "tracks": [t.to_dict() for t in self.tracks],
        }
