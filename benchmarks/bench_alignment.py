"""dlib's 5-point face chips vs deepface's alignment: FNMR at FMR = 1e-3, overall and per group.

Same weights (model Dlib), same detector, one run. For each dataset the
threshold is calibrated to an overall FMR of 1e-3 on that dataset's impostor
pairs (all of them), separately for each alignment, and the FNMR at that
threshold is reported overall and per group (with 95% subject-bootstrap
intervals). Also prints the calibrated thresholds (which ``core/calibrations.json``
ships as defaults) and the achieved per-group FMR.

Usage: ``python benchmarks/bench_alignment.py [--data DIR] [--detector dlib] [--bootstrap 200] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.datasets import load_manifest
from audit.evaluation.embedding import embed_dataset, evaluate_embedded
from core import Database, Engine, GalleryStore, default_config

DATASETS = {
    "congress_small": ("bioguide_id", ["sex", "race_house_historian"]),
    "lfw_small": ("identity", ["sex", "race_usc_sail"]),
}


def run(data: Path, detector: str, bootstrap: int, cache_db: str) -> list[dict[str, Any]]:
    cache = GalleryStore(Database(cache_db)).cache
    rows: list[dict[str, Any]] = []
    for name, (subject, columns) in DATASETS.items():
        dataset = load_manifest(data / name / "labels.csv", subject, columns, check_images=False)
        for alignment in ("dlib_5pt", "deepface"):
            engine = Engine(default_config("Dlib", detector, alignment))
            t0 = time.perf_counter()
            embedded = embed_dataset(engine, dataset, cache=cache)
            seconds = time.perf_counter() - t0
            config = EvaluationConfig(
                by=tuple((c,) for c in columns),
                thresholds=(parse_threshold("fmr=1e-3"),),
                bootstrap=bootstrap,
                cross_group=False,
            )
            report = evaluate_embedded(embedded, config)
            for r in report.rates:
                if r["threshold_name"] != "fmr=0.001" or r["pairing"] not in ("all", "within"):
                    continue
                rows.append(
                    {
                        "dataset": name,
                        "alignment": alignment,
                        "group": r["group_name"],
                        "threshold": r["threshold"],
                        "genuine_pairs": r["genuine_pairs"],
                        "impostor_pairs": r["impostor_pairs"],
                        "fnmr": r["fnmr"],
                        "fnmr_lo": r.get("fnmr_lo"),
                        "fnmr_hi": r.get("fnmr_hi"),
                        "fmr": r["fmr"],
                        "low_count": r.get("low_count"),
                        "fta": int((~embedded.ok).sum()),
                        "embed_seconds": seconds,
                        "dataset_fingerprint": dataset.fingerprint,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--detector", default="dlib")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cache-db", default="benchmarks/out/embedding-cache.duckdb")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    Path(args.cache_db).parent.mkdir(parents=True, exist_ok=True)
    rows = run(Path(args.data), args.detector, args.bootstrap, args.cache_db)
    print(f"{'dataset':15} {'alignment':9} {'group':28} {'thr':>7} {'gen':>6} {'imp':>9} {'FNMR':>7} {'95% CI':>17} {'FMR':>8}")
    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for r in rows:
        ci = f"[{r['fnmr_lo']:.3f}, {r['fnmr_hi']:.3f}]" if r["fnmr_lo"] is not None else ""
        flag = " (few pairs)" if r["low_count"] else ""
        print(
            f"{r['dataset']:15} {r['alignment']:9} {r['group'][:28]:28} {r['threshold']:7.4f} {r['genuine_pairs']:6d} "
            f"{r['impostor_pairs']:9d} {fmt(r['fnmr'], '7.4f'):>7} {ci:>17} {fmt(r['fmr'], '8.5f'):>8}{flag}"
        )
    for name in DATASETS:
        overall = {r["alignment"]: r for r in rows if r["dataset"] == name and r["group"] in ("all", "overall")}
        if {"dlib_5pt", "deepface"} <= overall.keys() and overall["dlib_5pt"]["fnmr"] > 0:
            ratio = overall["deepface"]["fnmr"] / overall["dlib_5pt"]["fnmr"]
            print(f"{name}: FNMR@FMR1e-3 deepface / dlib_5pt = {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
