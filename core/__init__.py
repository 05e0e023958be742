"""facetrail's recognition engine: detect, embed, verify (1:1), search (1:N) and search stored video.

The public names below are the one way in for the audit module, the dashboard
and the notebooks. ``core`` never imports streamlit and knows no user interface.
"""

from core.cache import EmbeddingCache
from core.config import ALIGNMENTS, DETECTORS, MODELS, ModelConfig, ThresholdSource
from core.db import Database, default_db_path
from core.engine import BUILTIN_THRESHOLDS, Engine, default_config
from core.enrollment import EnrollReport, SourceImage, enroll_images, read_folder, read_manifest
from core.errors import (
    BadInput,
    ConfigMismatch,
    DatabaseBusy,
    DatabaseError,
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
from core.image import Image, load_image
from core.index import ApproxIndex, ExactIndex, Hit
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
from core.video import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_PIXELS_PER_FRAME, VideoInfo, open_video

__all__ = [
    "ALIGNMENTS",
    "BUILTIN_THRESHOLDS",
    "DEFAULT_MAX_DURATION_S",
    "DEFAULT_MAX_PIXELS_PER_FRAME",
    "DETECTORS",
    "MODELS",
    "ApproxIndex",
    "BadInput",
    "BatchResult",
    "Candidate",
    "ConfigMismatch",
    "Database",
    "DatabaseBusy",
    "DatabaseError",
    "Embedding",
    "EmbeddingCache",
    "Engine",
    "EnrollItem",
    "EnrollReport",
    "ExactIndex",
    "Face",
    "Failure",
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
    "SearchResult",
    "SourceImage",
    "ThresholdSource",
    "UnreadableImage",
    "UnreadableVideo",
    "VerifyResult",
    "VideoInfo",
    "VideoSampling",
    "VideoSearchResult",
    "VideoTooLong",
    "VideoTrack",
    "default_config",
    "default_db_path",
    "enroll_images",
    "install_models",
    "load_image",
    "model_statuses",
    "open_video",
    "read_folder",
    "read_manifest",
]
