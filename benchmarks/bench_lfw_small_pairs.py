"""10-fold verification accuracy on an LFW-style pairs file built from ``lfw_small``.

The standard benchmark is ``facetrail evaluate --lfw DIR`` on the full
deep-funneled LFW with its official ``pairs.txt``; the shared data here has
neither, and this machine has no internet. As the nearest measurable proxy,
this script writes an LFW-layout folder (a link to ``lfw_small/images`` and a
``pairs.txt`` in the official format: 10 folds with people split across
folds, as many matched pairs per fold as the smallest fold allows (lfw_small
has too few people for 300) and as many mismatched, seeded) and evaluates it
through the runner ``facetrail evaluate --lfw`` calls (:func:`audit.run_evaluation`,
recorded in the working database's audit log) for, in one run:

- ``today``: the pipeline before issue 16 (``Dlib/dlib/dlib_5pt``: HOG alone, one chip;
  ``--no-today`` leaves it out), the largest face of each image;
- ``default/largest``: :func:`core.default_config` (detector cascade, mirror averaging),
  the largest face of each image (``--subject-face largest``: how the proxy was scored
  before datasets declared their subject-face rule);
- ``default/central``: the same configuration under the LFW folder's own rule, its
  central face (LFW's protocol: each image is a 250x250 crop centred on the labelled
  person; :data:`audit.evaluation.datasets.LFW_SUBJECT_FACE`, what ``facetrail evaluate --lfw``
  does; ``--no-central`` leaves it out);
- with ``--deepface``, also deepface's own alignment (``Dlib/dlib/deepface``), largest face.

Every row goes through the same runner with the same pairs; the rule each used is printed
with it (and recorded with its run). Before the ``default/central`` row, the outcomes of the
images in which ``default/largest`` found at most one face are copied to the central rule's
cache entries (``--no-seed`` embeds everything again): with one face or none, every face policy
embeds the same face or fails the same way, so only the images showing several people are
embedded again, and the row is still the runner's.

It prints the 10-fold accuracy over all pairs (a pair with an image in which no
face was found is a non-match) and over the pairs where both faces were found,
and the failures to acquire.

Usage: ``python benchmarks/bench_lfw_small_pairs.py [--data DIR] [--db PATH] [--deepface]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import tempfile
from collections import defaultdict
from pathlib import Path

from audit import DatasetSource, EvaluationRequest, EvaluationStores, Runtime, parse_threshold, run_evaluation
from audit.evaluation.datasets import load_lfw
from core import EmbeddingCache, Engine, FacePolicy, Settings


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
    for same, different in chosen:
        lines += [f"{n}\t{a}\t{b}" for n, a, b in same[:size]]
        lines += [f"{n1}\t{a}\t{n2}\t{b}" for n1, a, n2, b in different[:size]]
    out.write_text("\n".join(lines) + "\n")


def seed_single_faces(cache: EmbeddingCache | None, root: Path, largest_key: str, other: Engine) -> int:
    """Copy the cached outcomes of images with at most one face from ``largest_key`` to ``other``'s entries.

    With one face (or none) every face policy embeds that face (or fails alike), so these
    outcomes are exactly what ``other`` would compute; returns how many were copied.
    """
    if cache is None:
        return 0
    hashes = [str(h) for h in load_lfw(root, check_images=False).table["sha256"]]
    found = cache.get_many(hashes, largest_key)
    single = [o for o in found.values() if o.faces_detected <= 1]
    cache.put_many(other.cache_key, single)
    return len(single)


def sign_in_maintainer(runtime: Runtime) -> None:
    """Act as FACETRAIL_TOKEN's account; in a new working database, as a maintainer admin created now.

    Raises
    ------
    NotAuthenticated
        The working database has accounts and no token was given: set FACETRAIL_TOKEN
        (``facetrail --db DB login NAME --password-stdin --json`` prints one).
    """
    if runtime.settings.token:
        runtime.authenticate(runtime.settings.token)
        return
    password = secrets.token_urlsafe(24)  # nobody needs it again: the next run signs in with a token
    runtime.accounts.add_user(None, "facetrail-maintainers", "admin", password)
    session = runtime.sign_in("facetrail-maintainers", password)
    # a sign-in session expires after 30 idle minutes, shorter than one row on a loaded machine: act by an API token
    issued = runtime.accounts.issue_token(session, "facetrail-maintainers", label="benchmarks", days=7).result
    runtime.authenticate(issued.token)
    print(f"FACETRAIL_TOKEN for the next run on {runtime.settings.db}: {issued.token}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--db", default="benchmarks/out/embedding-cache.duckdb", help="working database (cache)")
    parser.add_argument("--deepface", action="store_true", help="also deepface's alignment (slow)")
    parser.add_argument("--no-today", action="store_true", help="leave out today's pipeline (its row is bench_variants' base)")
    parser.add_argument("--no-central", action="store_true", help="leave out the 'central' face policy")
    parser.add_argument("--no-seed", action="store_true",
                        help="embed every image again for the central row (default: only those with several faces)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    source = (Path(args.data) / "lfw_small" / "images").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lfw"
        root.mkdir()
        (root / "images").symlink_to(source, target_is_directory=True)
        write_pairs(source, root / "pairs.txt")
        runtime = Runtime(Settings.from_env().with_db(args.db))
        sign_in_maintainer(runtime)
        session = runtime.session(runtime.context(purpose="LFW-style accuracy proxy"))
        stores = EvaluationStores.on(runtime.db)
        default = runtime.engine()
        rows: dict[str, tuple[Engine, FacePolicy | None]] = {}
        if not args.no_today:
            rows["today"] = (runtime.engine(fallback_detectors=(), mirror_average=False), "largest")
        rows["default/largest"] = (default, "largest")
        if not args.no_central:
            rows["default/central"] = (default, None)  # the LFW folder's own rule
        if args.deepface:
            rows["deepface"] = (runtime.engine("Dlib", "dlib", "deepface"), "largest")
        keep = ("accuracy", "accuracy_std", "accuracy_both_found", "accuracy_both_found_std", "pairs",
                "pairs_with_failed_image", "pairs_both_found", "threshold")
        for label, (engine, subject_face) in rows.items():
            request = EvaluationRequest(DatasetSource(lfw=root, subject_face=subject_face),
                                        thresholds=(parse_threshold("fmr=1e-3"),), include_default=False,
                                        bootstrap=0, store=False)
            if label == "default/central" and not args.no_seed and "default/largest" in rows:
                seeded = seed_single_faces(stores.cache, root, engine.cache_key, engine.with_face_policy("central"))
                print(f"{'':15} {seeded} images with at most one face taken from default/largest", flush=True)
            run = run_evaluation(request, engine, stores, session)
            ten_fold = run.report.lfw_accuracy() or {}
            fta = next((r for r in run.report.fta_rows if r["grouping"] == "all"), {})
            print(f"{label:15} {engine.config.name}, subject face {run.report.run['subject_face']} "
                  f"({run.report.run['subject_face_reason']}): FTA {fta.get('failures')} of {fta.get('images')} images")
            print(f"{'':15} {json.dumps({k: ten_fold.get(k) for k in keep})}", flush=True)
        runtime.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
