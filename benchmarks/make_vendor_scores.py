"""A stand-in vendor's score file: every pair of a dataset scored by another configuration of facetrail's engine.

Run: ``.venv/bin/python benchmarks/make_vendor_scores.py OUT.csv [--dataset congress_small] [--alignment deepface]``

An auditor evaluates a vendor from the scores the vendor's system wrote out. To show
``facetrail evaluate --scores`` on real faces without a vendor, this writes the file a
vendor would: facetrail's Dlib model behind a *different* alignment (or detector) than
facetrail's default, so its scores are not facetrail's own, as a CSV
``image_a,image_b,score`` with a similarity score from 0 to 100 on the vendor's own
scale: ``100 * (1 - d / SPAN)`` for cosine distance ``d``, clipped to [0, 100], two
decimals (vendors report rounded scores: many ties). With ``--span 0.4`` a score of 80
is a distance of 0.08, a little looser than facetrail's own 1:1 thresholds for Dlib.
Images with no face get no line (the vendor could not score them). Embeddings are cached in
``--cache`` (a facetrail database), so a second run is fast.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from audit.evaluation.datasets import load_manifest
from audit.evaluation.embedding import embed_dataset
from core.cache import EmbeddingCache
from core.engine import Engine, default_config
from core.storage.connection import Database

SUBJECT_COLUMNS = {"congress_small": "bioguide_id", "lfw_small": "identity"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the score file to write")
    ap.add_argument("--dataset", default="congress_small", choices=sorted(SUBJECT_COLUMNS))
    ap.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--alignment", default="deepface")
    ap.add_argument("--cache", default="vendor_cache.duckdb", help="facetrail database for the embedding cache")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--span", type=float, default=0.4, help="the cosine distance the vendor's scale puts at 0")
    args = ap.parse_args()
    t0 = time.perf_counter()
    dataset = load_manifest(Path(args.data) / args.dataset / "labels.csv", SUBJECT_COLUMNS[args.dataset])
    engine = Engine(default_config("Dlib", args.detector, args.alignment))
    embedded = embed_dataset(engine, dataset, cache=EmbeddingCache(Database(args.cache)), workers=args.workers)
    names = embedded.table["image"].astype(str).to_numpy()
    x = embedded.embeddings.astype(np.float32)
    i, j = np.triu_indices(len(x), 1)
    distance = 1.0 - np.einsum("ij,ij->i", x[i].astype(np.float64), x[j])
    score = np.round(np.clip(100.0 * (1.0 - distance / args.span), 0.0, 100.0), 2)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("image_a,image_b,score\n")
        out.writelines(f"{names[a]},{names[b]},{s:.2f}\n" for a, b, s in zip(i, j, score, strict=True))
    print(f"{args.out}: {len(i):,} pairs of {len(x)} images ({int((~embedded.ok).sum())} without a face) scored by "
          f"Dlib/{args.detector}/{args.alignment} (0-100, 0 at distance {args.span}) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
