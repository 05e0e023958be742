"""Enrolment throughput: facetrail vs a plain ``DeepFace.represent`` loop, in one run.

Enrols the 580 portraits of ``congress_small`` into a fresh gallery with
facetrail (2 processes, dlib 5-point chips, cache empty), then embeds the same
images with a plain ``DeepFace.represent`` loop using the same model and
detector (one process, deepface's alignment), then re-enrols the unchanged
images (everything from the cache). Prints images/s and the ratios.

Targets (issue 2): facetrail >= 1.8x the plain loop on 2 cores; re-enrolling
unchanged images >= 100x faster than the first enrolment.

Usage: ``python benchmarks/bench_enroll.py [--data DIR] [--baseline-limit N]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from core import Database, Engine, GalleryStore, enroll_images, read_manifest
from core.models import models_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--detector", default="dlib")
    parser.add_argument("--baseline-limit", type=int, default=0, help="embed only N images in the baseline (0: all)")
    args = parser.parse_args()

    images = read_manifest(Path(args.data) / "congress_small" / "labels.csv", "bioguide_id")
    paths = [i.path for i in images]
    engine = Engine()
    print(f"{len(paths)} images; facetrail config {engine.config.name}; {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        store = GalleryStore(Database(Path(tmp) / "bench.duckdb"))
        store.create("bench", engine.config)
        t0 = time.perf_counter()
        first = enroll_images(engine, store, "bench", images)
        t_first = time.perf_counter() - t0
        store.create("bench2", engine.config)
        t0 = time.perf_counter()
        again = enroll_images(engine, store, "bench2", images)
        t_again = time.perf_counter() - t0
    print(
        f"facetrail enrolment:      {len(first.enrolled)} faces in {t_first:7.2f} s = {len(paths) / t_first:6.2f} img/s "
        f"({len(first.failed)} failed)"
    )
    print(
        f"facetrail re-enrolment:   {again.from_cache} from cache in {t_again:7.3f} s = {len(paths) / t_again:8.1f} img/s"
    )

    os.environ["DEEPFACE_HOME"] = str(models_dir())
    os.environ["DEEPFACE_LOG_LEVEL"] = "40"
    from deepface import DeepFace  # noqa: PLC0415 (the baseline, imported last: it mutes warnings process-wide)

    baseline_paths = paths[: args.baseline_limit] if args.baseline_limit else paths
    DeepFace.represent(img_path=baseline_paths[0], model_name="Dlib", detector_backend=args.detector)  # load models
    t0 = time.perf_counter()
    for path in baseline_paths:
        DeepFace.represent(img_path=path, model_name="Dlib", detector_backend=args.detector)
    t_base = time.perf_counter() - t0
    base_rate = len(baseline_paths) / t_base
    print(
        f"plain DeepFace.represent: {len(baseline_paths)} images in {t_base:7.2f} s = {base_rate:6.2f} img/s "
        f"(Dlib + {args.detector}, models loaded before timing)"
    )
    print(f"ratio enrolment / plain loop:        {len(paths) / t_first / base_rate:6.2f}x  (target >= 1.8x)")
    print(f"ratio re-enrolment / first enrolment: {t_first / t_again:6.1f}x  (target >= 100x)")


if __name__ == "__main__":
    main()
