"""Benchmark: a 10-million-line vendor score file evaluated per group, vs the same counts with pandas groupby.

Run: ``.venv/bin/python benchmarks/bench_scores.py [--images 4473] [--bootstrap 0] [--workdir DIR]``

* A synthetic system's pair score file: every pair of 4,473 images of 1,000 people
  (10,001,628 lines, CSV ``image_a,image_b,score``, similarity 0-100 with two decimals,
  so there are many ties), and its manifest with three label columns (sex, race with
  multi-valued entries, an age band that varies per image).
* facetrail: :func:`audit.read_pair_scores` (streamed in 32 MB blocks by pyarrow) ->
  :func:`audit.listed_pairs` -> :func:`audit.evaluate_listed` with groupings sex, race,
  age, sex x race and three thresholds (``score=80`` and two calibrated: FMR 1e-3,
  1e-4). Target: <= 30 s on 2 cores, peak RSS reported.
* Baseline in the same run: ``pandas.read_csv`` of the same file, the labels joined in,
  and per-group genuine/impostor/false-match/false-non-match counts at the thresholds
  facetrail reported, by ``groupby``; the counts are checked to agree with facetrail's.

Each part runs in its own child process so that its peak RSS is its own
(``resource.getrusage``); times are wall-clock. The machine is shared: compare the
ratio, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

THRESHOLDS = ("score=80", "fmr=1e-3", "fmr=1e-4")
BY = (("sex",), ("race",), ("age",), ("sex", "race"))


def write_files(folder: Path, n_images: int, n_subjects: int, seed: int = 0) -> tuple[Path, Path, int]:
    """The manifest and the score file (every pair), written with pyarrow in row blocks."""
    rng = np.random.default_rng(seed)
    subj = np.concatenate([np.arange(n_subjects), rng.integers(0, n_subjects, n_images - n_subjects)])
    rng.shuffle(subj)
    sex = rng.choice(["F", "M"], n_subjects, p=[0.35, 0.65])
    race = rng.choice(["white", "black", "asian", "latino", "black; latino", ""], n_subjects,
                      p=[0.55, 0.15, 0.12, 0.1, 0.03, 0.05])
    age = rng.integers(20, 80, n_subjects)[subj] + rng.integers(0, 10, n_images)
    bands = pd.cut(age, [0, 30, 40, 50, 60, 200], labels=["<30", "30-39", "40-49", "50-59", "60+"]).astype(str)
    names = np.array([f"img/p{s:04d}/{k:05d}.jpg" for k, s in enumerate(subj)])
    pd.DataFrame({"image": names, "person": [f"p{s:04d}" for s in subj], "sex": sex[subj], "race": race[subj],
                  "age": bands}).to_csv(folder / "manifest.csv", index=False)
    dim = 32
    group_dir = {g: rng.standard_normal(dim) for g in sorted(set(race.tolist()))}
    centres = rng.standard_normal((n_subjects, dim)) + 0.5 * np.stack([group_dir[r] for r in race])
    x = centres[subj] + 1.1 * rng.standard_normal((n_images, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = folder / "scores.csv"
    lines = 0
    with pa.OSFile(str(path), "wb") as sink:
        sink.write(b"image_a,image_b,score\n")
        for r0 in range(0, n_images - 1, 256):
            rows = np.arange(r0, min(n_images - 1, r0 + 256))
            i = np.repeat(rows, n_images - 1 - rows)
            j = np.concatenate([np.arange(r + 1, n_images) for r in rows])
            score = np.round(np.clip(50.0 + 50.0 * np.einsum("ij,ij->i", x[i], x[j]) * 1.6, 0, 100), 2)
            table = pa.table({"image_a": names[i], "image_b": names[j], "score": score})
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
            lines += i.size
    return folder / "manifest.csv", path, lines


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def facetrail_part(manifest: str, scores: str, bootstrap: int, out: Any) -> None:
    from audit import (
        EvaluationConfig,
        ScoreConvention,
        evaluate_listed,
        listed_pairs,
        load_label_manifest,
        parse_threshold,
        read_pair_scores,
    )

    t0 = time.perf_counter()
    ds = load_label_manifest(manifest, "person")
    t1 = time.perf_counter()
    pf = read_pair_scores(scores, ds.table["image"].tolist(), ds.subjects)
    t2 = time.perf_counter()
    pairs = listed_pairs(pf, ds, ["sex", "race", "age"], ScoreConvention("similarity"))
    t3 = time.perf_counter()
    cfg = EvaluationConfig(by=BY, thresholds=tuple(parse_threshold(t) for t in THRESHOLDS), include_default=False,
                           bootstrap=bootstrap)
    report = evaluate_listed(pairs, cfg)
    t4 = time.perf_counter()
    rows = [{k: r[k] for k in ("pairing", "grouping", "group_name", "threshold_name", "threshold", "genuine_pairs",
                               "false_non_matches", "impostor_pairs", "false_matches")}
            for r in report.rates if r["pairing"] != "cross"]
    out.put({"times": {"manifest": t1 - t0, "read": t2 - t1, "pairs": t3 - t2, "evaluate": t4 - t3,
                       "total": t4 - t0}, "peak_rss_mb": _peak_mb(), "rows": rows, "pairs": int(pf.score.size)})


def pandas_part(manifest: str, scores: str, thresholds: dict[str, float], out: Any) -> None:
    t0 = time.perf_counter()
    labels = pd.read_csv(manifest, keep_default_na=False).set_index("image")
    df = pd.read_csv(scores)
    t1 = time.perf_counter()
    for side in ("a", "b"):
        joined = labels.loc[df[f"image_{side}"]]
        for c in ("person", "sex", "race", "age"):
            df[f"{c}_{side}"] = joined[c].to_numpy()
    df["genuine"] = df["person_a"] == df["person_b"]
    for name, t in thresholds.items():
        df[f"match_{name}"] = df["score"] >= t
    rows = []
    groupings = {"all": None, "sex": ["sex"], "race": ["race"], "age": ["age"], "sex x race": ["sex", "race"]}
    for grouping, cols in groupings.items():
        if cols is None:
            sub, keys = df, None
        else:
            same = np.ones(len(df), dtype=bool)
            for c in cols:
                same &= (df[f"{c}_a"] == df[f"{c}_b"]).to_numpy()
            sub = df[same]
            keys = [sub[f"{c}_a"].replace("", "unknown") for c in cols]
        for name in thresholds:
            m = sub[f"match_{name}"]
            frame = pd.DataFrame({"genuine": sub["genuine"], "fnm": sub["genuine"] & ~m, "imp": ~sub["genuine"],
                                  "fm": ~sub["genuine"] & m})
            counts = frame.groupby(keys).sum() if keys is not None else frame.sum().to_frame().T
            for key, c in counts.iterrows():
                if cols is None:
                    group = "all"
                else:
                    values = key if isinstance(key, tuple) else (key,)
                    group = ", ".join(f"{col}={v}" for col, v in zip(cols, values, strict=True))
                rows.append({"grouping": grouping, "group_name": group, "threshold_name": name,
                             "genuine_pairs": int(c["genuine"]), "false_non_matches": int(c["fnm"]),
                             "impostor_pairs": int(c["imp"]), "false_matches": int(c["fm"])})
    t2 = time.perf_counter()
    out.put({"times": {"read": t1 - t0, "count": t2 - t1, "total": t2 - t0}, "peak_rss_mb": _peak_mb(), "rows": rows})


def _child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return dict(result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4473, help="images (every pair is a line: n(n-1)/2)")
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--bootstrap", type=int, default=0, help="subject bootstrap resamples (0: counts only)")
    ap.add_argument("--workdir", help="keep the generated files here (default: a temporary folder, deleted)")
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    folder = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_scores_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        if (folder / "scores.csv").is_file() and (folder / "manifest.csv").is_file():
            manifest, scores = folder / "manifest.csv", folder / "scores.csv"
            lines = sum(1 for _ in open(scores, "rb")) - 1
        else:
            manifest, scores, lines = write_files(folder, args.images, args.subjects)
        print(f"score file: {lines:,} pair lines, {scores.stat().st_size / 1e6:,.0f} MB "
              f"(written in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores")
        ft = _child(facetrail_part, str(manifest), str(scores), args.bootstrap)
        times = ft["times"]
        print(f"facetrail: {times['total']:.1f} s (read {times['read']:.1f}, pairs {times['pairs']:.1f}, "
              f"evaluate {times['evaluate']:.1f}; bootstrap {args.bootstrap}), peak RSS {ft['peak_rss_mb']:,.0f} MB, "
              f"{len(ft['rows'])} rows, target <= 30 s: {'met' if times['total'] <= 30 else 'NOT met'}")
        if args.skip_pandas:
            return
        thresholds = {r["threshold_name"]: r["threshold"] for r in ft["rows"] if r["pairing"] == "all"}
        pdr = _child(pandas_part, str(manifest), str(scores), thresholds)
        print(f"pandas groupby: {pdr['times']['total']:.1f} s (read {pdr['times']['read']:.1f}, "
              f"count {pdr['times']['count']:.1f}), peak RSS {pdr['peak_rss_mb']:,.0f} MB")
        print(f"ratio pandas / facetrail: time {pdr['times']['total'] / times['total']:.2f}x, "
              f"peak RSS {pdr['peak_rss_mb'] / ft['peak_rss_mb']:.2f}x")
        key = ("grouping", "group_name", "threshold_name")
        mine = {tuple(r[k] for k in key): r for r in ft["rows"] if r["pairing"] in ("all", "within")}
        theirs = {tuple(r[k] for k in key): r for r in pdr["rows"]}
        fields = ("genuine_pairs", "false_non_matches", "impostor_pairs", "false_matches")
        agree = all(all(mine[k][f] == theirs[k][f] for f in fields) for k in theirs if k in mine)
        missing = sorted(set(theirs) - set(mine))
        print(f"counts agree on all {len(theirs)} pandas rows: {agree and not missing}"
              + (f" (missing in facetrail: {missing[:3]})" if missing else ""))
        print(json.dumps({"facetrail": ft["times"], "pandas": pdr["times"], "peak_rss_mb": {
            "facetrail": ft["peak_rss_mb"], "pandas": pdr["peak_rss_mb"]}}, indent=None))
    finally:
        if not args.workdir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
