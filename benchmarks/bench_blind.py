"""Benchmark of blind review with a sealed plan (issue 11.1, :mod:`audit.blind` "Erasure").

The plan's face ids and subject ids are sealed tokens under the subjects' log field keys, so
opening a batch seals two values per item and every read of the batch (each served item and
each decision reads it) opens them again. Every figure is printed with a baseline measured
in the same run and process: the same batch with a plan of clear ids (as a batch opened
before plans were sealed is read), on a second database of the same content.

(a) ``open_batch`` over Q searches of 5 candidates each (fillers: a quarter of the items), median of 6.
(b) ``blind_batches`` of one such batch (what ``next_item`` and ``decide`` read each time), median of 10.
(c) A reviewer's ``next_item`` + ``decide`` per item, median over the first N items.

Usage: .venv/bin/python benchmarks/bench_blind.py [--queries Q] [--decisions N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import AuditContext, AuditSession, blind_batches, blind_decide, blind_next, open_batch  # noqa: E402
from audit import blind as audit_blind  # noqa: E402
from audit.accounts import CredentialStore, UserStore  # noqa: E402
from audit.trail.convert import candidate_fields, gallery_fields  # noqa: E402
from audit.trail.log import AuditLog  # noqa: E402
from audit.trail.sealed import is_sealed  # noqa: E402
from benchmarks.synthetic import CONFIG, FACE, vectors  # noqa: E402
from core import Database, Embedding, EnrollItem, GalleryStore  # noqa: E402
from core.results import Candidate, GalleryRef  # noqa: E402

GALLERY = GalleryRef("g", "1-" + "ab" * 16, 10_000)
SEALED_ITEMS = audit_blind._sealed_items
FILLERS = 2000


def clear_items(log: AuditLog, items: Sequence[audit_blind.BlindPlanItem]) -> list[dict[str, Any]]:
    """The baseline's plan: clear ids (as before plans were sealed)."""
    return [i.to_dict() for i in items]


def timed(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def serve_and_decide(session: AuditSession, batch_id: str) -> None:
    item = blind_next(session, batch_id)
    assert item is not None
    blind_decide(session, item.ticket, "reject")


def search_fields(i: int) -> dict[str, Any]:
    return {"action": "search", "outcome": "ok", "operator": "olga", "purpose": "benchmark", "case_ref": "B-1",
            "gallery": gallery_fields(GALLERY), "model_config": CONFIG.to_dict(), "probe_sha256": [f"{i:064x}"],
            "faces_found": 1, "latency_ms": 1.5, "details": {"top_k": 5},
            "candidates": [candidate_fields(Candidate(f"subject{(i * 5 + r) % 5000:07d}", f"{i:014d}{r:06d}",
                                                      0.1 + r / 100, 0.9 - r / 100, r + 1)) for r in range(5)]}


def world(root: Path, name: str, queries: int) -> tuple[AuditLog, GalleryStore, list[int], dict[str, AuditSession]]:
    db = Database(str(root / f"{name}.duckdb"))
    log = AuditLog(db, key_path=root / f"{name}.key")
    galleries = GalleryStore(db)
    galleries.create("fillers", CONFIG)
    x = vectors(FILLERS)
    galleries.enroll("fillers", [EnrollItem(f"filler{i:05d}", Embedding(x[i], f"{i:064x}", FACE, 1, CONFIG),
                                            f"{i}.jpg") for i in range(FILLERS)])
    galleries.flush()
    # made when the subjects were enrolled, not per search or batch
    log.field_keys.keys_for([("g", f"subject{k:07d}") for k in range(5000)]
                            + [("fillers", f"filler{i:05d}") for i in range(FILLERS)], create=True)
    seqs = [log.append(search_fields(i)).seq for i in range(queries)]
    users = UserStore(db, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    sessions = {}
    for who, role in (("audrey", "auditor"), ("rita", "reviewer")):
        actor = CredentialStore(db).issue(users.add(who, role, f"{who}-password"), "password_session",
                                          lifetime=timedelta(hours=1), idle=timedelta(minutes=30), created_by=who)
        sessions[who] = AuditSession(log, AuditContext(purpose="benchmark blind review"), actor)
    return log, galleries, seqs, sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        worlds = {sealed: world(Path(tmp), f"blind-{sealed}", args.queries) for sealed in (True, False)}
        opened: dict[bool, list[float]] = {True: [], False: []}
        read: dict[bool, list[float]] = {True: [], False: []}
        decided: dict[bool, list[float]] = {True: [], False: []}
        for first in (True, False, True, False, True, False):  # interleaved, and each side first in turn
            for sealed in (first, not first):
                log, galleries, seqs, sessions = worlds[sealed]
                audit_blind._sealed_items = SEALED_ITEMS if sealed else clear_items  # type: ignore[assignment]
                opened[sealed].append(timed(partial(open_batch, sessions["audrey"], galleries, seqs, "fillers")))
        audit_blind._sealed_items = SEALED_ITEMS
        oldest = {sealed: blind_batches(worlds[sealed][0])[0] for sealed in (True, False)}  # what rita reviews
        items = len(oldest[True].items)
        for _ in range(10):  # interleaved, so load changes hit both alike
            for sealed in (True, False):
                read[sealed].append(timed(partial(blind_batches, worlds[sealed][0], batch_id=oldest[sealed].batch_id)))
        for _ in range(args.decisions):
            for sealed in (True, False):
                decided[sealed].append(timed(partial(serve_and_decide, worlds[sealed][3]["rita"], oldest[sealed].batch_id)))
        assert not any(is_sealed(i.face_id) for i in blind_batches(worlds[True][0])[0].items)  # read in clear
        a, b = (statistics.median(opened[s]) * 1000 for s in (True, False))
        print(f"(a) open_batch over {args.queries} searches ({items} items): sealed plan {a:.0f} ms vs clear "
              f"plan {b:.0f} ms (x{a / b:.2f}), median of 6")
        a, b = (statistics.median(read[s]) * 1000 for s in (True, False))
        print(f"(b) blind_batches (read and open the plan): sealed {a:.1f} ms vs clear {b:.1f} ms (x{a / b:.2f}), "
              "median of 10")
        a, b = (statistics.median(decided[s]) * 1000 for s in (True, False))
        print(f"(c) next_item + decide per item: sealed {a:.0f} ms vs clear {b:.0f} ms (x{a / b:.2f}), median of "
              f"{args.decisions}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
