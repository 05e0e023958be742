"""Video search: Engine.search_video vs a per-frame ``DeepFace.represent`` + exact-search loop, in one run.

A synthetic 10-minute 1280 x 720 video (25 fps, MPEG-4 Part 2 in MP4) is made from
congress_small portraits: people (2023 portraits) walk across a textured background
one or two at a time, with empty stretches between; 80 % of the appearances are of
members enrolled in the gallery (their 2019 portraits), the rest are strangers. The
video is written once to ``benchmarks/out/`` (git-ignored) and reused while its
parameters are unchanged. It is never committed.

Measured, with models loaded and the gallery built before any timing:

- **facetrail**: ``Engine.search_video(gallery, video, fps=2)``: wall time (target <= the
  video's duration on 2 cores), peak resident memory during the search (target <= 2 GB;
  the kernel's high-water mark is reset just before), searches run, tracks, and how many
  enrolled appearances were found (a track overlapping it whose top candidate is that
  member).
- **baseline**: the same sampled frames (the same decoder and sampling), each passed to
  ``DeepFace.represent`` (Dlib model, dlib detector, as deepface does it) and every face
  it returns searched exactly in the same gallery. The decode pass is timed in full;
  ``DeepFace.represent`` + search is timed on every ``--baseline-every``-th sampled frame
  and scaled to all of them (printed as such).
- **ratio** baseline / facetrail (target >= 3x).
- For the breakdown, a second loop over the same timed frames: facetrail's own pipeline
  per frame without tracking (detect at full resolution, embed and search every face).
  It separates what tracking and scaled detection save from what deepface's overheads
  cost.

The machine is shared: the load average is printed before and after each phase.

``--also-min-face 40`` also times ``search_video`` with full-resolution dlib detection, to
separate what the scaled detection saves from what tracking saves.

Usage: ``python benchmarks/bench_video.py [--data DIR] [--minutes 10] [--baseline-every 10] [--also-min-face 40]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core import Database, Engine, GalleryStore, open_video
from core.gallery import EnrollItem
from core.models import models_dir

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Appearance:
    """One person crossing the frame."""

    subject: str
    enrolled: bool
    t0: float
    t1: float
    x0: float
    x1: float
    y: float
    scale: float


def load_members(data: Path) -> dict[str, dict[str, Path]]:
    photos: dict[str, dict[str, Path]] = {}
    with open(data / "congress_small" / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            photos.setdefault(row["bioguide_id"], {})[Path(row["image"]).stem] = data / "congress_small" / row["image"]
    return dict(sorted(photos.items()))


def schedule(duration: float, enrolled: list[str], strangers: list[str], width: int, seed: int = 7) -> list[Appearance]:
    """Walk-ons every few seconds: one person (60 %), two at once (25 %) or nobody (15 %)."""
    rng = np.random.default_rng(seed)
    out: list[Appearance] = []
    t = 2.0
    while t < duration - 14:
        kind = rng.choice(["one", "two", "none"], p=[0.6, 0.25, 0.15])
        length = float(rng.uniform(8, 12))
        if kind != "none":
            for lane in range(1 if kind == "one" else 2):
                is_enrolled = bool(rng.random() < 0.8)
                subject = str(rng.choice(enrolled if is_enrolled else strangers))
                scale = float(rng.uniform(0.6, 1.0))
                leftward = bool(rng.random() < 0.5) if lane == 0 else not out[-1].x1 < out[-1].x0
                start, end = (-320.0, width + 20.0) if not leftward else (width + 20.0, -320.0)
                y = 30.0 + lane * 330 + float(rng.uniform(-20, 20))
                out.append(Appearance(subject, is_enrolled, t, t + length, start, end, y, scale))
        t += length + float(rng.uniform(1, 5))
    return out


def background(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        img[:, :, c] = 110 + 50 * np.sin(xx * rng.uniform(0.002, 0.008) + c) * np.cos(yy * rng.uniform(0.002, 0.008))
    for _ in range(40):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 90)
        mask = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[:, :, None]
        img = img * (1 - mask) + rng.uniform(40, 220, 3) * mask
    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: Path, members, plan: list[Appearance], duration: float, size: tuple[int, int], fps: int) -> None:
    width, height = size
    base = background(width, height)  # BGR throughout: OpenCV writes BGR
    sprites = {
        (a.subject, a.scale): cv2.resize(
            cv2.imread(str(members[a.subject]["c118"])), None, fx=a.scale, fy=a.scale, interpolation=cv2.INTER_AREA
        )
        for a in plan
    }
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    assert writer.isOpened(), path
    for i in range(int(duration * fps)):
        t = i / fps
        frame = base.copy()
        for a in plan:
            if a.t0 <= t <= a.t1:
                sprite = sprites[(a.subject, a.scale)]
                x = int(a.x0 + (t - a.t0) / (a.t1 - a.t0) * (a.x1 - a.x0))
                y = int(a.y + 8 * math.sin(t * 3))
                h, w = sprite.shape[:2]
                fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
                if fx1 > fx0 and fy1 > fy0:
                    frame[fy0:fy1, fx0:fx1] = sprite[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
        writer.write(frame)
    writer.release()


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # "5" resets the peak RSS (VmHWM), Linux >= 4.0
        handle.write("5")


def rss(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def overlaps(track, a: Appearance) -> bool:
    return track.start_ms <= a.t1 * 1000 and track.end_ms >= a.t0 * 1000


def score(plan: list[Appearance], result) -> tuple[int, int, int]:
    """(enrolled appearances found, enrolled appearances, tracks whose top candidate is nobody in view then)."""
    enrolled = [a for a in plan if a.enrolled]
    found = sum(
        any(t.candidates and t.candidates[0].subject_id == a.subject and overlaps(t, a) for t in result.tracks)
        for a in enrolled
    )
    wrong = sum(
        1
        for t in result.tracks
        if t.candidates and not any(a.subject == t.candidates[0].subject_id and overlaps(t, a) for a in plan)
    )
    return found, len(enrolled), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--video-fps", type=int, default=25)
    parser.add_argument("--fps", type=float, default=2.0, help="sampling rate of the search")
    parser.add_argument("--gallery", type=int, default=100, help="members enrolled (the rest are strangers)")
    parser.add_argument("--min-face", type=int, default=80)
    parser.add_argument("--baseline-every", type=int, default=10, help="time the baseline on every N-th sampled frame")
    parser.add_argument(
        "--also-min-face",
        type=int,
        default=0,
        help="also time search_video with this min_face (40: full-resolution dlib)",
    )
    args = parser.parse_args()

    data = Path(args.data)
    width, height = (int(v) for v in args.size.split("x"))
    duration = args.minutes * 60
    members = load_members(data)
    ids = list(members)
    enrolled, strangers = ids[: args.gallery], ids[args.gallery : args.gallery + 40]
    plan = schedule(duration, enrolled, strangers, width)
    OUT.mkdir(exist_ok=True)
    key = hashlib.sha256(json.dumps([args.minutes, args.size, args.video_fps, [a.__dict__ for a in plan]]).encode())
    video = OUT / f"bench_video_{key.hexdigest()[:12]}.mp4"
    print(f"{os.cpu_count()} cores; {loadavg()}")
    if not video.is_file():
        t0 = time.perf_counter()
        make_video(video, members, plan, duration, (width, height), args.video_fps)
        print(f"made {video.name} in {time.perf_counter() - t0:.0f} s")
    size_mb = video.stat().st_size / 1e6
    print(
        f"video: {duration:.0f} s, {width}x{height} at {args.video_fps} fps, {size_mb:.0f} MB; "
        f"{len(plan)} appearances ({sum(a.enrolled for a in plan)} of enrolled members)"
    )

    engine = Engine()
    store = GalleryStore(Database(OUT / "bench_video.duckdb"))
    if "bench_video" in {g.name for g in store.list()}:
        store.drop("bench_video")
    store.create("bench_video", engine.config)
    batch = engine.embed_batch([members[i]["c116"] for i in enrolled], cache=store.cache)
    store.enroll(
        "bench_video",
        [
            EnrollItem(i, batch.embeddings[str(members[i]["c116"])], "c116.jpg")
            for i in enrolled
            if str(members[i]["c116"]) in batch.embeddings
        ],
    )
    gallery = store.load("bench_video")
    engine.pipeline  # load the models before timing  # noqa: B018
    print(f"gallery: {gallery.ref.size} faces; config {engine.config.name}, threshold {engine.config.threshold:.4f}")

    # ---- facetrail ------------------------------------------------------------------
    print(f"facetrail: {loadavg()}")
    rss_before = rss("VmRSS")
    reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    result = engine.search_video(gallery, video, fps=args.fps, min_face=args.min_face)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    peak = rss("VmHWM")
    found, total, wrong = score(plan, result)
    with_candidates = sum(1 for t in result.tracks if t.candidates)
    print(f"facetrail done: {loadavg()}")
    t_other = 0.0
    if args.also_min_face:
        t0 = time.perf_counter()
        other = engine.search_video(gallery, video, fps=args.fps, min_face=args.also_min_face)
        t_other = time.perf_counter() - t0
        other_score = score(plan, other)
        print(f"facetrail at min_face {args.also_min_face} done: {loadavg()}")

    # ---- baseline: DeepFace.represent on every sampled frame + exact search ---------
    os.environ["DEEPFACE_HOME"] = str(models_dir())
    os.environ["DEEPFACE_LOG_LEVEL"] = "40"
    from deepface import DeepFace  # noqa: PLC0415 (the baseline, imported last: it mutes warnings process-wide)

    def represent(bgr: np.ndarray) -> list[np.ndarray]:
        try:
            faces = DeepFace.represent(img_path=bgr, model_name="Dlib", detector_backend="dlib")
        except ValueError as err:
            if "Face could not be detected" not in str(err):
                raise
            return []
        return [np.asarray(f["embedding"], dtype=np.float32) for f in faces]

    print(f"baseline: {loadavg()}")
    with open_video(video) as reader:
        first = next(iter(reader.samples(args.fps)))
    represent(cv2.cvtColor(first.pixels, cv2.COLOR_RGB2BGR))  # load deepface's models before timing
    t_decode, t_rep, timed, faces_base, searches_base, sampled = 0.0, 0.0, 0, 0, 0, 0
    c_decode, c_rep = 0.0, 0.0
    with open_video(video) as reader:
        frames = reader.samples(args.fps)
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            frame = next(frames, None)
            t_decode += time.perf_counter() - t0
            c_decode += time.process_time() - c0
            if frame is None:
                break
            sampled += 1
            if (sampled - 1) % args.baseline_every:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            for vector in represent(cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR)):
                gallery.index.search(vector / np.linalg.norm(vector), 10)
                searches_base += 1
                faces_base += 1
            t_rep += time.perf_counter() - t0
            c_rep += time.process_time() - c0
            timed += 1
    t_base = t_decode + t_rep * sampled / timed
    c_base = c_decode + c_rep * sampled / timed
    print(f"baseline done: {loadavg()}")

    # ---- breakdown: facetrail's pipeline on every face of the same frames, no tracking --
    pipeline = engine.pipeline
    t_plain, faces_plain, count = 0.0, 0, 0
    with open_video(video) as reader:
        for frame in reader.samples(args.fps):
            count += 1
            if (count - 1) % args.baseline_every:
                continue
            t0 = time.perf_counter()
            for face in pipeline.detect_first(frame.pixels):  # as search_video does: no fallback per frame
                gallery.index.search(pipeline.embed_face(frame.pixels, face), 10)
                faces_plain += 1
            t_plain += time.perf_counter() - t0
    t_plain_all = t_decode + t_plain * sampled / timed
    print(f"per-frame pipeline done: {loadavg()}")

    print()
    print(f"sampled frames:            {result.frames_sampled} (baseline loop: {sampled})")
    print(
        f"facetrail search_video:    {t_ours:8.1f} s   ({t_ours / duration:.2f} x the video's {duration:.0f} s; target <= 1)"
    )
    print(
        f"  peak RSS during search:  {peak / 1e9:8.2f} GB  (target <= 2 GB; {rss_before / 1e9:.2f} GB before: "
        "models, gallery, interpreter)"
    )
    print(
        f"  searches run:            {result.searches:8d}     ({len(result.tracks)} tracks, {with_candidates} with "
        f"candidates, {result.faces_detected} faces detected)"
    )
    print(
        f"  enrolled appearances found: {found}/{total}; tracks whose top candidate was not in view: {wrong}; "
        f"{len(plan)} appearances in all"
    )
    print(
        f"baseline (scaled):         {t_base:8.1f} s   = decode pass {t_decode:.1f} s + DeepFace.represent+search "
        f"{t_rep:.1f} s on {timed} of {sampled} frames x {sampled / timed:.1f}"
    )
    print(
        f"  searches run (scaled):   {searches_base * sampled / timed:8.0f}     ({faces_base} faces on {timed} frames)"
    )
    print(f"ratio baseline / facetrail: {t_base / t_ours:7.2f}x  (target >= 3x)")
    print(
        f"  in CPU time (all threads; unaffected by other processes' load): baseline {c_base:.1f} s / facetrail "
        f"{c_ours:.1f} s = {c_base / c_ours:.2f}x"
    )
    if args.also_min_face:
        print(
            f"breakdown: search_video at min_face {args.also_min_face} (detection scale "
            f"{other.sampling.detection_scale:g}): {t_other:.1f} s, {other.searches} searches, "
            f"found {other_score[0]}/{other_score[1]}, wrong {other_score[2]}; {t_base / t_other:.2f}x the DeepFace loop"
        )
    print(
        f"breakdown: facetrail pipeline per frame, every face, full-resolution detection (first detector), no tracking: "
        f"{t_plain_all:.1f} s scaled ({faces_plain} faces on {timed} frames): {t_plain_all / t_ours:.2f}x facetrail's "
        f"time, {t_base / t_plain_all:.2f}x faster than the DeepFace loop"
    )


if __name__ == "__main__":
    main()
