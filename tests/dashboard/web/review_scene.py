"""A search to review with its evidence, added to the fake scene: a gallery with reference photos, the probe kept
for review, a looser-than-policy threshold, and the fake scene's evaluation as the designated one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from audit import Runtime
from audit.evaluation.store import EvaluationStore
from audit.evidence import EvidenceStore
from audit.policy import policy_fields
from core import EnrollItem
from tests.conftest import make_config
from tests.dashboard.conftest import FAKE_KEY
from tests.fakes import face_png

#: The purpose of the search: markdown and a link, which the pages must show as text.
PURPOSE = "**identify** [a suspect](https://example.invalid/x)"


@dataclass(frozen=True)
class ReviewScene:
    seq: int
    faces: dict[str, str]
    """Face id by subject."""
    probe: bytes
    photos: dict[str, bytes]


def add_review_scene(db: str, engine, photo: Callable[[str, int], bytes] = face_png) -> ReviewScene:
    """Add gallery ``witnesses`` (two subjects, photos kept) and a search by operator1 naming both, probe kept.

    ``photo(subject, variant)`` makes the generated photos (default: the fake pipeline's :func:`face_png`)."""
    rt = Runtime(db)
    try:
        rt.galleries.create("witnesses", make_config())
        photos = {"Ann_Example": photo("Ann_Example", 0), "Bob_Example": photo("Bob_Example", 0)}
        rt.galleries.enroll("witnesses", [EnrollItem(s, engine.embed(p), f"{s}.png", {"sex": "F" if s[0] == "A" else "M"},
                                                     photo=p) for s, p in photos.items()])
        faces = {f["subject_id"]: f["face_id"] for f in rt.galleries.faces("witnesses")}
        evidence = EvidenceStore.beside(db, rt.galleries.keys)
        probe = photo("probe_person", 1)
        kept = evidence.keep(probe, "probe_image")
        info = rt.galleries.info("witnesses")
        seq = rt.log.append({
            "action": "search", "outcome": "ok", "operator": "operator1", "purpose": PURPOSE, "case_ref": "CR-77",
            "gallery": {"name": "witnesses", "fingerprint": info.fingerprint, "size": info.size},
            "model_config": {"model": "Dlib", "embedding_key": FAKE_KEY, "threshold": 0.5,
                             "threshold_source": {"kind": "calibrated", "dataset": "fake_set",
                                                  "dataset_fingerprint": "fake"}},
            "probe_sha256": ["0" * 64], "faces_found": 1,
            "candidates": [{"subject_id": "Ann_Example", "face_id": faces["Ann_Example"], "distance": "0.380000",
                            "similarity": "0.620000", "rank": 1},
                           {"subject_id": "Bob_Example", "face_id": faces["Bob_Example"], "distance": "0.450000",
                            "similarity": "0.550000", "rank": 2}],
            "details": {"top_k": 5, "threshold": 0.5, "retained": {"probe_image": kept.evidence_id},
                        "threshold_policy": {"status": "looser", "threshold": 0.5, "loosest": 0.4, "hard_limit": 0.6,
                                             "reason": "a blurred still", "warning": "more false candidates"}},
            "latency_ms": 9.0,
        }).seq
        evidence.link(kept.evidence_id, seq)
        (run_id,) = [r.run_id for r in EvaluationStore(rt.db).list() if r.embedding_key == FAKE_KEY]
        rt.log.append({"action": "threshold_policy", "operator": "admin1", "purpose": "designate the evaluation",
                       **policy_fields(None, None, None, "the board designates the fake scene's evaluation", run_id)})
    finally:
        rt.close()
    return ReviewScene(seq, faces, probe, photos)
