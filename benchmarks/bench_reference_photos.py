"""Benchmark of gallery reference photos (issue 15 item 1 / issue 11 item 2).

Each enrolled face may keep its reference photo, sealed (AES-256-GCM) under its subject's key in
``gallery_faces.photo``. In the same run and process, with the same N faces (default 20,000, one
subject per face, a 20 KB photo each: about an LFW JPEG):

(a) enrolment with photos against enrolment without (the baseline): the cost of sealing and
    writing the photos;
(b) gallery load with photos against load without: the load reads only the embeddings' column,
    so the target is *unchanged within noise* (ratio ~1);
(c) erasure of one subject with photos against without (target: unchanged, <= 1 s);
(d) one photo opened for a reviewer (:meth:`core.gallery.GalleryStore.photo`): median time.

Usage: .venv/bin/python benchmarks/bench_reference_photos.py [--faces N] [--photo-bytes B] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import CONFIG, DIMS, FACE  # noqa: E402
from core import Database, Embedding, EnrollItem, GalleryStore  # noqa: E402


def items(n: int, photo_bytes: int, with_photos: bool) -> list[EnrollItem]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, DIMS)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    photo = os.urandom(photo_bytes) if with_photos else None  # incompressible, like a JPEG
    return [EnrollItem(f"subject{i:07d}", Embedding(x[i], f"{i:064x}", FACE, 1, CONFIG), f"{i}.jpg",
                       photo=None if photo is None else photo[:-8] + i.to_bytes(8, "big")) for i in range(n)]


def run(folder: Path, n: int, photo_bytes: int, with_photos: bool) -> dict[str, float]:
    name = "photos" if with_photos else "plain"
    store = GalleryStore(Database(str(folder / f"{name}.duckdb")))
    store.create("g", CONFIG)
    batch = items(n, photo_bytes, with_photos)
    t = time.perf_counter()
    for start in range(0, n, 5_000):
        store.enroll("g", batch[start : start + 5_000])
    store.flush()
    enrol = time.perf_counter() - t
    loads = []
    for _ in range(3):
        fresh = GalleryStore(store.db)  # a new process's store: nothing cached
        t = time.perf_counter()
        fresh.load("g")
        loads.append(time.perf_counter() - t)
    face_ids = [f["face_id"] for f in store.faces("g")[:25]]
    reads = []
    if with_photos:
        for face_id in face_ids:
            t = time.perf_counter()
            assert store.photo("g", face_id) is not None
            reads.append(time.perf_counter() - t)
    t = time.perf_counter()
    store.delete_subject("g", "subject0000007")
    erase = time.perf_counter() - t
    size = (folder / f"{name}.duckdb").stat().st_size
    store.db.close()
    return {"enrol": enrol, "load": statistics.median(loads), "erase": erase,
            "read": statistics.median(reads) if reads else float("nan"), "mb": size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--photo-bytes", type=int, default=20_000)
    parser.add_argument("--dir", default=None, help="where the databases go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        base = run(folder, args.faces, args.photo_bytes, with_photos=False)
        with_photos = run(folder, args.faces, args.photo_bytes, with_photos=True)
    print(f"reference photos: {args.faces:,} faces, {args.photo_bytes:,}-byte photos, load average "
          f"{os.getloadavg()[0]:.1f}")
    for key, label in (("enrol", "enrolment"), ("load", "gallery load (median of 3)"),
                       ("erase", "erase one subject")):
        print(f"  {label:28s} with photos {with_photos[key]:8.3f} s   without {base[key]:8.3f} s   "
              f"ratio {with_photos[key] / base[key]:.2f}x")
    print(f"  {'database file':28s} with photos {with_photos['mb']:8.1f} MB  without {base['mb']:8.1f} MB")
    print(f"  one photo opened (median of 25): {with_photos['read'] * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
