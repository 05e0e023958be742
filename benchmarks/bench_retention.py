"""Benchmarks of retention schedules and signed receipts (issue 11, item 3).

A log of N signed search records (default 200,000, written in bulk like ``bench_audit``'s
``build_log``) on gallery ``g``, whose candidates are subjects ``s0, s1, ...``; gallery ``g``
holds S subjects (default 2,000) under a schedule of one day after the last interaction, and
a twin gallery the same S subjects without one. All figures with a baseline in the same run:

(a) Receipt of one erasure record at the head of the log: :func:`audit.build_receipt` +
    :func:`audit.verify_receipt` against a one-record verifiable excerpt of the same record
    (``write_excerpt`` + ``verify_excerpt``: the same RFC 6962 proof machinery).
(b) Retention dry run (what is due) against decoding every search record of the gallery
    (``log.list(action=search, gallery=g)``, what a full scan of interactions costs): in the
    worst case, every record falls inside the window the run must read (the records' day just
    before the cut-off: within the week of slack), and in the usual case (records older than
    the window). Enrolment times are moved back a year for this (a benchmark's set-up).
(c) The run erasing the S due subjects (crypto-shredding, one ``retention`` record) against
    the same S erasures of the twin gallery with ``GalleryStore.delete_subject`` and one flush.

Usage: .venv/bin/python benchmarks/bench_retention.py [--records N] [--subjects S] [--dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_audit import CONFIG, FACE, build_log  # noqa: E402

from audit import AuditContext, Runtime, build_receipt, retention_run, set_gallery_retention  # noqa: E402
from audit.accounts import Actor, CredentialStore, UserStore  # noqa: E402
from audit.retention import verify_receipt  # noqa: E402
from audit.trail.excerpt import verify_excerpt, write_excerpt  # noqa: E402
from audit.trail.store import AuditFilter  # noqa: E402
from core import Embedding, EnrollItem, Settings  # noqa: E402

HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CTX = AuditContext(purpose="retention benchmark")


def actor(rt: Runtime, name: str, role: str) -> Actor:
    user = UserStore(rt.db, hasher=HASHER).add(name, role, f"{name}-password-long")
    return CredentialStore(rt.db).issue(user, "password_session", lifetime=timedelta(hours=2),
                                        idle=timedelta(hours=1), created_by=name)


def timed(fn, repeat: int = 1) -> float:  # noqa: ANN001
    """Median seconds of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--subjects", type=int, default=2_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-retention-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    log = build_log(folder, args.records, name="retention")
    log.db.close()
    print(f"log of {args.records:,} signed records written in {time.perf_counter() - t:.1f} s", flush=True)
    settings = dataclasses.replace(Settings.from_env().with_db(folder / "retention.duckdb"),
                                   audit_key=folder / "retention.key")
    rt = Runtime(settings)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.subjects, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for name in ("g", "twin"):
        rt.galleries.create(name, CONFIG)
        rt.galleries.enroll(name, [EnrollItem(f"s{i}", Embedding(x[i], f"{i:064x}", FACE, 1, CONFIG), f"{i}.jpg")
                                   for i in range(args.subjects)])
    rt.galleries.flush()
    admin, dpo = actor(rt, "root", "admin"), actor(rt, "dpo", "auditor")
    set_gallery_retention(rt, "g", CTX, after_days=1, actor=admin)
    later = datetime.now(UTC) + timedelta(days=2)

    # (a) receipt vs one-record excerpt, of the erasure at the head
    from audit import AuditedEngine, AuditSession  # noqa: PLC0415

    erased = AuditedEngine(AuditSession(rt.log, CTX, admin), rt.engine(), rt.galleries).delete_subject("twin", "s0")
    pem = rt.log.public_key_pem()
    out = folder / "receipt.json"
    receipt_build = timed(lambda: out.write_text(json.dumps(build_receipt(rt.log, erased.seq))), 5)
    receipt_verify = timed(lambda: verify_receipt(out, pem), 5)
    assert verify_receipt(out, pem).ok
    excerpt = folder / "excerpt.json"
    excerpt_build = timed(lambda: write_excerpt(rt.log, excerpt, AuditFilter(after_seq=erased.seq - 1)), 5)
    excerpt_verify = timed(lambda: verify_excerpt(excerpt, pem), 5)
    print(f"(a) receipt of record #{erased.seq:,} (median of 5): build {receipt_build * 1e3:.0f} ms, verify "
          f"{receipt_verify * 1e3:.1f} ms; one-record excerpt (baseline): build {excerpt_build * 1e3:.0f} ms, "
          f"verify {excerpt_verify * 1e3:.1f} ms; ratio build {receipt_build / excerpt_build:.2f}x, verify "
          f"{receipt_verify / excerpt_verify:.2f}x", flush=True)

    # (b) dry run vs decoding the gallery's search records
    with rt.db.connect() as con:
        con.execute("UPDATE gallery_faces SET enrolled_at = enrolled_at - INTERVAL 400 DAY")
    full = timed(lambda: rt.log.list(AuditFilter(action="search", gallery="g")))
    for label, when in (("worst case, every record in the window", datetime(2026, 1, 3, tzinfo=UTC)),
                        ("usual case, records older than the window", later)):
        due: dict = {}
        dry = timed(lambda when=when, due=due: due.update(retention_run(rt, CTX, dry_run=True, actor=dpo,
                                                                        clock=lambda: when)))
        assert len(due["subjects"]) == args.subjects, len(due["subjects"])
        print(f"(b) dry run over {args.records:,} records ({label}), {args.subjects:,} subjects due: {dry:.2f} s; "
              f"decoding every search record of the gallery (baseline): {full:.2f} s; ratio {dry / full:.2f}x",
              flush=True)

    # (c) the run erasing S subjects vs the same erasures of the twin gallery
    done: dict = {}
    ran = timed(lambda: done.update(retention_run(rt, CTX, actor=dpo, clock=lambda: later)))
    assert len(done["subjects"]) == args.subjects and rt.galleries.info("g").size == 0

    def plain() -> None:
        for i in range(1, args.subjects):
            rt.galleries.delete_subject("twin", f"s{i}")
        rt.galleries.flush()

    base = timed(plain)
    print(f"(c) run erasing {args.subjects:,} subjects: {ran:.2f} s ({ran / args.subjects * 1e3:.2f} ms/subject); "
          f"{args.subjects - 1:,} plain delete_subject + flush (baseline): {base:.2f} s "
          f"({base / (args.subjects - 1) * 1e3:.2f} ms/subject); ratio {ran / base:.2f}x", flush=True)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rt.close()


if __name__ == "__main__":
    main()
