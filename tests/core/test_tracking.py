"""The face tracker's rules on hand-made sightings (no models, no video)."""

from __future__ import annotations

import numpy as np
import pytest

from core.results import Face
from core.tracking import FaceTracker, Sighting, face_quality, make_sighting, sharpness

PEOPLE = {name: vector for name, vector in zip("ABCD", np.eye(4, 128, dtype=np.float32), strict=True)}


def sighting(t_ms: float, x: int, y: int = 100, side: int = 100, who: str = "A", quality: float = 0.5) -> Sighting:
    s = Sighting(t_ms, Face(x, y, side, side, 1.0, "dlib"), quality, np.zeros((2, 2, 3), np.uint8), (x, y))
    s.who = who  # type: ignore[attr-defined]  (ground truth for the fake embedder)
    return s


class FakeEmbedder:
    def __init__(self) -> None:
        self.calls: list[Sighting] = []

    def __call__(self, s: Sighting) -> np.ndarray:
        self.calls.append(s)
        return PEOPLE[s.who]  # type: ignore[attr-defined]


def run(frames: list[tuple[float, list[Sighting]]], **options) -> tuple[list, FakeEmbedder]:
    embed = FakeEmbedder()
    tracker = FaceTracker(embed, max_gap_ms=options.pop("max_gap_ms", 2000), relink_distance=0.1, **options)
    ended = []
    for t, sightings in frames:
        ended += tracker.update(t, sightings)
    return ended + tracker.finish(), embed


def test_a_walk_at_two_fps_is_one_track_without_any_embedding() -> None:
    # 60 px per sample with 100 px faces: consecutive boxes overlap little; prediction keeps up
    frames = [(t * 500.0, [sighting(t * 500.0, 20 + 60 * t)]) for t in range(12)]
    tracks, embed = run(frames)
    assert len(tracks) == 1 and tracks[0].sightings == 12
    assert (tracks[0].first.t_ms, tracks[0].last.t_ms) == (0.0, 5500.0)
    assert embed.calls == []


def test_a_short_occlusion_is_bridged_a_long_absence_starts_a_new_track() -> None:
    seen = [0, 500, 1000, 2500, 3000]  # 1.5 s hidden: bridged (gap <= 2 s), confirmed by embedding
    later = [6000, 6500]  # 3 s unseen: a new track even at the same place
    frames = [(float(t), [sighting(float(t), 200)]) for t in seen + later]
    tracks, embed = run(frames)
    assert [(t.first.t_ms, t.last.t_ms, t.sightings) for t in tracks] == [(0, 3000, 5), (6000, 6500, 2)]
    assert len(embed.calls) == 2  # the reappearance after > 1 s: the sighting and the track's last face


def test_someone_else_stepping_in_after_a_gap_is_a_new_track() -> None:
    frames = [(0.0, [sighting(0, 200, who="A")]), (500.0, [sighting(500, 210, who="A")])]
    frames += [(2000.0, [sighting(2000, 215, who="B")])]
    tracks, _ = run(frames)
    assert [(t.first.t_ms, t.sightings) for t in tracks] == [(0.0, 2), (2000.0, 1)]


def test_two_people_apart_are_two_tracks_numbered_left_to_right() -> None:
    frames = [(t * 500.0, [sighting(t * 500.0, 400, who="B"), sighting(t * 500.0, 50, who="A")]) for t in range(6)]
    tracks, embed = run(frames)
    assert sorted((t.track_id, t.first.face.x, t.sightings) for t in tracks) == [(1, 50, 6), (2, 400, 6)]
    assert embed.calls == []


def test_faces_that_meet_and_turn_back_are_told_apart_by_embedding() -> None:
    # A walks right and B left until they nearly meet, then both turn back: motion alone
    # predicts they carry on and would swap them; their embeddings keep them apart
    xs_a = [100, 150, 200, 250, 200, 150, 100]
    xs_b = [450, 400, 350, 300, 350, 400, 450]
    frames = [
        (i * 500.0, [sighting(i * 500.0, a, who="A"), sighting(i * 500.0, b, who="B")])
        for i, (a, b) in enumerate(zip(xs_a, xs_b, strict=True))
    ]
    tracks, embed = run(frames)
    assert len(tracks) == 2 and embed.calls
    for track in tracks:
        assert track.sightings == 7
        people = {s.who for s in track.best} | {track.first.who, track.last.who}  # type: ignore[attr-defined]
        assert len(people) == 1


def test_a_jump_across_the_frame_or_a_big_scale_change_is_not_the_same_track() -> None:
    jump = [(0.0, [sighting(0, 0)]), (500.0, [sighting(500, 500)])]
    assert len(run(jump)[0]) == 2
    zoom = [(0.0, [sighting(0, 100, side=60)]), (500.0, [sighting(500, 100, side=150)])]
    assert len(run(zoom)[0]) == 2


def test_each_track_keeps_only_its_best_faces() -> None:
    qualities = [0.2, 0.9, 0.1, 0.7, 0.8, 0.3]
    frames = [(t * 500.0, [sighting(t * 500.0, 100 + 10 * t, quality=q)]) for t, q in enumerate(qualities)]
    (track,), _ = run(frames, keep_best=3)
    assert [s.quality for s in track.best] == [0.9, 0.8, 0.7]
    assert track.last.quality == 0.3


def test_ended_tracks_are_reported_when_their_gap_runs_out() -> None:
    tracker = FaceTracker(FakeEmbedder(), max_gap_ms=2000, relink_distance=0.1)
    assert tracker.update(0.0, [sighting(0, 100)]) == []
    assert tracker.update(2000.0, []) == []
    (ended,) = tracker.update(2500.0, [])
    assert ended.track_id == 1 and tracker.finish() == []


def test_quality_prefers_sharp_large_confident_faces() -> None:
    rng = np.random.default_rng(0)
    textured = rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)
    import cv2

    blurred = cv2.GaussianBlur(textured, (0, 0), 3)
    assert sharpness(textured) > 10 * sharpness(blurred)
    assert face_quality(1.0, 150, 500) > face_quality(1.0, 75, 500) > face_quality(0.5, 75, 500)
    assert face_quality(1.0, 150, 500) > face_quality(1.0, 150, 20)
    assert face_quality(1.0, 300, 500) == face_quality(1.0, 150, 500)  # no gain past the model's input size


def test_make_sighting_keeps_a_margin_clipped_to_the_frame() -> None:
    frame = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    s = make_sighting(frame, 40.0, Face(10, 20, 60, 80, 0.9, "dlib"))
    assert s.origin == (0, 0) and s.crop.shape == (140, 100, 3)  # margins 30/40, clipped left and top
    inner = s.face_in_crop
    assert (inner.x, inner.y, inner.w, inner.h) == (10, 20, 60, 80)
    assert np.array_equal(s.crop[inner.y : inner.y + inner.h, inner.x : inner.x + inner.w], frame[20:100, 10:70])


def test_keep_best_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FaceTracker(FakeEmbedder(), max_gap_ms=2000, relink_distance=0.1, keep_best=0)
