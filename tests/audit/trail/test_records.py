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


def test_a_float_anywhere_in_a_record_built_directly_is_refused_by_name() -> None:
    """A record made without from_dict (which turns floats into decimals) cannot be encoded with a float in it."""
    import numpy as np

    base = AuditRecord.from_dict({**record_fields(1), "seq": 1})
    deep = AuditRecord(**{**vars(base), "details": {"ok": [1, "a", None, True], "x": [{"y": 2}, {"z": 0.25}]}})
    with pytest.raises(ValueError, match=r"float at \$\.details\.x\[1\]\.z is not allowed"):
        deep.canonical()
    with pytest.raises(ValueError, match=r"float at \$\.purpose "):  # a numpy float is a float too
        AuditRecord(**{**vars(base), "purpose": np.float64(1.5)}).canonical()
    with pytest.raises(ValueError, match=r"float at \$\.model_config\.threshold "):
        AuditRecord(**{**vars(base), "model_config": {"threshold": 0.3}}).canonical()
    assert decode_record(base.canonical()) == base
    # from_dict makes them decimals (and the exact JSON types pass through unchanged)
    made = AuditRecord.from_dict({**record_fields(2), "seq": 2, "details": {"x": [{"z": 0.25}], "n": 3, "b": False}})
    assert made.details == {"x": [{"z": "0.250000"}], "n": 3, "b": False}
    assert b'"z":"0.250000"' in made.canonical()
