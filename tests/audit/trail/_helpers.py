"""Shared helpers of the audit tests: in-memory chains, logs, a fake engine and gallery store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.trail.chain import GENESIS, Checkpoint, MerkleFrontier, entry_hash, sign_checkpoint
from audit.trail.keys import fingerprint
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord
from core.storage.connection import Database
from core.errors import NoFaceDetected, NotFound


@dataclass(frozen=True)
class Entry:
    seq: int
    prev_hash: bytes
    entry_hash: bytes
    canonical: bytes


def record_fields(i: int, operator: str = "alice", case: str = "C-1") -> dict[str, Any]:
    return {
        "started_at": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "ended_at": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "action": "search",
        "outcome": "ok",
        "operator": operator,
        "purpose": "investigation",
        "case_ref": case,
        "gallery": {"name": "g", "fingerprint": "fp", "size": 10},
        "model_config": {"model": "Facenet512", "threshold": 0.3},
        "probe_sha256": [hashlib.sha256(str(i).encode()).hexdigest()],
        "faces_found": 1,
        "candidates": [
            {"subject_id": f"s{i}", "face_id": f"f{i}", "distance": 0.1, "similarity": 0.9, "rank": 1}
        ],
        "latency_ms": 1.5,
        "details": {"top_k": 5},
    }


def build_chain(
    records: list[dict[str, Any]], key: Ed25519PrivateKey, checkpoint_seqs: set[int]
) -> tuple[list[Entry], list[Checkpoint]]:
    """Build a valid chain of ``records`` (dicts without seq) with checkpoints at ``checkpoint_seqs``."""
    entries: list[Entry] = []
    cps: list[Checkpoint] = []
    prev = GENESIS
    cp_prev = GENESIS
    frontier = MerkleFrontier()
    key_id = fingerprint(key.public_key())
    for i, fields in enumerate(records, start=1):
        blob = AuditRecord.from_dict({**fields, "seq": i}).canonical()
        h = entry_hash(prev, blob)
        entries.append(Entry(i, prev, h, blob))
        frontier.append_hash(h)
        if i in checkpoint_seqs:
            cps.append(sign_checkpoint(key, key_id, i, h, frontier.root(), "2026-01-01T00:00:00.000000Z", cp_prev))
            cp_prev = cps[-1].digest()
        prev = h
    return entries, cps


def make_log(tmp_path: Path, kind: str, checkpoint_every: int = 100) -> AuditLog:
    db = Database(":memory:" if kind == "memory" else tmp_path / "facetrail.duckdb")
    return AuditLog(db, key_path=tmp_path / "audit-key", checkpoint_every=checkpoint_every)


# -- a fake engine with the core contract ---------------------------------------------------------


@dataclass(frozen=True)
class FakeConfig:
    threshold: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return {"model": "Fake", "detector": "fake", "alignment": True, "metric": "cosine",
                "threshold": self.threshold, "threshold_source": {"kind": "builtin"},
                "versions": {"facetrail": "0.1.0"}}


@dataclass(frozen=True)
class FakeEmbedding:
    image_sha256: str
    faces_detected: int


@dataclass(frozen=True)
class FakeVerify:
    distance: float
    similarity: float
    threshold: float
    verified: bool
    a: FakeEmbedding
    b: FakeEmbedding
    config: FakeConfig


@dataclass(frozen=True)
class FakeCandidate:
    subject_id: str
    face_id: str
    distance: float
    similarity: float
    rank: int


@dataclass(frozen=True)
class FakeGalleryRef:
    name: str
    fingerprint: str
    size: int


@dataclass(frozen=True)
class FakeSearch:
    image_sha256: str
    faces_detected: int
    candidates: tuple[FakeCandidate, ...]
    gallery: FakeGalleryRef
    threshold: float
    top_k: int
    config: FakeConfig


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeEngine:
    """Images are bytes; b"noface" raises NoFaceDetected; the distance is 0 for equal bytes."""

    def __init__(self) -> None:
        self.config = FakeConfig()
        self.calls = 0

    def verify(self, a: bytes, b: bytes, *, threshold: float | None = None) -> FakeVerify:
        self.calls += 1
        for img in (a, b):
            if img == b"noface":
                raise NoFaceDetected("no face in the image")
        t = self.config.threshold if threshold is None else threshold
        d = 0.0 if a == b else 0.8
        return FakeVerify(d, 1 - d, t, d <= t, FakeEmbedding(sha(a), 1), FakeEmbedding(sha(b), 1), self.config)

    def search(self, gallery: FakeLoaded, probe: bytes, *, top_k: int = 10,
               threshold: float | None = None) -> FakeSearch:
        self.calls += 1
        if probe == b"noface":
            raise NoFaceDetected("no face in the image")
        cands = tuple(
            FakeCandidate(s, f, 0.1 * r, 1 - 0.1 * r, r)
            for r, (f, s) in enumerate(sorted(gallery.faces.items())[:top_k], start=1)
            if probe != b"stranger"
        )
        return FakeSearch(sha(probe), 1, cands, gallery.ref, self.config.threshold, top_k, self.config)


@dataclass
class FakeLoaded:
    ref: FakeGalleryRef
    faces: dict[str, str]


@dataclass
class FakeGalleries:
    faces: dict[str, dict[str, str]] = field(default_factory=lambda: {"g": {"f1": "s1", "f2": "s2"}})

    def info(self, name: str) -> FakeGalleryRef:
        if name not in self.faces:
            raise NotFound(f"no gallery {name!r}")
        return FakeGalleryRef(name, f"fp{len(self.faces[name])}", len(self.faces[name]))

    def load(self, name: str) -> FakeLoaded:
        return FakeLoaded(self.info(name), dict(self.faces[name]))

    def enroll(self, name: str, items: list[Any]) -> tuple[list[str], list[str]]:
        new = []
        for item in items:
            fid = "f-" + item.embedding.image_sha256[:8]
            self.faces.setdefault(name, {})[fid] = item.subject_id
            new.append(fid)
        return new, []

    def delete_subject(self, name: str, subject_id: str) -> list[str]:
        gone = [f for f, s in self.faces.get(name, {}).items() if s == subject_id]
        if not gone:
            raise NotFound(f"gallery {name!r} has no subject {subject_id!r}")
        for f in gone:
            del self.faces[name][f]
        return gone

    def delete_face(self, name: str, face_id: str) -> list[str]:
        if face_id not in self.faces.get(name, {}):
            raise NotFound(f"gallery {name!r} has no face {face_id!r}")
        del self.faces[name][face_id]
        return [face_id]


@dataclass(frozen=True)
class FakeItem:
    subject_id: str
    embedding: FakeEmbedding
    image_name: str = "x.jpg"
