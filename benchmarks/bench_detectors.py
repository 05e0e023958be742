"""Which detector and alignment should be the default? Accuracy on congress_small.

For each offline detector x alignment (model Dlib, or ``--model Facenet``), embeds the 580 portraits of
``congress_small`` and reports, in one run:

- failures to acquire (no face found),
- rank-1 identification: each 2023 photo searched against a gallery of all 2019 photos,
- genuine pairs verified at deepface's built-in threshold,
- FNMR at the threshold where FMR = 1e-3 over all cross-person pairs (2019 x 2023),
- throughput (images/s, 2 processes).

Usage: ``python benchmarks/bench_detectors.py [--data DIR] [--detectors dlib,opencv,mtcnn]``
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

from core import BUILTIN_THRESHOLDS, Database, Engine, GalleryStore, default_config


def load_pairs(data: Path) -> list[tuple[str, str, str]]:
    rows: dict[str, dict[str, str]] = {}
    with open(data / "congress_small" / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["bioguide_id"], {})[Path(row["image"]).stem] = str(
                data / "congress_small" / row["image"]
            )
    return [(pid, imgs["c116"], imgs["c118"]) for pid, imgs in sorted(rows.items()) if {"c116", "c118"} <= imgs.keys()]


def measure(model: str, detector: str, alignment: str, pairs: list[tuple[str, str, str]]) -> dict[str, float]:
    engine = Engine(default_config(model, detector, alignment))
    cache = GalleryStore(Database(":memory:")).cache
    paths = [p for _, a, b in pairs for p in (a, b)]
    t0 = time.perf_counter()
    batch = engine.embed_batch(paths, cache=cache)
    elapsed = time.perf_counter() - t0
    ok = [(pid, a, b) for pid, a, b in pairs if a in batch.embeddings and b in batch.embeddings]
    old = np.stack([batch.embeddings[a].vector for _, a, _ in ok])
    new = np.stack([batch.embeddings[b].vector for _, _, b in ok])
    sims = new @ old.T  # probes (2023) x gallery (2019)
    rank1 = float(np.mean(np.argmax(sims, axis=1) == np.arange(len(ok))))
    genuine = np.diag(sims)
    impostor = sims[~np.eye(len(ok), dtype=bool)]
    builtin = 1.0 - BUILTIN_THRESHOLDS[model]
    # threshold at FMR = 1e-3: the similarity exceeded by 0.1% of impostor pairs
    cut = np.sort(impostor)[::-1][int(np.floor(1e-3 * impostor.size))]
    return {
        "fta": len(batch.failures),
        "rank1": rank1,
        "verified_builtin": float(np.mean(genuine >= builtin)),
        "fnmr_at_fmr_1e-3": float(np.mean(genuine <= cut)),
        "threshold_distance_at_fmr_1e-3": float(1.0 - cut),
        "images_per_s": len(paths) / elapsed,
        "people": len(ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--model", default="Dlib", choices=sorted(BUILTIN_THRESHOLDS))
    parser.add_argument("--detectors", default="dlib,opencv,mtcnn")
    parser.add_argument("--alignments", default="dlib_5pt,deepface")
    args = parser.parse_args()
    pairs = load_pairs(Path(args.data))
    print(f"congress_small: {len(pairs)} people, {2 * len(pairs)} images; model {args.model}")
    builtin = f"verif@{BUILTIN_THRESHOLDS[args.model]}"
    print(f"{'detector':8} {'alignment':9} {'FTA':>4} {'rank-1':>7} {builtin:>10} {'FNMR@FMR1e-3':>12} {'thr':>7} {'img/s':>6}")
    for detector in args.detectors.split(","):
        for alignment in args.alignments.split(","):
            r = measure(args.model, detector, alignment, pairs)
            print(
                f"{detector:8} {alignment:9} {r['fta']:4d} {r['rank1']:7.3f} {r['verified_builtin']:10.3f} "
                f"{r['fnmr_at_fmr_1e-3']:12.3f} {r['threshold_distance_at_fmr_1e-3']:7.4f} {r['images_per_s']:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
