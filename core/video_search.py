"""Search a stored video against a gallery: sample, detect, track, and search each track with its best faces.

>>> result = engine.search_video(gallery, "cam.mp4", fps=2.0, top_k=5)
>>> [(t.track_id, t.start_ms, t.end_ms, [c.subject_id for c in t.candidates]) for t in result.tracks]

This is the body of :meth:`core.engine.Engine.search_video`; the steps are:

1. **Decode** (:mod:`core.video`): the file is checked, hashed and decoded as a stream,
   one frame ahead on a second thread, and frames are sampled at ``fps`` by
   presentation time.
2. **Detect**: each sampled frame, resized by ``detection_scale = min(1, floor / min_face)``,
   goes through the engine's own :class:`~core._deepface.FacePipeline` (models are
   loaded once, by the engine). ``floor`` is the smallest face the configured detector
   finds: 40 px for dlib (deepface runs it with one upsampling), 30 for opencv, 20 for
   mtcnn. With the default ``min_face=80`` a 1280 x 720 frame is detected at 640 x 360:
   a quarter of the pixels, faces from 80 px up. Boxes are mapped back to the full frame.
3. **Track** (:mod:`core.tracking`): sightings are linked into tracks, one per
   appearance; identity is checked by embedding only where geometry is ambiguous or a
   face reappears after more than a second unseen (it must then be within the
   configuration's decision threshold of the track's face).
4. **Search**: when a track ends, its best faces (up to ``searches_per_track``, default
   3, ranked by detection confidence x size x sharpness) are embedded from the
   full-resolution frame (:meth:`FacePipeline.embed_face`: under ``dlib_5pt`` no second
   detection) and each is searched with :meth:`Engine.search` (exact unless the gallery
   index is approximate). Its pixels are then dropped, so memory does not grow with the
   length of a track.
5. **Aggregate**: per subject, the smallest distance over the track's searches, with the
   gallery face it came from; ranked by distance (ties by subject id), at most
   ``top_k``, only within the threshold. A track keeps the crop of its best face when it
   has candidates.

So a sampled frame costs one detection, and a track costs at most ``searches_per_track``
embeddings and searches (plus the few embeddings the tracker needs to tell two nearby
faces apart), where a per-frame loop embeds and searches every face of every frame.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.config import ModelConfig
from core.errors import BadInput, NoFaceDetected
from core.gallery import LoadedGallery
from core.results import Candidate, Embedding, Face, SearchResult, VideoSampling, VideoSearchResult, VideoTrack
from core.tracking import FaceTracker, Sighting, Track, make_sighting
from core.video import ReadAhead, SampledFrame, open_video

if TYPE_CHECKING:
    import os

    from core.engine import Engine

__all__ = ["run_video_search", "DETECTOR_MIN_FACE", "MAX_FPS", "CROP_MAX_SIDE"]

#: Smallest face side (pixels of the image given to the detector) each detector finds reliably.
DETECTOR_MIN_FACE = {"dlib": 40, "opencv": 30, "mtcnn": 20}
#: Highest sampling rate accepted.
MAX_FPS = 60.0
#: Longer side of a track's kept crop, at most.
CROP_MAX_SIDE = 256
#: A track ends after max(this, TRACK_GAP_PERIODS sampling periods) unseen.
TRACK_GAP_MS = 2000.0
TRACK_GAP_PERIODS = 2.5
#: A sighting continuing a track unseen for more than this many sampling periods (a sample or more missed) is
#: linked only if its embedding agrees: at 2 fps someone stepping in 1 s after another left is not them.
RELINK_PERIODS = 1.5


def _check_options(fps: float, min_face: int, searches_per_track: int, max_duration: float, max_pixels: int) -> None:
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise BadInput(f"fps {fps} is not a sampling rate in (0, {MAX_FPS:g}] frames per second")
    if min_face < 1:
        raise BadInput(f"min_face must be at least 1 pixel, not {min_face}")
    if searches_per_track < 1:
        raise BadInput(f"searches_per_track must be at least 1, not {searches_per_track}")
    if not (math.isfinite(max_duration) and max_duration > 0):
        raise BadInput(f"max_duration {max_duration} is not a positive number of seconds")
    if max_pixels < 1:
        raise BadInput(f"max_pixels_per_frame must be at least 1, not {max_pixels}")


class _Job:
    """The state of one video search (so each step stays a short function)."""

    def __init__(self, engine: Engine, gallery: LoadedGallery, sha256: str, threshold: float | None, top_k: int):
        self.engine = engine
        self.pipeline = engine.pipeline
        self.gallery = gallery
        self.sha256 = sha256
        self.threshold = threshold
        self.top_k = top_k
        self.searches = 0
        self.faces_detected = 0
        self.tracks: list[VideoTrack] = []

    def embed(self, sighting: Sighting) -> np.ndarray | None:
        """Embed the sighting from its full-resolution crop (``None``: the model cannot embed it)."""
        try:
            return self.pipeline.embed_face(sighting.crop, sighting.face_in_crop)
        except NoFaceDetected:  # deepface alignment only: no face found again around the box
            return None

    def detect(self, frame: SampledFrame, small: np.ndarray, scale: float) -> list[Sighting]:
        height, width = frame.pixels.shape[:2]
        sightings = []
        for face in self.pipeline.detect_first(small):  # the cascade's first detector: see detect_first
            x0 = min(width - 1, max(0, int(round(face.x / scale))))
            y0 = min(height - 1, max(0, int(round(face.y / scale))))
            x1 = min(width, int(round((face.x + face.w) / scale)))
            y1 = min(height, int(round((face.y + face.h) / scale)))
            if x1 <= x0 or y1 <= y0:
                continue
            box = Face(x0, y0, x1 - x0, y1 - y0, face.confidence, face.detector)
            sightings.append(make_sighting(frame.pixels, frame.t_ms, box))
        self.faces_detected += len(sightings)
        return sightings

    def search_track(self, track: Track) -> None:
        results: list[SearchResult] = []
        for sighting in track.best:
            if not sighting.embedded:
                sighting.vector, sighting.embedded = self.embed(sighting), True
            if sighting.vector is None:
                continue
            probe = Embedding(sighting.vector, self.sha256, sighting.face, 1, self.engine.config)
            results.append(self.engine.search(self.gallery, probe, top_k=self.top_k, threshold=self.threshold))
        self.searches += len(results)
        candidates = aggregate(results, self.top_k)
        best = track.best[0]
        self.tracks.append(
            VideoTrack(
                track_id=track.track_id,
                start_ms=int(round(track.first.t_ms)),
                end_ms=int(round(track.last.t_ms)),
                faces=track.sightings,
                best_ms=int(round(best.t_ms)),
                best_face=best.face,
                candidates=candidates,
                searches=len(results),
                crop=_review_crop(best) if candidates else None,
            )
        )


def aggregate(results: list[SearchResult], top_k: int) -> tuple[Candidate, ...]:
    """Merge a track's searches: best distance per subject, ranked by distance (ties by subject, face), top ``top_k``."""
    best: dict[str, Candidate] = {}
    for result in results:
        for c in result.candidates:
            held = best.get(c.subject_id)
            if held is None or (c.distance, c.face_id) < (held.distance, held.face_id):
                best[c.subject_id] = c
    ordered = sorted(best.values(), key=lambda c: (c.distance, c.subject_id, c.face_id))[:top_k]
    return tuple(
        Candidate(c.subject_id, c.face_id, c.distance, c.similarity, rank=i + 1) for i, c in enumerate(ordered)
    )


def _review_crop(sighting: Sighting) -> np.ndarray:
    """Cut the face with a quarter-side margin, longer side at most :data:`CROP_MAX_SIDE`, read-only."""
    face = sighting.face_in_crop
    mx, my = int(face.w * 0.25), int(face.h * 0.25)
    crop = sighting.crop
    x0, y0 = max(0, face.x - mx), max(0, face.y - my)
    x1, y1 = min(crop.shape[1], face.x + face.w + mx), min(crop.shape[0], face.y + face.h + my)
    out = crop[y0:y1, x0:x1]
    longer = max(out.shape[:2])
    if longer > CROP_MAX_SIDE:
        factor = CROP_MAX_SIDE / longer
        out = cv2.resize(out, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    out = np.array(out, dtype=np.uint8, copy=True, order="C")
    out.flags.writeable = False
    return out


def _prepared(frames: Iterator[SampledFrame], scale: float) -> Iterator[tuple[SampledFrame, np.ndarray]]:
    for frame in frames:
        if scale < 1.0:
            small = cv2.resize(frame.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            small = frame.pixels
        yield frame, small


def run_video_search(
    engine: Engine,
    gallery: LoadedGallery,
    source: str | os.PathLike[str],
    *,
    query_config: ModelConfig,
    threshold: float | None,
    top_k: int,
    fps: float,
    max_duration: float,
    max_pixels_per_frame: int,
    min_face: int,
    searches_per_track: int,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> VideoSearchResult:
    """Run one video search (see the module docstring); :meth:`Engine.search_video` documents the parameters.

    ``query_config`` is the engine's configuration with ``threshold`` applied (it is
    what the result records); ``threshold`` is passed on to each :meth:`Engine.search`.
    """
    _check_options(fps, min_face, searches_per_track, max_duration, max_pixels_per_frame)
    config = engine.config
    scale = min(1.0, DETECTOR_MIN_FACE.get(config.detector, min_face) / min_face)
    gap_ms = max(TRACK_GAP_MS, TRACK_GAP_PERIODS * 1000.0 / fps)
    sampling = VideoSampling(fps, min_face, scale, searches_per_track, gap_ms, max_duration, max_pixels_per_frame)
    with open_video(source, max_duration_s=max_duration, max_pixels_per_frame=max_pixels_per_frame) as reader:
        info = reader.info
        job = _Job(engine, gallery, info.sha256, threshold, top_k)
        tracker = FaceTracker(  # a continuation after any missed sample is confirmed by embedding (rule 5)
            job.embed, max_gap_ms=gap_ms, keep_best=searches_per_track, relink_distance=config.threshold,
            relink_after_ms=RELINK_PERIODS * 1000.0 / fps,
        )
        declared = info.duration_ms_declared
        expected = math.ceil(declared * fps / 1000.0 - 1e-9) if declared is not None else 0
        bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            bar = tqdm(total=expected or None, desc="video", unit="frame", file=sys.stderr)
        sampled = 0
        try:
            with ReadAhead(_prepared(reader.samples(fps), scale)) as frames:
                for frame, small in frames:
                    for ended in tracker.update(frame.t_ms, job.detect(frame, small, scale)):
                        job.search_track(ended)
                    sampled += 1
                    if bar is not None:
                        bar.update(1)
                    if on_progress is not None:
                        on_progress(sampled, max(expected, sampled))
            if bar is not None:
                bar.total = sampled  # the declared length was an estimate; the count is now known
                bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        for ended in tracker.finish():
            job.search_track(ended)
        assert reader.duration_ms is not None
        frames_decoded, duration_ms = reader.frames_decoded, reader.duration_ms
    height, width = (info.height, info.width)
    return VideoSearchResult(
        video=str(source),
        video_sha256=info.sha256,
        duration_ms=int(round(duration_ms)),
        frames_sampled=sampled,
        frames_decoded=frames_decoded,
        faces_detected=job.faces_detected,
        tracks=tuple(sorted(job.tracks, key=lambda t: t.track_id)),
        gallery=gallery.ref,
        config=query_config,
        threshold=query_config.threshold,
        top_k=top_k,
        exact=gallery.exact,
        searches=job.searches,
        sampling=sampling,
        width=width,
        height=height,
        rotation=info.rotation,
    )
