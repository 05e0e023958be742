"""What the detector cascade costs: enrolment throughput with and without it, in one run.

Enrols ``congress_small`` and ``lfw_small`` into fresh galleries (empty cache,
``--workers`` processes) three times per dataset: with today's pipeline
(``Dlib/dlib/dlib_5pt``: HOG alone, no mirror averaging), with the cascade alone
(:data:`core.engine.DEFAULT_FALLBACKS` after dlib's HOG detector, no mirror
averaging) and with the new default (:func:`core.default_config`: the cascade and,
if :data:`core.engine.DEFAULT_MIRROR_AVERAGE`, mirror averaging). Prints images/s,
failures to acquire, how many faces each detector found, and each one's ratio to
today's pipeline (target for the cascade: >= 0.8x; the fallback runs only where
HOG finds no face). ``--repeats`` rotates the order to even out a noisy machine;
the ratio of the median rates is reported. ``--no-default`` measures today's
pipeline and the cascade only.

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
from core.engine import DEFAULT_FALLBACKS, DEFAULT_MIRROR_AVERAGE

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
    return len(images) / seconds, report.failures.count, by_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--no-default", action="store_true", help="leave out the new default (cascade + mirror)")
    args = parser.parse_args()
    engines = {
        "today": Engine(default_config(fallback_detectors=(), mirror_average=False)),
        "cascade": Engine(default_config(fallback_detectors=DEFAULT_FALLBACKS, mirror_average=False)),
    }
    if DEFAULT_MIRROR_AVERAGE and not args.no_default:
        engines["default"] = Engine(default_config())
    names = ", ".join(f"{label}: {e.config.name}" for label, e in engines.items())
    print(f"{names}; {args.workers} workers, {os.cpu_count()} cores")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for name in args.datasets.split(","):
        images = read_manifest(Path(args.data) / name / "labels.csv", DATASETS[name])
        rates: dict[str, list[float]] = {label: [] for label in engines}
        for repeat in range(args.repeats):
            order = list(engines.items())
            order = order[repeat % len(order) :] + order[: repeat % len(order)]
            for label, engine in order:
                rate, failed, by_detector = enrol_once(engine, images, args.workers)
                rates[label].append(rate)
                print(
                    f"{name:15} {label:8} {len(images):5d} images {rate:6.2f} img/s  FTA {failed:3d}  "
                    f"found by {dict(sorted(by_detector.items()))}  (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        today = statistics.median(rates["today"])
        for label in engines:
            if label != "today":
                ratio = statistics.median(rates[label]) / today
                target = "  (target >= 0.8x)" if label == "cascade" else ""
                print(f"{name:15} {label} / today enrolment throughput: {ratio:5.2f}x{target}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
