"""Benchmarks of the audit trail.

(a) Logging overhead per query: an audited fake-engine search vs the same search
    unaudited, interleaved in the same run, on a file database (target p50 <= 2 ms).
(b) ``AuditLog.verify`` throughput on a synthetic log of 1,000,000 records with a
    checkpoint every 100 (target >= 200,000 records/s), against a baseline measured
    in the same run: plain SHA-256 over the same record bytes, already in memory.
    Verify reads the records from DuckDB, recomputes every chained hash, the Merkle
    tree and every checkpoint's head and root, and checks the signatures anchoring the
    checkpoint chain (``all_signatures``: every one of the 10,000). The same verifier
    (``audit.trail.chain.verify_chain``) is also timed on the rows already in memory,
    which separates the hashing from the DuckDB read.

Usage: .venv/bin/python benchmarks/bench_audit.py [--records N] [--queries Q] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import AuditContext, AuditedEngine, AuditSession  # noqa: E402
from audit.accounts import CredentialStore, UserStore  # noqa: E402
from audit.trail.chain import GENESIS, MerkleFrontier, entry_hash, sign_checkpoint, verify_chain  # noqa: E402
from audit.trail.convert import candidate_fields, gallery_fields  # noqa: E402
from audit.trail.keys import fingerprint, load_or_create_private_key, load_public_key_pem  # noqa: E402
from audit.trail.log import AuditLog  # noqa: E402
from audit.trail.records import AuditRecord  # noqa: E402
from core import (  # noqa: E402
    Database,
    Embedding,
    Engine,
    EnrollItem,
    Face,
    GalleryStore,
    ModelConfig,
    ThresholdSource,
)
from core.results import Candidate, GalleryRef  # noqa: E402

FACE = Face(0, 0, 10, 10, 1.0, "dlib")
CONFIG = ModelConfig(model="Dlib", detector="dlib", alignment="dlib_5pt", threshold=0.3,
                     threshold_source=ThresholdSource(kind="user", description="benchmark"),
                     weights_sha256=(("bench.dat", "0" * 64),), versions=(("deepface", "bench"),))


def _units(n: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def record_fields(i: int) -> dict[str, object]:
    """A typical search record (one candidate), as the audited engine writes it."""
    return {
        "started_at": "2026-01-01T00:00:00.000000Z", "ended_at": "2026-01-01T00:00:00.000001Z",
        "action": "search", "outcome": "ok", "operator": "operator1", "purpose": "investigation",
        "case_ref": "C-1", "gallery": gallery_fields(GalleryRef("g", "fp", 10)),
        "model_config": CONFIG.to_dict(), "probe_sha256": [hashlib.sha256(str(i).encode()).hexdigest()],
        "faces_found": 1, "latency_ms": 1.5, "details": {"top_k": 10},
        "candidates": [candidate_fields(Candidate(f"s{i}", f"f{i}", 0.1, 0.9, 1))],
    }


def bench_overhead(folder: Path, queries: int) -> dict[str, float]:
    db = Database(folder / "overhead.duckdb")
    log = AuditLog(db, key_path=folder / "overhead.key")
    engine, galleries = Engine(CONFIG), GalleryStore(db)
    galleries.create("g", CONFIG)
    galleries.enroll("g", [EnrollItem(f"s{i}", Embedding(v, f"{i:064x}", FACE, 1, CONFIG), f"{i}.jpg")
                           for i, v in enumerate(_units(1000, 1))])
    bench = UserStore(db, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add("bench", "operator",
                                                                                          "bench-password")
    actor = CredentialStore(db).issue(bench, "password_session", lifetime=timedelta(hours=1),
                                      idle=timedelta(minutes=30), created_by="bench")
    audited = AuditedEngine(AuditSession(log, AuditContext(purpose="benchmark", case_ref="B-1"), actor), engine,
                            galleries)
    plain, logged = [], []
    probes = _units(queries + 20, 2)
    for i in range(queries + 20):
        probe = Embedding(probes[i], f"{i:064x}", FACE, 1, CONFIG)
        t0 = time.perf_counter()
        engine.search(galleries.load("g"), probe, top_k=10)
        t1 = time.perf_counter()
        audited.search("g", probe, top_k=10)
        t2 = time.perf_counter()
        if i >= 20:  # warm-up
            plain.append(t1 - t0)
            logged.append(t2 - t1)
    assert log.verify().ok
    # the floor: one bare committed insert of the same size through the same Database, same disk
    with db.connect() as con:
        con.execute("CREATE TABLE IF NOT EXISTS bench_floor (i BIGINT, h BLOB, r BLOB)")
    blob = log.get(1).canonical
    floor = []
    for i in range(min(queries, 300)):
        t0 = time.perf_counter()
        with db.connect() as con:
            con.execute("INSERT INTO bench_floor VALUES (?, ?, ?)", [i, bytes(32), blob])
        floor.append(time.perf_counter() - t0)
    p50_plain = statistics.median(plain) * 1e3
    p50_logged = statistics.median(logged) * 1e3
    over = sorted(b - a for a, b in zip(plain, logged, strict=True))
    return {
        "queries": queries,
        "unaudited_p50_ms": round(p50_plain, 4),
        "audited_p50_ms": round(p50_logged, 4),
        "overhead_p50_ms": round(statistics.median(over) * 1e3, 4),
        "overhead_p95_ms": round(over[int(len(over) * 0.95)] * 1e3, 4),
        "bare_committed_insert_p50_ms": round(statistics.median(floor) * 1e3, 4),
    }


def build_log(folder: Path, n: int, every: int = 100) -> AuditLog:
    """Write n valid records (and a checkpoint every ``every``) straight into the store, in bulk."""
    db = Database(folder / "verify.duckdb")
    log = AuditLog(db, key_path=folder / "verify.key", checkpoint_every=every)
    marker = 987654321987
    template = AuditRecord.from_dict({**record_fields(7), "seq": marker}).canonical()
    head, tail = template.split(str(marker).encode())
    key = load_or_create_private_key(log.key_path)
    key_id = fingerprint(key.public_key())
    prev = GENESIS
    cp_prev = GENESIS
    frontier = MerkleFrontier()
    chunk = 100_000
    with db.connect(transaction=True) as con:
        for start in range(1, n + 1, chunk):
            seqs, prevs, hashes, blobs = [], [], [], []
            cps: list[tuple[object, ...]] = []
            for seq in range(start, min(start + chunk, n + 1)):
                blob = head + str(seq).encode() + tail
                h = entry_hash(prev, blob)
                seqs.append(seq)
                prevs.append(prev)
                hashes.append(h)
                blobs.append(blob)
                frontier.append_hash(h)
                if seq % every == 0:
                    cp = sign_checkpoint(key, key_id, seq, h, frontier.root(), "2026-01-01T00:00:00.000000Z",
                                         cp_prev)
                    cps.append((seq, h, cp.merkle_root, cp.created_at, key_id, cp.signature, frontier.to_bytes(),
                                cp_prev))
                    cp_prev = cp.digest()
                prev = h
            rows = pa.table({"seq": pa.array(seqs, pa.int64()), "prev_hash": pa.array(prevs, pa.binary()),
                             "entry_hash": pa.array(hashes, pa.binary()), "record": pa.array(blobs, pa.binary())})
            con.register("bench_rows", rows)
            con.execute("INSERT INTO audit_log SELECT * FROM bench_rows")
            con.unregister("bench_rows")
            if cps:
                con.executemany("INSERT INTO audit_checkpoint_chain VALUES (?, ?, ?, ?, ?, ?, ?, ?)", cps)
    return log


def bench_verify(folder: Path, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    log = build_log(folder, n)
    build = time.perf_counter() - t0
    # baseline: plain sha256 over the same record bytes, already in memory
    blobs = [b for batch in log.store.scan() for b in batch.records]
    t0 = time.perf_counter()
    for b in blobs:
        hashlib.sha256(b).digest()
    baseline = time.perf_counter() - t0
    del blobs
    report = log.verify()
    assert report.ok and report.records == n, report
    prefetch = log.verify(parallel=True)
    assert prefetch.ok and prefetch.records == n, prefetch
    every = log.verify(all_signatures=True)
    assert every.ok and every.records == n, every
    # the same verifier on the rows already in memory: the hashing without the DuckDB read
    rows = list(log.store.scan())
    checkpoints, key = log.checkpoints(), load_public_key_pem(log.public_key_pem())
    t0 = time.perf_counter()
    in_memory = verify_chain(rows, checkpoints, key)
    in_memory_s = time.perf_counter() - t0
    assert in_memory.ok and in_memory.records == n, in_memory
    del rows
    return {
        "verify_all_signatures_s": round(every.seconds, 3),
        "verify_all_signatures_records_per_s": round(n / every.seconds),
        "verify_prefetch_s": round(prefetch.seconds, 3),
        "verify_prefetch_records_per_s": round(n / prefetch.seconds),
        "records": n,
        "checkpoints": report.checkpoints,
        "build_s": round(build, 2),
        "verify_s": round(report.seconds, 3),
        "verify_records_per_s": round(n / report.seconds),
        "baseline_sha256_s": round(baseline, 3),
        "baseline_records_per_s": round(n / baseline),
        "verify_vs_baseline": round(report.seconds / baseline, 2),
        "verify_in_memory_s": round(in_memory_s, 3),
        "verify_in_memory_records_per_s": round(n / in_memory_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the databases (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        load_before = os.getloadavg()[0]
        result = {"overhead": bench_overhead(folder, args.queries), "verify": bench_verify(folder, args.records)}
        shm = Path("/dev/shm")
        if shm.is_dir():
            with tempfile.TemporaryDirectory(dir=shm) as mem:
                result["overhead_tmpfs"] = bench_overhead(Path(mem), args.queries)
        result["machine"] = {"cpus": os.cpu_count(), "loadavg_1min_before": round(load_before, 2),
                             "loadavg_1min_after": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        o, v = result["overhead"], result["verify"]
        print(f"logging overhead per query: p50 {o['overhead_p50_ms']:.3f} ms (p95 {o['overhead_p95_ms']:.3f} ms); "
              f"unaudited p50 {o['unaudited_p50_ms']:.3f} ms, audited p50 {o['audited_p50_ms']:.3f} ms "
              f"over {o['queries']} queries (target <= 2 ms); a bare committed DuckDB insert on the same disk "
              f"takes p50 {o['bare_committed_insert_p50_ms']:.3f} ms")
        print(f"verify: {v['records']:,} records + {v['checkpoints']:,} checkpoints in {v['verify_s']:.2f} s = "
              f"{v['verify_records_per_s']:,.0f} records/s (target >= 200,000); baseline plain sha256 "
              f"{v['baseline_records_per_s']:,.0f} records/s; verify/baseline time ratio {v['verify_vs_baseline']}; "
              f"verify with a prefetch thread {v['verify_prefetch_records_per_s']:,.0f} records/s; checking all "
              f"{v['checkpoints']:,} signatures {v['verify_all_signatures_records_per_s']:,.0f} records/s; "
              f"the same verifier on rows already in memory {v['verify_in_memory_records_per_s']:,.0f} records/s")
        if "overhead_tmpfs" in result:
            t = result["overhead_tmpfs"]
            print(f"logging overhead on tmpfs (no disk flush; the software's own cost): p50 "
                  f"{t['overhead_p50_ms']:.3f} ms (p95 {t['overhead_p95_ms']:.3f} ms); bare insert there "
                  f"{t['bare_committed_insert_p50_ms']:.3f} ms")
        m = result["machine"]
        print(f"machine: {m['cpus']} CPUs, load average {m['loadavg_1min_before']} before, "
              f"{m['loadavg_1min_after']} after (other processes compete for the CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
