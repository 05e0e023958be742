"""Search latency on a synthetic gallery of 1,000,000 unit vectors (128-d).

Exact search: p50 latency of a top-10 query, and its ratio to one plain read of
the matrix (``matrix.sum()``, the memory-bandwidth floor), both measured in
this run. Target ratio <= 1.5.

Approximate search (usearch HNSW): p50 latency of a top-10 query (target
<= 2 ms) and recall@10 against exact search (target >= 0.99).

Usage: ``python benchmarks/bench_search.py [--n 1000000] [--queries 200]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.index import ApproxIndex, ExactIndex


def p50(samples: list[float]) -> float:
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--expansion-search", type=int, default=128)
    parser.add_argument("--skip-approx", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, 128), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, 128), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [str(i) for i in range(args.n)]

    exact = ExactIndex(128, capacity=args.n)
    exact.add(ids, ids, vectors)
    matrix = exact.matrix
    for q in queries[:5]:  # warm up caches and BLAS threads
        exact.search(q, 10)
        matrix.sum()
    floor, search = [], []
    for q in queries:
        t0 = time.perf_counter()
        matrix.sum()
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        exact.search(q, 10)
        search.append(time.perf_counter() - t0)
    print(f"gallery: {args.n:,} x 128 float32 ({matrix.nbytes / 1e6:.0f} MB)")
    print(f"matrix.sum() p50:        {p50(floor) * 1e3:8.2f} ms  (one read of the matrix)")
    print(f"exact top-10 p50:        {p50(search) * 1e3:8.2f} ms")
    print(f"ratio exact / read:      {p50(search) / p50(floor):8.2f}   (target <= 1.5)")

    if args.skip_approx:
        return
    t0 = time.perf_counter()
    approx = ApproxIndex(128, expansion_search=args.expansion_search)
    approx.add(ids, ids, vectors)
    build = time.perf_counter() - t0
    truth = [{h.face_id for h in exact.search(q, 10)} for q in queries]
    latency, recall = [], []
    for q, expected in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        hits = approx.search(q, 10)
        latency.append(time.perf_counter() - t0)
        recall.append(len(expected & {h.face_id for h in hits}) / 10)
    print(f"approx build:            {build:8.1f} s (usearch HNSW, connectivity 32, expansion_add 128)")
    print(
        f"approx top-10 p50:       {p50(latency) * 1e3:8.2f} ms  (target <= 2 ms; expansion_search {args.expansion_search})"
    )
    print(f"approx recall@10:        {np.mean(recall):8.4f}   (target >= 0.99)")
    print(f"ratio approx / exact:    {p50(latency) / p50(search):8.3f}")


if __name__ == "__main__":
    main()
