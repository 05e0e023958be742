"""Benchmarks of sealed personal fields in audit records (issue 11.1, :mod:`audit.trail.sealed`).

Every figure is printed with a baseline measured in the same run and process:

(a) Signed append of a search record with 10 candidates (subject and face ids sealed under
    their subjects' field keys) against the same append with sealing switched off.
(b) Reading records back (``AuditLog.list``: decode, and open every token) against the same
    records written unsealed and read the same way.
(c) An audited erasure of one subject (``AuditedEngine.delete_subject``: the rows, the gallery
    key, the log field key, the record) in a gallery of N faces (default 100,000), against the
    unaudited ``GalleryStore.delete_subject`` of the same gallery size. Target: <= 1 s.

Usage: .venv/bin/python benchmarks/bench_sealed.py [--appends N] [--reads N] [--faces N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import AuditContext, AuditedEngine, AuditSession  # noqa: E402
from audit.accounts import CredentialStore, UserStore  # noqa: E402
from audit.trail import log as trail_log  # noqa: E402
from audit.trail.convert import candidate_fields, gallery_fields  # noqa: E402
from audit.trail.log import AuditLog  # noqa: E402
from audit.trail.sealed import seal_fields  # noqa: E402
from benchmarks.synthetic import CONFIG, FACE  # noqa: E402
from core import Database, Embedding, Engine, EnrollItem, GalleryStore  # noqa: E402
from core.results import Candidate, GalleryRef  # noqa: E402

GALLERY = GalleryRef("g", "1-" + "ab" * 16, 100_000)


def search_fields(i: int) -> dict[str, Any]:
    return {"action": "search", "outcome": "ok", "operator": "olga", "purpose": "benchmark", "case_ref": "B-1",
            "gallery": gallery_fields(GALLERY), "model_config": CONFIG.to_dict(), "probe_sha256": [f"{i:064x}"],
            "faces_found": 1, "latency_ms": 1.5, "details": {"top_k": 10},
            "candidates": [candidate_fields(Candidate(f"subject{(i * 10 + r) % 5000:07d}", f"{i:014d}{r:06d}",
                                                      0.1 + r / 100, 0.9 - r / 100, r + 1)) for r in range(10)]}


def unsealed(fields: dict[str, Any], keys: object, tokens: object = None) -> dict[str, Any]:
    return dict(fields)


def sealing(on: bool) -> None:
    """Switch the log's sealing on or off (the baseline appends exactly as before sealing)."""
    setattr(trail_log, "seal_fields", seal_fields if on else unsealed)  # noqa: B010


def timed(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def bench_append(root: Path, n: int) -> None:
    logs = {on: AuditLog(Database(str(root / f"append-{on}.duckdb")), key_path=root / f"append-{on}.key")
            for on in (True, False)}
    subjects = [("g", f"subject{k:07d}") for k in range(5000)]
    logs[True].field_keys.keys_for(subjects, create=True)  # made when the subjects were enrolled, not per search
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(n + 20):  # interleaved, so load changes hit both alike; the first 20 warm up
        for on in (True, False):
            sealing(on)
            took = timed(partial(logs[on].append, search_fields(i)))
            if i >= 20:
                times[on].append(took)
    sealing(True)
    sealed, plain = (statistics.median(times[on]) * 1000 for on in (True, False))
    print(f"(a) signed append, search with 10 candidates: sealed p50 {sealed:.2f} ms vs unsealed {plain:.2f} ms "
          f"(x{sealed / plain:.2f}; +{sealed - plain:.2f} ms) over {n} appends each")


def bench_read(root: Path, n: int) -> None:
    logs = {}
    for on in (True, False):
        sealing(on)
        log = AuditLog(Database(str(root / f"read-{on}.duckdb")), key_path=root / f"read-{on}.key")
        log.field_keys.keys_for([("g", f"subject{k:07d}") for k in range(5000)], create=True)
        for i in range(n):
            log.append(search_fields(i))
        logs[on] = log
    sealing(True)
    rounds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for on in (True, False):
            fresh = AuditLog(logs[on].db, key_path=logs[on].key_path)  # no cached ciphers
            rounds[on].append(timed(fresh.list))
    sealed, plain = (statistics.median(rounds[on]) for on in (True, False))
    print(f"(b) AuditLog.list of {n:,} search records (10 candidates each): sealed {sealed:.2f} s "
          f"({n / sealed:,.0f} records/s) vs unsealed {plain:.2f} s (x{sealed / plain:.2f}), median of 3")


def bench_erasure(root: Path, n: int) -> None:
    x = np.random.default_rng(0).standard_normal((n, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    stores = {}
    for audited in (True, False):
        db = Database(str(root / f"erase-{audited}.duckdb"))
        store = GalleryStore(db)
        store.create("g", CONFIG)
        items = [EnrollItem(f"subject{i:07d}", Embedding(x[i], f"{i:064x}", FACE, 1, CONFIG), f"{i}.jpg")
                 for i in range(n)]
        for start in range(0, n, 100_000):
            store.enroll("g", items[start:start + 100_000])
        store.flush()
        stores[audited] = store
    db = stores[True].db
    log = AuditLog(db, key_path=root / "erase.key")
    admin = UserStore(db, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add("bench", "admin",
                                                                                         "bench-password")
    actor = CredentialStore(db).issue(admin, "password_session", lifetime=timedelta(hours=1),
                                      idle=timedelta(minutes=30), created_by="bench")
    engine = AuditedEngine(AuditSession(log, AuditContext(purpose="benchmark erasure", case_ref="B-1"), actor),
                           Engine(CONFIG), stores[True])
    log.field_keys.keys_for([("g", f"subject{i:07d}") for i in range(n)], create=True)  # as an audited enrolment
    for i in range(3):  # the subjects were searched: their ids are sealed in the log
        log.append({**search_fields(i), "candidates": [candidate_fields(Candidate(f"subject{i:07d}", "f", 0.1, 0.9,
                                                                                  1))]})
    times: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i in range(3):
        for audited, call in ((True, partial(engine.delete_subject, "g", f"subject{i:07d}")),
                              (False, partial(stores[False].delete_subject, "g", f"subject{i:07d}"))):
            c = time.process_time()
            times[audited].append(timed(call))
            cpu[audited].append(time.process_time() - c)
    erase_ms, plain = (statistics.median(times[a]) * 1000 for a in (True, False))
    erase_cpu, plain_cpu = (statistics.median(cpu[a]) * 1000 for a in (True, False))
    assert log.get(1).record.candidates[0].subject_id == "erased" and log.verify().ok
    print(f"(c) audited erasure of one subject of {n:,} faces (rows, gallery key, log field key, record): "
          f"{erase_ms:.0f} ms median of 3 (max {max(times[True]) * 1000:.0f} ms; target <= 1000 ms) vs "
          f"unaudited GalleryStore.delete_subject {plain:.0f} ms (x{erase_ms / plain:.2f}); CPU time "
          f"{erase_cpu:.0f} ms vs {plain_cpu:.0f} ms (x{erase_cpu / plain_cpu:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_append(Path(tmp), args.appends)
        bench_read(Path(tmp), args.reads)
        bench_erasure(Path(tmp), args.faces)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
