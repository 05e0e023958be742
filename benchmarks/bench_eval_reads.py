"""Benchmark: file reads and seconds to load and embed an evaluation dataset whose embeddings are cached.

An evaluation used to read each image four times: a PIL ``verify`` (dataset
validation), the dataset's SHA-256, ``embed_batch``'s SHA-256 and, on a cache
miss, the load for the model. The dataset loader now hashes and verifies from one
read and hands the hashes to ``Engine.embed_batch(known_hashes=...)``, so an image
whose embedding is cached is read once (twice when it must be embedded).

Both paths run in this process on the same images with a warm cache (random unit
vectors stored under each image's hash, so no model runs and the figure is the I/O
path alone): the baseline repeats the old sequence with the same functions
(``load_manifest(check_images=False)`` for the hash, a PIL ``verify`` per file,
``embed_batch`` without known hashes); the new one is what the runner does
(``load_manifest`` + ``embed_dataset``). Printed: opens per image, seconds (best of
``--repeat``) and the ratio. Files are in the page cache after the first pass, so
the ratio is mostly hashing and syscalls; on a cold disk it would be larger.

Usage: ``python benchmarks/bench_eval_reads.py [--data DIR] [--dataset lfw_small] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import audit.evaluation.datasets as datasets
import core.image
from audit.evaluation.datasets import load_manifest
from audit.evaluation.embedding import embed_dataset
from core import Database, EmbeddingCache, Engine, Face, default_config
from core.cache import CachedOutcome

SUBJECTS = {"lfw_small": "identity", "congress_small": "bioguide_id"}


def counting(opens: Counter[str]) -> Callable[[Any], Any]:
    real = core.image.open_regular

    def open_counted(path: Any) -> Any:
        opens[str(path)] += 1
        return real(path)

    return open_counted


def baseline(csv: Path, subject: str, engine: Engine, cache: EmbeddingCache) -> int:
    """The old sequence: hash in the loader, PIL verify each file, embed_batch hashing again."""
    dataset = load_manifest(csv, subject, check_images=False)
    paths = [str(p) for p in dataset.paths()]
    for p in paths:
        with open(p, "rb") as handle, Image.open(handle) as im:  # noqa: PTH123 (the old validation read)
            im.verify()
    return len(engine.embed_batch(paths, cache=cache, workers=1).embeddings)


def runner_path(csv: Path, subject: str, engine: Engine, cache: EmbeddingCache) -> int:
    """What run_evaluation does: one read per image in the loader, its hash passed on."""
    dataset = load_manifest(csv, subject)
    return int(embed_dataset(engine, dataset, cache=cache, workers=1).ok.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--dataset", default="lfw_small", choices=sorted(SUBJECTS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    csv = Path(args.data) / args.dataset / "labels.csv"
    subject = SUBJECTS[args.dataset]
    engine = Engine(default_config())
    cache = EmbeddingCache(Database(":memory:"))
    dataset = load_manifest(csv, subject, check_images=False)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(dataset), engine.config.dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache.put_many(engine.config.embedding_key, [
        CachedOutcome(sha, v, Face(0, 0, 10, 10, 0.99, "dlib"), 1, None, None)
        for sha, v in zip(dataset.table["sha256"], vectors, strict=True)
    ])
    n = len(dataset)
    print(f"{args.dataset}: {n} images, embeddings cached; cores {os.cpu_count()} (shared machine: compare ratios)")
    paths = (("baseline (old reads)", baseline), ("runner (one read)", runner_path))
    reads = {}
    for name, run in paths:
        opens: Counter[str] = Counter()
        original = (core.image.open_regular, datasets.open_regular)
        core.image.open_regular = datasets.open_regular = counting(opens)  # type: ignore[assignment]
        try:
            assert run(csv, subject, engine, cache) == n
        finally:
            core.image.open_regular, datasets.open_regular = original
        pil_reads = n if run is baseline else 0  # the old validation opened each file with PIL too
        reads[name] = (sum(opens.values()) + pil_reads) / n
    times: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _ in range(args.repeat):  # interleaved, so that load on the machine hits both alike
        for name, run in paths:
            t0 = time.perf_counter()
            run(csv, subject, engine, cache)
            times[name].append(time.perf_counter() - t0)
    for name, _ in paths:
        print(f"{name:22} {reads[name]:.2f} reads/image  best {min(times[name]):.3f} s  "
              f"median {sorted(times[name])[len(times[name]) // 2]:.3f} s")
    old, new = (min(times[name]) for name, _ in paths)
    print(f"ratio baseline / runner (best of {args.repeat}): {old / new:.2f}x")

if __name__ == "__main__":
    main()
