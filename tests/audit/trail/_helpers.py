"""Shared helpers of the trail tests: record fields, in-memory chains, logs on memory or file databases."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.trail.chain import GENESIS, Checkpoint, MerkleFrontier, RowBatch, entry_hash, sign_checkpoint
from audit.trail.convert import candidate_fields, gallery_fields
from audit.trail.keys import fingerprint
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord
from core.results import Candidate, GalleryRef
from core.storage.connection import Database

KINDS = ["memory", "file"]


@dataclass(frozen=True)
class Entry:
    """One row of an in-memory log (what the store holds)."""

    seq: int
    prev_hash: bytes
    entry_hash: bytes
    canonical: bytes


def candidate(subject_id: str, face_id: str, distance: float, rank: int) -> dict[str, Any]:
    """A record's candidate, converted from the engine's type as the audited engine does."""
    return candidate_fields(Candidate(subject_id, face_id, distance, 1 - distance, rank))


def record_fields(i: int, operator: str = "alice", case: str = "C-1") -> dict[str, Any]:
    return {
        "started_at": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "ended_at": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "action": "search",
        "outcome": "ok",
        "operator": operator,
        "purpose": "investigation",
        "case_ref": case,
        "gallery": gallery_fields(GalleryRef("g", "fp", 10)),
        "model_config": {"model": "Facenet512", "threshold": 0.3},
        "probe_sha256": [hashlib.sha256(str(i).encode()).hexdigest()],
        "faces_found": 1,
        "candidates": [candidate(f"s{i}", f"f{i}", 0.1, 1)],
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


def batches(entries: Sequence[Entry], size: int = 10_000) -> list[RowBatch]:
    """The rows of ``entries`` as the store hands them to the verifier, ``size`` rows per batch."""
    out = []
    for start in range(0, len(entries), size):
        part = entries[start : start + size]
        out.append(RowBatch([e.seq for e in part], [e.prev_hash for e in part], [e.entry_hash for e in part],
                            [e.canonical for e in part]))
    return out


def make_log(tmp_path: Path, kind: str, checkpoint_every: int = 100) -> AuditLog:
    db = Database(":memory:" if kind == "memory" else tmp_path / "facetrail.duckdb")
    return AuditLog(db, key_path=tmp_path / "audit-key", checkpoint_every=checkpoint_every)


def sql(log: AuditLog, statement: str, params: list[object] | None = None) -> None:
    """Run a raw statement on the log's database, as someone with write access to the file would."""
    with log.db.connect() as con:
        con.execute(statement, params or [])
