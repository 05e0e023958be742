"""Audit records (audit.trail.records): validation, the canonical encoding, the record's own wire types."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from audit.trail.records import AuditRecord, Candidate, GalleryRef, canonical_bytes, decode_record
from tests.audit.trail._helpers import record_fields


def test_record_validation() -> None:
    base = {**record_fields(0), "seq": 1}
    with pytest.raises(ValueError, match="action"):
        AuditRecord.from_dict({**base, "action": "peek"})
    with pytest.raises(ValueError, match="probe_sha256"):
        AuditRecord.from_dict({**base, "probe_sha256": ["not-a-digest"]})
    with pytest.raises(ValueError, match="started_at"):
        AuditRecord.from_dict({**base, "started_at": "yesterday"})
    with pytest.raises(ValueError, match="unknown"):
        AuditRecord.from_dict({**base, "image": "bytes"})
    with pytest.raises(ValueError, match="canonical"):
        decode_record(canonical_bytes(AuditRecord.from_dict(base).to_dict()).replace(b",", b", ", 1))


def test_decoding_gives_back_the_record_and_its_own_types() -> None:
    record = AuditRecord.from_dict({**record_fields(3), "seq": 4})
    again = decode_record(record.canonical())
    assert again == record
    assert isinstance(again.gallery, GalleryRef) and again.gallery == GalleryRef("g", "fp", 10)
    assert again.candidates == (Candidate("s3", "f3", "0.100000", "0.900000", 1),)
    assert [Candidate.from_dict(c.to_dict()) for c in again.candidates] == list(again.candidates)
    assert GalleryRef.from_dict(again.gallery.to_dict()) == again.gallery


@dataclass(frozen=True)
class LookAlike:
    """Has every attribute of a candidate and of a gallery reference, but is neither."""

    subject_id: str = "s1"
    face_id: str = "f1"
    distance: float = 0.1
    similarity: float = 0.9
    rank: int = 1
    name: str = "g"
    fingerprint: str = "fp"
    size: int = 3


@pytest.mark.parametrize("candidate, problem", [
    (LookAlike(), "must be an audit.trail.records.Candidate or its dict"),
    ({"subject_id": "s1", "face_id": "f1", "distance": 0.1, "similarity": 0.9, "rank": 1},
     "distance must be a decimal string"),
    ({"subject_id": "s1", "face_id": "f1", "distance": "0.100000", "similarity": "0.900000"}, "exactly the fields"),
    ({"subject_id": "s1", "face_id": "f1", "distance": "0.100000", "similarity": "0.900000", "rank": 1,
      "extra": 1}, "exactly the fields"),
    ({"subject_id": 7, "face_id": "f1", "distance": "0.100000", "similarity": "0.900000", "rank": 1},
     "subject_id must be a string"),
    ({"subject_id": "s1", "face_id": "f1", "distance": "0.100000", "similarity": "0.900000", "rank": True},
     "rank must be an integer"),
    ({"subject_id": "s1", "face_id": "f1", "distance": "0.100000", "similarity": "0.900000", "rank": 0},
     "rank must be an integer >= 1"),
])
def test_candidates_are_only_the_records_own_type_or_its_dict(candidate: object, problem: str) -> None:
    fields = {**record_fields(0), "seq": 1, "candidates": [candidate]}
    with pytest.raises(ValueError, match=problem):
        AuditRecord.from_dict(fields)


@pytest.mark.parametrize("gallery, problem", [
    (LookAlike(), "must be an audit.trail.records.GalleryRef or its dict"),
    ({"name": "g", "fingerprint": "fp"}, "exactly the fields"),
    ({"name": "g", "fingerprint": "fp", "size": "10"}, "size must be an integer"),
    ({"name": "g", "fingerprint": None, "size": 10}, "fingerprint must be a string"),
])
def test_galleries_are_only_the_records_own_type_or_its_dict(gallery: object, problem: str) -> None:
    fields = {**record_fields(0), "seq": 1, "gallery": gallery}
    with pytest.raises(ValueError, match=problem):
        AuditRecord.from_dict(fields)
