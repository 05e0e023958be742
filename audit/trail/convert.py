"""The one conversion from the engine's result types to the fields of audit records.

Records keep their own wire format (:mod:`audit.trail.records`: no floats, fixed
decimals), so a change to the engine's types never changes what was signed. This
module is the only place that reads engine types into that format; the trail never
fills its types by duck typing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from audit.trail.records import Candidate as RecordCandidate
from audit.trail.records import GalleryRef as RecordGalleryRef
from audit.trail.records import decimal6
from core.gallery import EnrollItem, face_id_for
from core.results import Candidate, GalleryRef

__all__ = ["candidate_fields", "face_detectors", "gallery_fields", "record_candidate", "record_gallery"]


def record_candidate(candidate: Candidate) -> RecordCandidate:
    """Return the record form of a search candidate (distances as 6-decimal strings)."""
    return RecordCandidate(
        subject_id=candidate.subject_id,
        face_id=candidate.face_id,
        distance=decimal6(candidate.distance),
        similarity=decimal6(candidate.similarity),
        rank=int(candidate.rank),
    )


def record_gallery(gallery: GalleryRef) -> RecordGalleryRef:
    """Return the record form of a gallery reference."""
    return RecordGalleryRef(name=gallery.name, fingerprint=gallery.fingerprint, size=int(gallery.size))


def candidate_fields(candidate: Candidate) -> dict[str, Any]:
    """Return the ``candidates[]`` entry of a record for ``candidate``."""
    return record_candidate(candidate).to_dict()


def gallery_fields(gallery: GalleryRef) -> dict[str, Any]:
    """Return the ``gallery`` field of a record for ``gallery``."""
    return record_gallery(gallery).to_dict()


def face_detectors(gallery: str, items: Iterable[EnrollItem],
                   face_id: Callable[[str, str, str], str] = face_id_for) -> dict[str, str]:
    """Return ``{face id: detector}``: which detector of the cascade found each face enrolled into ``gallery``.

    ``face_id``: how the gallery names a face (:meth:`core.gallery.GalleryStore.face_id`, keyed).
    """
    return {face_id(gallery, i.subject_id, i.embedding.image_sha256): i.embedding.face.detector for i in items}
