"""Faces followed across sampled video frames: a small motion-gated tracker that checks identity by embedding.

Why not a tracking library: norfair 2.3 pins ``numpy<2``; supervision (ByteTrack)
pulls ``opencv-python``, which clashes with the ``opencv-contrib-python-headless``
wheel deepface needs; boxmot needs torch; motpy and bytetracker have not been
released since 2021 and 2023. They also assume a detector running at video rate and
a Kalman motion model. Here frames are sampled at about 2 per second: a walking face
moves half its width between samples, two boxes of one face often do not overlap
(IoU 0), and appearance says more than motion.

Rules (sizes are face-box sides, times are milliseconds)
---------------------------------------------------------
1. **Ending.** A track ends once it has gone unseen for more than ``max_gap_ms``
   (the video search uses max(2 s, 2.5 sampling periods): an occlusion of a second
   or two is bridged, someone who leaves and comes back later is a new track), and at
   the end of the video.
2. **Gate.** A sighting may continue a track only when its centre lies within
   ``size x (1 + dt_s)`` of the track's predicted centre and its side is within a
   factor 2 of the track's last side. ``size`` is the mean side of the two boxes,
   ``dt_s`` the seconds since the track was last seen, and the prediction is the last
   centre moved by the velocity of the last two sightings for at most one second.
   This is the IoU gate of SORT-style trackers, widened for sparse samples.
3. **Plain links.** A sighting that gates with one track only, where that track gates
   with that sighting only, continues it on geometry alone: no embedding is computed.
4. **Ambiguity** (two faces near each other, crossing, or one reappearing beside
   another) is settled by appearance: the embeddings of the sightings and of each
   track's most recent embedded face are computed on demand (and reused by the search
   if they are among the best faces), pairs farther apart than ``relink_distance`` are
   dropped, the rest are ranked by cosine distance, then by distance from the
   prediction, and linked greedily. Splitting one person's appearance in two is
   preferred to merging two people into one track.
5. **Reappearance.** A sighting that continues a track unseen for more than
   ``relink_after_ms`` is linked only when its embedding is within
   ``relink_distance`` of the track's: someone stepping in where another person left
   starts a new track.
6. **New tracks.** Every sighting left unlinked starts a track. Track ids count up
   from 1 in order of creation (within a frame, left to right).

Best faces
----------
Each track keeps its ``keep_best`` sightings of highest :func:`face_quality`, each
from a different sampled frame, with their pixels (the face box with half a side of
margin), and its last sighting; other pixels are dropped as the track goes, so a
track holds at most ``keep_best + 1`` crops whatever its length.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.results import Face

__all__ = ["Sighting", "Track", "FaceTracker", "face_quality", "sharpness", "make_sighting", "CROP_MARGIN"]

#: Margin kept around a face box, as a fraction of its side on each edge (dlib's chip needs 0.25).
CROP_MARGIN = 0.5
#: Side at which a face stops gaining from size (dlib's chip is 150 px).
QUALITY_FULL_SIDE = 150.0
#: Sharpness at which the sharpness factor is one half (variance of the Laplacian of a 64 x 64 grey face).
QUALITY_HALF_SHARPNESS = 100.0
_MAX_SCALE_CHANGE = 2.0
_PREDICT_MS = 1000.0


def sharpness(face_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the face resized to 64 x 64 grey: high for a sharp face, low for a blurred one."""
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def face_quality(confidence: float, side: float, sharp: float) -> float:
    """Rank faces for search: detector confidence x size factor x sharpness factor, each in [0, 1].

    ``min(1, side / 150)`` favours faces large enough to fill the model's input and
    ``sharp / (sharp + 100)`` favours sharp ones (motion blur, focus). Pose is not
    scored: the detector has already passed the face as frontal enough to find.
    """
    return max(0.0, confidence) * min(1.0, side / QUALITY_FULL_SIDE) * (sharp / (sharp + QUALITY_HALF_SHARPNESS))


@dataclass(eq=False)
class Sighting:
    """One face detected in one sampled frame.

    Attributes
    ----------
    t_ms
        Presentation time of the frame.
    face
        Box in frame coordinates, with the detector's confidence.
    quality
        :func:`face_quality` of the face.
    crop
        RGB pixels of the box with :data:`CROP_MARGIN` on each edge (clipped to the frame).
    origin
        Frame coordinates ``(x, y)`` of the crop's top-left pixel.
    vector
        The face's embedding once computed (on demand, at most once); ``None`` before,
        or when the model could not embed it.
    embedded
        Whether the embedding was attempted.
    """

    t_ms: float
    face: Face
    quality: float
    crop: np.ndarray
    origin: tuple[int, int]
    vector: np.ndarray | None = None
    embedded: bool = False

    @property
    def side(self) -> float:
        """Geometric mean of the box's width and height."""
        return math.sqrt(max(1, self.face.w) * max(1, self.face.h))

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the box."""
        return self.face.x + self.face.w / 2.0, self.face.y + self.face.h / 2.0

    @property
    def face_in_crop(self) -> Face:
        """The box in crop coordinates."""
        f = self.face
        return Face(f.x - self.origin[0], f.y - self.origin[1], f.w, f.h, f.confidence, f.detector)


def make_sighting(pixels: np.ndarray, t_ms: float, face: Face) -> Sighting:
    """Cut a sighting's crop out of a frame and score it."""
    height, width = pixels.shape[:2]
    mx, my = int(face.w * CROP_MARGIN), int(face.h * CROP_MARGIN)
    x0, y0 = max(0, face.x - mx), max(0, face.y - my)
    x1, y1 = min(width, face.x + face.w + mx), min(height, face.y + face.h + my)
    crop = np.ascontiguousarray(pixels[y0:y1, x0:x1])
    fx0, fy0 = face.x - x0, face.y - y0
    box = crop[max(0, fy0) : fy0 + face.h, max(0, fx0) : fx0 + face.w]
    sharp = sharpness(box) if box.size else 0.0
    side = math.sqrt(max(1, face.w) * max(1, face.h))
    return Sighting(t_ms, face, face_quality(face.confidence, side, sharp), crop, (x0, y0))


@dataclass(eq=False)
class Track:
    """A face followed through the video.

    Attributes
    ----------
    track_id
        1, 2, ... in order of creation.
    first, last
        The first and the most recent sighting.
    sightings
        How many sightings the track holds.
    best
        Up to ``keep_best`` sightings, highest quality first.
    """

    track_id: int
    first: Sighting
    last: Sighting
    sightings: int = 1
    best: list[Sighting] = field(default_factory=list)
    previous: Sighting | None = None
    reference: Sighting | None = None

    def add(self, sighting: Sighting, keep_best: int) -> None:
        """Append a sighting; keep the best ones and the last one, drop other pixels."""
        self.previous, self.last = self.last, sighting
        self.sightings += 1
        if sighting.embedded:
            self.reference = sighting
        self._rank(sighting, keep_best)

    def _rank(self, sighting: Sighting, keep_best: int) -> None:
        self.best.append(sighting)
        self.best.sort(key=lambda s: (-s.quality, s.t_ms))
        del self.best[keep_best:]

    def predicted_center(self, t_ms: float) -> tuple[float, float]:
        """Where the face should be at ``t_ms``, from the velocity of the last two sightings."""
        cx, cy = self.last.center
        prev = self.previous
        if prev is None or self.last.t_ms <= prev.t_ms:
            return cx, cy
        span = self.last.t_ms - prev.t_ms
        px, py = prev.center
        ahead = min(t_ms - self.last.t_ms, _PREDICT_MS)
        return cx + (cx - px) / span * ahead, cy + (cy - py) / span * ahead


class FaceTracker:
    """Link sightings, frame by frame, into tracks (see the module's rules).

    Parameters
    ----------
    embed
        Returns the unit embedding of a sighting (called only when identity must decide),
        or ``None`` when the model cannot embed it: such a face counts as unlike any other.
    max_gap_ms
        A track unseen for longer ends.
    keep_best
        Best faces kept per track (the searches a track gets).
    relink_distance
        Largest cosine distance at which an ambiguous sighting, or a face reappearing
        after ``relink_after_ms``, continues a track (the video search passes the
        configuration's decision threshold).
    relink_after_ms
        Unseen time after which a continuation must be confirmed by embedding.
    """

    def __init__(
        self,
        embed: Callable[[Sighting], np.ndarray | None],
        *,
        max_gap_ms: float,
        keep_best: int = 3,
        relink_distance: float,
        relink_after_ms: float = 1000.0,
    ) -> None:
        if keep_best < 1:
            raise ValueError("keep_best must be at least 1")
        self._embed = embed
        self.max_gap_ms = max_gap_ms
        self.keep_best = keep_best
        self.relink_distance = relink_distance
        self.relink_after_ms = relink_after_ms
        self._live: list[Track] = []
        self._ids = itertools.count(1)
        #: Embeddings computed by the tracker itself (to settle ambiguity).
        self.embeddings_computed = 0

    def _vector(self, sighting: Sighting) -> np.ndarray | None:
        if not sighting.embedded:
            sighting.vector = self._embed(sighting)
            sighting.embedded = True
            self.embeddings_computed += 1
        return sighting.vector

    def _track_vector(self, track: Track) -> np.ndarray | None:
        if track.reference is None:
            self._vector(track.last)
            track.reference = track.last
        return track.reference.vector

    def _cosine(self, sighting: Sighting, track: Track) -> float:
        a, b = self._vector(sighting), self._track_vector(track)
        return 2.0 if a is None or b is None else 1.0 - float(np.dot(a, b))

    def _gate(self, track: Track, sighting: Sighting) -> float | None:
        """Normalised distance from the track's prediction, or ``None`` outside the gate."""
        dt = sighting.t_ms - track.last.t_ms
        if dt <= 0 or dt > self.max_gap_ms:
            return None
        a, b = track.last.side, sighting.side
        if max(a, b) / min(a, b) > _MAX_SCALE_CHANGE:
            return None
        px, py = track.predicted_center(sighting.t_ms)
        sx, sy = sighting.center
        distance = math.hypot(sx - px, sy - py) / ((a + b) / 2.0)
        return distance if distance <= 1.0 + dt / 1000.0 else None

    def update(self, t_ms: float, sightings: Sequence[Sighting]) -> list[Track]:
        """Add one sampled frame's sightings; return the tracks that ended before it (oldest first)."""
        ended = [t for t in self._live if t_ms - t.last.t_ms > self.max_gap_ms]
        self._live = [t for t in self._live if t not in ended]
        gated: dict[tuple[int, int], float] = {}
        for ti, track in enumerate(self._live):
            for si, sighting in enumerate(sightings):
                distance = self._gate(track, sighting)
                if distance is not None:
                    gated[(ti, si)] = distance
        links = self._link(t_ms, sightings, gated)
        for ti, si in links:
            self._live[ti].add(sightings[si], self.keep_best)
        linked = {si for _, si in links}
        fresh = sorted((s for i, s in enumerate(sightings) if i not in linked), key=lambda s: (s.face.x, s.face.y))
        for sighting in fresh:
            track = Track(next(self._ids), first=sighting, last=sighting)
            if sighting.embedded:
                track.reference = sighting
            track._rank(sighting, self.keep_best)
            self._live.append(track)
        return ended

    def _link(
        self, t_ms: float, sightings: Sequence[Sighting], gated: dict[tuple[int, int], float]
    ) -> list[tuple[int, int]]:
        per_track: dict[int, int] = {}
        per_sighting: dict[int, int] = {}
        for ti, si in gated:
            per_track[ti] = per_track.get(ti, 0) + 1
            per_sighting[si] = per_sighting.get(si, 0) + 1
        ranked: list[tuple[float, float, int, int]] = []
        for (ti, si), distance in gated.items():
            track, sighting = self._live[ti], sightings[si]
            plain = per_track[ti] == 1 and per_sighting[si] == 1
            gap = t_ms - track.last.t_ms
            if plain and gap <= self.relink_after_ms:
                ranked.append((0.0, distance, ti, si))
                continue
            cosine = self._cosine(sighting, track)
            if cosine > self.relink_distance:
                continue
            ranked.append((cosine, distance, ti, si))
        ranked.sort()
        used_tracks: set[int] = set()
        used_sightings: set[int] = set()
        links = []
        for _, _, ti, si in ranked:
            if ti in used_tracks or si in used_sightings:
                continue
            used_tracks.add(ti)
            used_sightings.add(si)
            links.append((ti, si))
        return links

    def finish(self) -> list[Track]:
        """End every live track (the video is over); return them in order of creation."""
        ended, self._live = self._live, []
        return ended
