"""Errors of the recognition engine.

Every failure a user can cause or meet has its own type under
:class:`RecognitionError`, with a message that names the problem and, where
there is one, the fix. ``code`` is a short stable identifier used in JSON output
and audit records (``"no_face"``, ``"unreadable_image"``, ...).

Domain failures deliberately do not subclass :class:`ValueError`: a bare
``except ValueError`` around library code must never swallow them (deepface's
all-``ValueError`` hierarchy is what we avoid). ``ValueError`` stays for bad
arguments from programmers.
"""

from __future__ import annotations

__all__ = [
    "RecognitionError",
    "BadInput",
    "UnreadableImage",
    "ImageTooLarge",
    "UnreadableVideo",
    "VideoTooLong",
    "FrameTooLarge",
    "NoFaceDetected",
    "MultipleFaces",
    "ModelUnavailable",
    "ConfigMismatch",
    "GalleryNotFound",
    "GalleryExists",
    "NotFound",
    "ManifestError",
    "EnrollmentFailed",
]


class RecognitionError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "recognition_error"


class BadInput(RecognitionError):
    """The input is not something facetrail can use (a path, a file, an argument value)."""

    code = "bad_input"


class UnreadableImage(BadInput):
    """The bytes are not an image in a supported format (or the file is missing or empty)."""

    code = "unreadable_image"


class ImageTooLarge(BadInput):
    """The image has more pixels (or bytes) than the configured limit."""

    code = "image_too_large"


class UnreadableVideo(BadInput):
    """The file is not a video facetrail reads, or it is truncated, damaged, empty or changed while read."""

    code = "unreadable_video"


class VideoTooLong(BadInput):
    """The video lasts longer than the configured ``max_duration``."""

    code = "video_too_long"


class FrameTooLarge(BadInput):
    """The video's frames have more pixels than the configured ``max_pixels_per_frame``."""

    code = "frame_too_large"


class NoFaceDetected(RecognitionError):
    """The detector found no face in the image. Never replaced by a whole-frame embedding."""

    code = "no_face"


class MultipleFaces(RecognitionError):
    """Several faces were found and the face policy says to refuse rather than choose."""

    code = "multiple_faces"


class ModelUnavailable(RecognitionError):
    """A model, detector or its weights are not installed; the message names the command that provisions it."""

    code = "model_unavailable"


class ConfigMismatch(RecognitionError):
    """Embeddings of different model configurations were about to be mixed."""

    code = "config_mismatch"


class NotFound(RecognitionError):
    """A named thing (gallery, face, subject, record) does not exist."""

    code = "not_found"


class GalleryNotFound(NotFound):
    """No gallery of that name exists in the database."""

    code = "gallery_not_found"


class GalleryExists(BadInput):
    """A gallery of that name already exists."""

    code = "gallery_exists"


class ManifestError(BadInput):
    """A manifest CSV or dataset folder cannot be used (missing columns, bad paths)."""

    code = "bad_manifest"


class EnrollmentFailed(BadInput):
    """No image of an enrolment yielded a face; ``summary`` counts the failures by code."""

    code = "enroll_failed"

    def __init__(self, message: str, summary: dict[str, object]) -> None:
        super().__init__(message)
        self.summary = summary
