"""The one conversion (audit.trail.convert): engine result types -> record -> stored bytes -> decoded, same values."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.trail.convert import candidate_fields, gallery_fields, record_candidate, record_gallery
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord, decode_record
from core.results import Candidate, GalleryRef
from tests.audit.trail._helpers import make_log, record_fields

ENGINE_CANDIDATES = [
    Candidate("alice", "face-1", 0.4123, 0.5877, 1),
    Candidate("bob", "face-2", 0.0, 1.0, 2),
    Candidate("Zoë ∂", "face-3", 1.9999996, -0.9999996, 3),  # rounds up; negative similarity
    Candidate("carol", "face-4", 1e-9, 1 - 1e-9, 4),  # below the 6-decimal resolution
]
GALLERY = GalleryRef("arrest_photos", "10-" + "ab" * 16, 10)


def test_engine_candidate_to_record_and_back_keeps_the_values(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    fields = {**record_fields(0), "gallery": gallery_fields(GALLERY),
              "candidates": [candidate_fields(c) for c in ENGINE_CANDIDATES]}
    entry = log.append(fields)
    # through the real database and the decoder
    reopened = AuditLog(log.db, key_path=log.key_path)
    decoded, erased = reopened.field_keys.open(decode_record(reopened.get(entry.seq).canonical))
    assert decoded == entry.record and erased == ()
    assert len(decoded.candidates) == len(ENGINE_CANDIDATES)
    for engine, stored in zip(ENGINE_CANDIDATES, decoded.candidates, strict=True):
        assert (stored.subject_id, stored.face_id, stored.rank) == (engine.subject_id, engine.face_id, engine.rank)
        # the same values at the record's resolution (6 decimals), written as fixed decimals
        assert float(stored.distance) == pytest.approx(engine.distance, abs=5e-7)
        assert float(stored.similarity) == pytest.approx(engine.similarity, abs=5e-7)
        assert stored.distance == f"{engine.distance:.6f}".replace("-0.000000", "0.000000")
    assert [c.distance for c in decoded.candidates] == ["0.412300", "0.000000", "2.000000", "0.000000"]
    assert decoded.candidates[2].similarity == "-1.000000"
    assert decoded.gallery is not None
    assert (decoded.gallery.name, decoded.gallery.fingerprint, decoded.gallery.size) == (
        GALLERY.name, GALLERY.fingerprint, GALLERY.size)
    assert log.verify().ok


def test_record_types_from_engine_types() -> None:
    c = record_candidate(ENGINE_CANDIDATES[0])
    assert c.to_dict() == candidate_fields(ENGINE_CANDIDATES[0]) == {
        "subject_id": "alice", "face_id": "face-1", "distance": "0.412300", "similarity": "0.587700", "rank": 1}
    assert record_gallery(GALLERY).to_dict() == gallery_fields(GALLERY) == GALLERY.to_dict()
    # the record's types are accepted as they are, and equal their dict form
    record = AuditRecord.from_dict({**record_fields(0), "seq": 1, "candidates": [c], "gallery": record_gallery(GALLERY)})
    same = AuditRecord.from_dict({**record_fields(0), "seq": 1, "candidates": [c.to_dict()],
                                  "gallery": GALLERY.to_dict()})
    assert record == same and record.canonical() == same.canonical()


def test_non_finite_engine_values_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        candidate_fields(Candidate("s", "f", float("nan"), 0.0, 1))


def test_engine_types_themselves_are_not_record_fields() -> None:
    """The engine's dataclasses have the same attribute names; they must pass through convert."""
    with pytest.raises(ValueError, match="audit.trail.convert"):
        AuditRecord.from_dict({**record_fields(0), "seq": 1, "candidates": [ENGINE_CANDIDATES[0]]})
    with pytest.raises(ValueError, match="audit.trail.convert"):
        AuditRecord.from_dict({**record_fields(0), "seq": 1, "gallery": GALLERY})
    with pytest.raises(ValueError, match="decimal string"):  # the engine's own dict form has floats
        AuditRecord.from_dict({**record_fields(0), "seq": 1, "candidates": [ENGINE_CANDIDATES[0].to_dict()]})
