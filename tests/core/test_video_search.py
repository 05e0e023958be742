"""Engine.search_video on synthetic footage made here from congress_small portraits (never committed).

The gallery holds the 2019 portraits (c116) of six members; the footage shows their 2023
portraits (c118) and one member who is not enrolled. Ground truth (who is in view when) comes
from the scene's own geometry: a face counts as in view when three quarters of its box are
inside the frame and it is not occluded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import Database, Engine, GalleryStore, default_config
from core.errors import UnreadableVideo
from core.gallery import EnrollItem, LoadedGallery
from core.results import VideoSearchResult
from tests.core.footage import Actor, Scene, in_view, load_portrait, rotate_mp4, write_frames, write_times, write_video

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.data]

SAMPLE_MS = 500  # 2 fps


@pytest.fixture(scope="module")
def members(congress_pairs) -> dict[str, tuple[str, Path, Path]]:
    """Fixed members by role (the first seven ids in sorted order); the stranger is not enrolled."""
    roles = ["walker", "left", "right", "returner", "spare1", "spare2", "stranger"]
    return dict(zip(roles, congress_pairs[:7], strict=True))


def _gallery(engine: Engine, members) -> LoadedGallery:
    enrolled = [m for role, m in members.items() if role != "stranger"]
    batch = engine.embed_batch([old for _, old, _ in enrolled], workers=1)
    assert batch.failures == ()
    store = GalleryStore(Database(":memory:"))
    store.create("c116", engine.config)
    store.enroll("c116", [EnrollItem(pid, batch.embeddings[str(old)], old.name) for pid, old, _ in enrolled])
    return store.load("c116")


@pytest.fixture(scope="module")
def gallery(real_engine: Engine, members) -> LoadedGallery:
    return _gallery(real_engine, members)


@pytest.fixture(scope="module")
def portraits(real_engine: Engine, members) -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Each role's 2023 portrait and its face box in the portrait (for the ground truth's geometry)."""
    out = {}
    for role, (_, _, new) in members.items():
        pixels = load_portrait(new)
        (face,) = real_engine.detect(pixels)
        out[role] = (pixels, (face.x, face.y, face.w, face.h))
    return out


def walk_scene(portraits) -> Scene:
    """16 s: empty, then the walker crosses while the camera pans and tilts, grows then shrinks, is blurred, then hidden."""
    pixels, _ = portraits["walker"]
    walker = Actor(
        pixels,
        path=[(1.0, -150, 40, 0.7), (6.0, 300, 10, 0.9), (12.0, 700, 30, 0.6)],
        blur=[(7.0, 8.0, 2.5)],
        occluded=[(9.0, 10.0)],
    )
    return Scene(640, 360, 16.0, actors=[walker], pan=[(0, 0, 0), (6, 120, 0), (10, 120, 30), (14, 0, 0)])


def two_people_scene(portraits) -> Scene:
    """10 s: two members at once, drifting towards each other a little, overlapping in time."""
    left = Actor(portraits["left"][0], path=[(1.0, 10, 20, 0.8), (8.0, 60, 30, 0.75)])
    right = Actor(portraits["right"][0], path=[(2.0, 400, 40, 0.7), (9.0, 340, 20, 0.8)])
    return Scene(640, 360, 10.0, actors=[left, right], seed=1)


def twice_scene(portraits) -> Scene:
    """16 s: the returner crosses left to right, leaves, a stranger stands in the middle, the returner crosses back."""
    first = Actor(portraits["returner"][0], path=[(1.0, -100, 20, 0.7), (6.0, 560, 20, 0.7)])
    again = Actor(portraits["returner"][0], path=[(9.5, 560, 30, 0.75), (14.5, -120, 30, 0.75)])
    stranger = Actor(portraits["stranger"][0], path=[(6.5, 240, 30, 0.75), (8.5, 250, 30, 0.75)])
    return Scene(640, 360, 16.0, actors=[first, stranger, again], seed=2)


def view_interval(scene: Scene, actor: int, face, start: float = 0.0, end: float | None = None) -> tuple[int, int]:
    """First and last sample time (ms) at which the actor's face is in view (between start and end seconds)."""
    end = scene.duration if end is None else end
    times = [k * SAMPLE_MS for k in range(int(scene.duration * 1000 / SAMPLE_MS) + 1)]
    seen = [t for t in times if start * 1000 <= t <= end * 1000 and in_view(scene, actor, t / 1000, face)]
    assert seen, "the scene never shows this face"
    return seen[0], seen[-1]


def assert_found_in(track, subject: str, interval: tuple[int, int]) -> None:
    """The track is this subject's, lies inside the interval (one sample of slack) and covers most of it."""
    assert track.candidates and track.candidates[0].subject_id == subject
    first, last = interval
    assert first - SAMPLE_MS <= track.start_ms and track.end_ms <= last + SAMPLE_MS, (track.to_dict(), interval)
    assert track.end_ms - track.start_ms >= 0.7 * (last - first), (track.to_dict(), interval)


def no_track_outside_views(result: VideoSearchResult, scene: Scene, faces) -> None:
    """No track (and so no candidate) starts or ends at a time when no face was in view."""
    for track in result.tracks:
        for t in (track.start_ms, track.end_ms, track.best_ms):
            nearby = [t + d for d in (-SAMPLE_MS, 0, SAMPLE_MS)]
            assert any(in_view(scene, i, u / 1000, faces[i]) for i in range(len(scene.actors)) for u in nearby), (
                track.to_dict()
            )


@pytest.fixture(scope="module")
def walk(real_engine, gallery, portraits, members, tmp_path_factory):
    scene = walk_scene(portraits)
    path = tmp_path_factory.mktemp("walk") / "walk.mp4"
    write_video(scene, path)
    return scene, path, real_engine.search_video(gallery, path, fps=2.0, top_k=5)


def test_a_walk_with_pan_scale_blur_and_occlusion_is_one_track_of_the_right_person(walk, members, portraits) -> None:
    scene, _, result = walk
    (track,) = result.tracks
    face = portraits["walker"][1]
    assert_found_in(track, members["walker"][0], view_interval(scene, 0, face))
    assert all(c.subject_id != members["stranger"][0] for c in track.candidates)
    assert not 7000 <= track.best_ms <= 8000, "the best face is not a blurred one"
    assert track.searches == 3 == result.searches
    assert track.faces >= 10
    no_track_outside_views(result, scene, [face])
    assert result.frames_sampled == 32 and result.frames_decoded == 160 and result.duration_ms == 16000


def test_the_result_carries_identity_gallery_config_and_exactly_the_cli_keys(walk, gallery, real_engine) -> None:
    _, path, result = walk
    from core.image import sha256_file

    assert result.video == str(path) and result.video_sha256 == sha256_file(path)
    assert result.gallery == gallery.ref and result.exact
    assert result.config == real_engine.config and result.threshold == real_engine.config.threshold
    assert result.sampling.fps == 2.0 and result.sampling.searches_per_track == 3
    assert result.sampling.detection_scale == 0.5  # dlib finds 40 px faces; min_face 80
    payload = result.to_dict()
    assert list(payload) == ["video", "video_sha256", "duration_ms", "frames_sampled", "faces_detected", "tracks"]
    assert list(payload["tracks"][0]) == ["track_id", "start_ms", "end_ms", "faces", "best_ms", "candidates"]
    assert list(payload["tracks"][0]["candidates"][0]) == ["subject_id", "face_id", "distance", "similarity", "rank"]
    assert payload["faces_detected"] == result.faces_detected >= result.tracks[0].faces
    import json

    json.dumps(payload)  # plain JSON: no arrays, no crops


def test_the_best_crop_is_kept_in_memory_for_tracks_with_candidates(walk) -> None:
    _, path, result = walk
    crop = result.tracks[0].crop
    assert crop is not None and crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3
    assert max(crop.shape[:2]) <= 256 and not crop.flags.writeable
    assert sorted(p.name for p in path.parent.iterdir()) == ["walk.mp4"]  # nothing written beside the video


def test_two_people_at_once_are_two_overlapping_tracks(real_engine, gallery, portraits, members, tmp_path) -> None:
    scene = two_people_scene(portraits)
    path = tmp_path / "two.mp4"
    write_video(scene, path)
    result = real_engine.search_video(gallery, path)
    assert len(result.tracks) == 2
    by_subject = {t.candidates[0].subject_id: t for t in result.tracks}
    for i, role in enumerate(["left", "right"]):
        assert_found_in(by_subject[members[role][0]], members[role][0], view_interval(scene, i, portraits[role][1]))
    a, b = result.tracks
    assert max(a.start_ms, b.start_ms) < min(a.end_ms, b.end_ms), "they were seen at the same time"
    assert result.searches == 6


def test_entering_and_leaving_twice_is_two_tracks_and_a_stranger_gets_no_candidate(
    real_engine, gallery, portraits, members, tmp_path
) -> None:
    scene = twice_scene(portraits)
    path = tmp_path / "twice.mp4"
    write_video(scene, path)
    result = real_engine.search_video(gallery, path)
    returner, stranger = members["returner"][0], members["stranger"][0]
    found = [t for t in result.tracks if t.candidates]
    assert [t.candidates[0].subject_id for t in found] == [returner, returner]
    face = portraits["returner"][1]
    assert_found_in(found[0], returner, view_interval(scene, 0, face))
    assert_found_in(found[1], returner, view_interval(scene, 2, face))
    (unknown,) = [t for t in result.tracks if not t.candidates]
    assert 6000 <= unknown.start_ms and unknown.end_ms <= 9000 and unknown.crop is None
    assert all(c.subject_id != stranger for t in result.tracks for c in t.candidates)
    assert [t.track_id for t in result.tracks] == [1, 2, 3]
    no_track_outside_views(result, scene, [face, portraits["stranger"][1], face])


def test_frames_without_faces_give_no_track_and_no_search(real_engine, gallery, tmp_path) -> None:
    scene = Scene(640, 360, 6.0, pan=[(0, 0, 0), (6, 200, 40)], seed=3)
    path = tmp_path / "empty.mp4"
    write_video(scene, path)
    result = real_engine.search_video(gallery, path)
    assert result.tracks == () and result.faces_detected == 0 and result.searches == 0
    assert result.frames_sampled == 12


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".mkv"])
def test_containers_give_the_same_tracks(real_engine, gallery, portraits, members, tmp_path, suffix) -> None:
    scene = two_people_scene(portraits)
    path = tmp_path / f"two{suffix}"
    write_video(scene, path)
    result = real_engine.search_video(gallery, path)
    assert sorted(t.candidates[0].subject_id for t in result.tracks) == sorted(
        [members["left"][0], members["right"][0]]
    )
    for track in result.tracks:
        role = "left" if track.candidates[0].subject_id == members["left"][0] else "right"
        assert_found_in(
            track, members[role][0], view_interval(scene, ["left", "right"].index(role), portraits[role][1])
        )


def test_variable_frame_rate_footage_is_timed_by_presentation_time(
    real_engine, gallery, portraits, members, tmp_path
) -> None:
    scene = walk_scene(portraits)
    # 10 fps, then 4 fps from 5 s, then 10 fps again from 10 s: frame index no longer tells the time
    times = [i / 10 for i in range(50)] + [5 + i / 4 for i in range(20)] + [10 + i / 10 for i in range(60)]
    path = tmp_path / "vfr.mp4"
    write_times(scene, path, times)
    result = real_engine.search_video(gallery, path)
    (track,) = result.tracks
    assert_found_in(track, members["walker"][0], view_interval(scene, 0, portraits["walker"][1]))
    assert result.frames_decoded == len(times) and abs(result.duration_ms - 16000) <= 100
    assert result.frames_sampled == 32


def test_rotation_metadata_is_applied_before_detection(real_engine, gallery, portraits, members, tmp_path) -> None:
    scene = two_people_scene(portraits)
    frames = [np.ascontiguousarray(np.rot90(scene.render(i / 10), k=1)) for i in range(100)]  # phone held sideways
    plain = tmp_path / "sideways.mp4"
    write_frames(frames, plain, fps=10.0)
    tagged = tmp_path / "tagged.mp4"
    tagged.write_bytes(plain.read_bytes())
    rotate_mp4(tagged, 90)
    upright = real_engine.search_video(gallery, tagged)
    assert upright.rotation == 90 and (upright.width, upright.height) == (640, 360)
    assert sorted(t.candidates[0].subject_id for t in upright.tracks) == sorted(
        [members["left"][0], members["right"][0]]
    )
    sideways = real_engine.search_video(gallery, plain)  # the same pixels without the metadata: no frontal faces
    assert sideways.faces_detected < 0.1 * upright.faces_detected


def test_progress_bar_on_stderr_and_callback(real_engine, gallery, walk, capsys) -> None:
    _, path, _ = walk
    calls: list[tuple[int, int]] = []
    result = real_engine.search_video(gallery, path, progress=True, on_progress=lambda d, t: calls.append((d, t)))
    captured = capsys.readouterr()
    assert "video" in captured.err and "32/32" in captured.err and captured.out == ""
    assert [d for d, _ in calls] == list(range(1, 33)) and calls[-1] == (32, 32)
    assert result.frames_sampled == 32


def test_a_threshold_for_the_query_is_recorded_and_one_search_per_track_is_honoured(real_engine, gallery, walk) -> None:
    _, path, _ = walk
    result = real_engine.search_video(gallery, path, threshold=0.5, searches_per_track=1, top_k=2)
    assert result.threshold == 0.5 and result.config.threshold_source.kind == "user"
    (track,) = result.tracks
    assert track.searches == 1 == result.searches and len(track.candidates) <= 2
    assert [c.rank for c in track.candidates] == list(range(1, len(track.candidates) + 1))
    assert [c.distance for c in track.candidates] == sorted(c.distance for c in track.candidates)


def test_a_truncated_video_is_an_error_after_decoding_not_a_short_result(
    real_engine, gallery, portraits, tmp_path
) -> None:
    scene = two_people_scene(portraits)
    whole = tmp_path / "whole.avi"
    write_video(scene, whole)
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(UnreadableVideo, match="truncated or damaged"):
        real_engine.search_video(gallery, cut)


def test_deepface_alignment_embeds_around_the_detected_box(members, portraits, tmp_path) -> None:
    engine = Engine(default_config(alignment="deepface"))
    gallery = _gallery(engine, members)
    scene = two_people_scene(portraits)
    path = tmp_path / "two.mp4"
    write_video(scene, path)
    result = engine.search_video(gallery, path)
    assert sorted(t.candidates[0].subject_id for t in result.tracks) == sorted(
        [members["left"][0], members["right"][0]]
    )
