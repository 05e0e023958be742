"""facetrail's recognition engine: detect, embed, verify (1:1) and search (1:N).

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
)
from core.gallery import EnrollItem, GalleryInfo, GalleryStore, LoadedGallery
from core.image import Image, load_image
from core.index import ApproxIndex, ExactIndex, Hit
from core.models import install_models, model_statuses
from core.results import BatchResult, Candidate, Embedding, Face, Failure, GalleryRef, SearchResult, VerifyResult

__all__ = [
    "ALIGNMENTS",
    "BUILTIN_THRESHOLDS",
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
    "VerifyResult",
    "default_config",
    "default_db_path",
    "enroll_images",
    "install_models",
    "load_image",
    "model_statuses",
    "read_folder",
    "read_manifest",
]
