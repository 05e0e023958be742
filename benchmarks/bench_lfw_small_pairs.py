"""10-fold verification accuracy on an LFW-style pairs file built from ``lfw_small``.

The standard benchmark is ``facetrail evaluate --lfw DIR`` on the full
deep-funneled LFW with its official ``pairs.txt``; the shared data here has
neither, and this machine has no internet. As the nearest measurable proxy,
this script writes an LFW-layout folder (a link to ``lfw_small/images`` and a
``pairs.txt`` in the official format: 10 folds with people split across
folds, as many matched pairs per fold as the smallest fold allows (lfw_small
has too few people for 300) and as many mismatched, seeded) and runs the real command
on it for each alignment, printing the 10-fold accuracy.

Usage: ``python benchmarks/bench_lfw_small_pairs.py [--data DIR] [--db PATH]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from dashboard.cli import main as facetrail


def write_pairs(images: Path, out: Path, seed: int = 0, folds: int = 10, per_fold: int = 300) -> None:
    """Write an official-format ``pairs.txt``: people are split across folds, as in LFW's View 2."""
    rng = random.Random(seed)
    people: dict[str, list[int]] = defaultdict(list)
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        for image in sorted(folder.glob(f"{folder.name}_*.jpg")):
            people[folder.name].append(int(image.stem.rsplit("_", 1)[1]))
    names = sorted(people)
    rng.shuffle(names)
    groups = [names[i::folds] for i in range(folds)]
    chosen = []
    for group in groups:
        # every distinct same-person pair of this fold's people; lfw_small has fewer than 300 per fold
        every = [(n, a, b) for n in group for i, a in enumerate(people[n]) for b in people[n][i + 1 :]]
        matched = sorted(rng.sample(every, min(per_fold, len(every))))
        mismatched: set[tuple[str, int, str, int]] = set()
        while len(mismatched) < len(matched):
            n1, n2 = sorted(rng.sample(group, 2))
            mismatched.add((n1, rng.choice(people[n1]), n2, rng.choice(people[n2])))
        chosen.append((matched, sorted(mismatched)))
    size = min(len(m) for m, _ in chosen)  # the format needs the same count in every fold
    lines = [f"{folds}\t{size}"]
    for matched, mismatched in chosen:
        lines += [f"{n}\t{a}\t{b}" for n, a, b in matched[:size]]
        lines += [f"{n1}\t{a}\t{n2}\t{b}" for n1, a, n2, b in mismatched[:size]]
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--db", default="benchmarks/out/embedding-cache.duckdb", help="working database (cache)")
    args = parser.parse_args()
    source = (Path(args.data) / "lfw_small" / "images").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lfw"
        root.mkdir()
        (root / "images").symlink_to(source, target_is_directory=True)
        write_pairs(source, root / "pairs.txt")
        for alignment in ("dlib_5pt", "deepface"):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = facetrail(
                    [
                        "evaluate",
                        "--lfw",
                        str(root),
                        "--db",
                        args.db,
                        "--alignment",
                        alignment,
                        "--bootstrap",
                        "0",
                        "--no-store",
                        "--operator",
                        "facetrail-maintainers",
                        "--purpose",
                        "LFW-style accuracy proxy",
                        "--json",
                    ]
                )
            if code != 0:
                raise SystemExit(f"evaluate --lfw failed for {alignment} (exit {code}): {out.getvalue()[-500:]}")
            rows = json.loads(out.getvalue())
            accuracy = [r for r in rows if r.get("kind") == "lfw_10fold"]
            keep = ("accuracy", "accuracy_std", "pairs", "pairs_with_failed_image", "threshold")
            summary = {k: accuracy[0].get(k) for k in keep} if accuracy else rows[-1]
            print(f"{alignment:9} {json.dumps(summary)}")


if __name__ == "__main__":
    main()
