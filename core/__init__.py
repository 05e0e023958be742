"""facetrail's recognition engine: detect, embed, verify (1:1), search (1:N) and search stored video.

The public names below are the one way in for the audit package, the dashboard
and the notebooks. ``core`` never imports ``audit``, ``dashboard`` or streamlit,
and knows no user interface.

image -> _deepface (the only deepface import) -> engine (results carry their
config) -> index/gallery/cache (galleries in DuckDB, through :mod:`core.storage`);
video -> tracking -> video_search for stored footage.
"""

from core.cache import EmbeddingCache
from core.config import ALIGNMENTS, DETECTORS, FACE_POLICIES, MODELS, FacePolicy, ModelConfig, ThresholdSource
from core.engine import BUILTIN_THRESHOLDS, DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, Engine, default_config
from core.enrollment import EnrollReport, FailureSummary, enroll_images
from core.errors import (
    BadInput,
    ConfigMismatch,
    EnrollmentFailed,
    FrameTooLarge,
    GalleryExists,
    GalleryNotFound,
    ImageTooLarge,
    ManifestError,
    ModelUnavailable,
    MultipleFaces,
    NoFaceDetected,
    NotFound,
    RecognitionError,
    UnreadableImage,
    UnreadableVideo,
    VideoTooLong,
)
from core.gallery import EnrollItem, GalleryInfo, GalleryStore, LoadedGallery
from core.image import Image, load_image, sha256_file
from core.index import ApproxIndex, ExactIndex, Hit
from core.manifest import SourceImage, check_subject_id, read_folder, read_manifest
from core.models import install_models, model_statuses
from core.results import (
    BatchResult,
    Candidate,
    Embedding,
    Face,
    Failure,
    GalleryRef,
    SearchResult,
    VerifyResult,
    VideoSampling,
    VideoSearchResult,
    VideoTrack,
)
from core.settings import Settings
from core.storage import Database, DatabaseBusy, SchemaError, StorageError, default_db_path
from core.video import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_PIXELS_PER_FRAME, VideoInfo, open_video

__all__ = [
    "ALIGNMENTS",
    "BUILTIN_THRESHOLDS",
    "DEFAULT_ALIGNMENT",
    "DEFAULT_DETECTOR",
    "DEFAULT_MAX_DURATION_S",
    "DEFAULT_MAX_PIXELS_PER_FRAME",
    "DETECTORS",
    "FACE_POLICIES",
    "MODELS",
    "ApproxIndex",
    "BadInput",
    "BatchResult",
    "Candidate",
    "ConfigMismatch",
    "Database",
    "DatabaseBusy",
    "Embedding",
    "EmbeddingCache",
    "Engine",
    "EnrollItem",
    "EnrollReport",
    "EnrollmentFailed",
    "ExactIndex",
    "Face",
    "FacePolicy",
    "Failure",
    "FailureSummary",
    "FrameTooLarge",
    "GalleryExists",
    "GalleryInfo",
    "GalleryNotFound",
    "GalleryRef",
    "GalleryStore",
    "Hit",
    "Image",
    "ImageTooLarge",
    "LoadedGallery",
    "ManifestError",
    "ModelConfig",
    "ModelUnavailable",
    "MultipleFaces",
    "NoFaceDetected",
    "NotFound",
    "RecognitionError",
    "SchemaError",
    "SearchResult",
    "Settings",
    "SourceImage",
    "StorageError",
    "ThresholdSource",
    "UnreadableImage",
    "UnreadableVideo",
    "VerifyResult",
    "VideoInfo",
    "VideoSampling",
    "VideoSearchResult",
    "VideoTooLong",
    "VideoTrack",
    "check_subject_id",
    "default_config",
    "default_db_path",
    "enroll_images",
    "install_models",
    "load_image",
    "model_statuses",
    "open_video",
    "read_folder",
    "read_manifest",
    "sha256_file",
]
