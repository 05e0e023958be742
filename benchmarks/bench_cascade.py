"""What the detector cascade costs: enrolment throughput with and without it, in one run.

Enrols ``congress_small`` and ``lfw_small`` into fresh galleries (empty cache,
``--workers`` processes) twice per dataset: with today's single detector
(``Dlib/dlib/dlib_5pt``, no fallback) and with the default cascade
(:data:`core.engine.DEFAULT_FALLBACKS` after dlib's HOG detector). Prints
images/s, failures to acquire, how many faces each detector found, and the
ratio cascade / single detector (target: >= 0.8x; the fallback runs only where
HOG finds no face). ``--repeats`` alternates the two orders to even out a
noisy machine; the ratio of the median rates is reported.

Usage: ``python benchmarks/bench_cascade.py [--data DIR] [--workers 2] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from core import Database, Engine, GalleryStore, default_config, enroll_images, read_manifest
from core.engine import DEFAULT_FALLBACKS

DATASETS = {"congress_small": "bioguide_id", "lfw_small": "identity"}


def enrol_once(engine: Engine, images: list, workers: int) -> tuple[float, int, Counter[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = GalleryStore(Database(Path(tmp) / "bench.duckdb"))
        store.create("bench", engine.config)
        t0 = time.perf_counter()
        report = enroll_images(engine, store, "bench", images, workers=workers)
        seconds = time.perf_counter() - t0
        # which detector found each enrolled face: from the cache the enrolment filled
        hashes = [f["image_sha256"] for f in store.faces("bench")]
        found = store.cache.get_many(hashes, engine.config.embedding_key)
        by_detector = Counter(o.face.detector for o in found.values() if o.face is not None)
    return len(images) / seconds, len(report.failed), by_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    single = Engine(default_config(fallback_detectors=()))
    cascade = Engine(default_config(fallback_detectors=DEFAULT_FALLBACKS))
    print(f"single: {single.config.name}; cascade: {cascade.config.name}; {args.workers} workers, {os.cpu_count()} cores")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for name in args.datasets.split(","):
        images = read_manifest(Path(args.data) / name / "labels.csv", DATASETS[name])
        rates: dict[str, list[float]] = {"single": [], "cascade": []}
        for repeat in range(args.repeats):
            order = [("single", single), ("cascade", cascade)]
            if repeat % 2:
                order.reverse()
            for label, engine in order:
                rate, failed, by_detector = enrol_once(engine, images, args.workers)
                rates[label].append(rate)
                print(
                    f"{name:15} {label:8} {len(images):5d} images {rate:6.2f} img/s  FTA {failed:3d}  "
                    f"found by {dict(sorted(by_detector.items()))}",
                    flush=True,
                )
        ratio = statistics.median(rates["cascade"]) / statistics.median(rates["single"])
        print(f"{name:15} cascade / single enrolment throughput: {ratio:5.2f}x  (target >= 0.8x)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
