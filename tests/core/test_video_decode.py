"""Decoding and sampling stored video (core.video), and the bad files it refuses. No face models needed.

Every clip is made here, with OpenCV's writer and two byte-level edits (tests/core/footage.py).
Frame ``i`` carries ``i`` in binary blocks so that a sampled frame says which frame it is.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from core.config import ModelConfig
from core.errors import BadInput, ConfigMismatch, FrameTooLarge, UnreadableVideo, VideoTooLong
from core.gallery import LoadedGallery
from core.index import ExactIndex
from core.results import GalleryRef
from core.video import open_video, sniff_container
from tests.conftest import make_config
from tests.core.footage import media_timescale, retime_mp4, rotate_mp4, set_mkv_duration, write_frames


def numbered(count: int, width: int = 160, height: int = 120) -> list[np.ndarray]:
    """Frames that carry their index as 6 black/white blocks (binary) across the middle."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 128, np.uint8)
        frame[: height // 8, :] = (255, 0, 0)  # a red band along the top edge shows which way is up
        for bit in range(6):
            value = 255 if (i >> bit) & 1 else 0
            frame[height // 2 - 12 : height // 2 + 12, 10 + 24 * bit : 28 + 24 * bit] = value
        frames.append(frame)
    return frames


def frame_number(pixels: np.ndarray) -> int:
    h = pixels.shape[0]
    bits = [pixels[h // 2 - 6 : h // 2 + 6, 13 + 24 * bit : 25 + 24 * bit].mean() > 128 for bit in range(6)]
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def expected_samples(times_ms: list[float], fps: float) -> list[int]:
    """Independently: for each sampling slot k/fps, the first frame at or after it (each frame once)."""
    period = 1000.0 / fps
    chosen: list[int] = []
    for k in range(int(max(times_ms) / period) + 2):
        later = [i for i, t in enumerate(times_ms) if t >= k * period - 1e-6]
        if later and later[0] not in chosen:
            chosen.append(later[0])
    return chosen


def samples(path: Path, fps: float = 2.0, **limits) -> tuple[list[tuple[int, float]], object]:
    with open_video(path, **limits) as video:
        got = [(frame_number(f.pixels), f.t_ms) for f in video.samples(fps)]
        return got, video


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".mkv"])
def test_constant_rate_clips_are_sampled_by_time_in_every_container(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_frames(numbered(20), path, fps=10.0)
    got, video = samples(path, fps=2.0)
    assert got == [(0, 0.0), (5, 500.0), (10, 1000.0), (15, 1500.0)]
    assert video.info.container == {".mp4": "iso", ".mov": "iso", ".avi": "avi", ".mkv": "matroska"}[suffix]
    assert video.frames_decoded == 20 and video.duration_ms == pytest.approx(2000.0)
    assert (video.info.width, video.info.height, video.info.rotation) == (160, 120, 0)


def test_a_video_is_decoded_once_and_rates_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_frames(numbered(4), path, fps=10.0)
    with open_video(path) as video:
        with pytest.raises(ValueError, match="positive"):
            next(video.samples(0.0))
        assert len(list(video.samples(2.0))) == 1
        with pytest.raises(ValueError, match="decoded once"):
            next(video.samples(2.0))
    with pytest.raises(ValueError, match="closed"):
        next(video.samples(2.0))


@pytest.mark.parametrize("fps", [3.0, 0.7, 25.0])
def test_other_rates_follow_the_slot_rule(tmp_path: Path, fps: float) -> None:
    path = tmp_path / "clip.mp4"
    write_frames(numbered(20), path, fps=10.0)
    got, _ = samples(path, fps=fps)
    times = [i * 100.0 for i in range(20)]
    assert [n for n, _ in got] == expected_samples(times, fps)
    assert [t for _, t in got] == pytest.approx([times[n] for n, _ in got])


def test_variable_frame_rate_is_sampled_by_presentation_time_not_frame_index(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    write_frames(numbered(24), path, fps=10.0)
    scale = media_timescale(path)
    # 10 fps for a second, then 2.5 fps, then a 3-second freeze, then 20 fps
    durations_ms = [100] * 10 + [400] * 6 + [3000] + [50] * 7
    retime_mp4(path, [scale * d // 1000 for d in durations_ms])
    times = [float(sum(durations_ms[:i])) for i in range(24)]
    got, video = samples(path, fps=2.0)
    assert [n for n, _ in got] == expected_samples(times, 2.0)
    assert [t for _, t in got] == pytest.approx([times[n] for n, _ in got], abs=1.0)
    # by index (every 5th frame at the declared average rate) the picks would differ
    assert [n for n, _ in got] != list(range(0, 24, 5))
    assert video.duration_ms == pytest.approx(sum(durations_ms), abs=1.0)


def test_rotation_metadata_delivers_upright_frames(tmp_path: Path) -> None:
    upright = numbered(10, width=160, height=120)
    sideways = [np.ascontiguousarray(np.rot90(f, k=1)) for f in upright]  # 120 x 160, band on the left
    path = tmp_path / "phone.mp4"
    write_frames(sideways, path, fps=10.0)
    rotate_mp4(path, 90)  # the display matrix turns it back clockwise
    with open_video(path) as video:
        frames = [f.pixels for f in video.samples(2.0)]
        assert video.info.rotation == 90 and (video.info.width, video.info.height) == (160, 120)
    assert frames[0].shape == (120, 160, 3)
    band = (frames[0][:, :, 0] > 200) & (frames[0][:, :, 1] < 60)
    assert band[:10].mean() > 0.9 and band[-60:].mean() < 0.05  # red band back along the top


def test_a_ten_hour_file_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "ten_hours.mp4"
    write_frames(numbered(3), path, fps=10.0)
    retime_mp4(path, [media_timescale(path) * 3600 * 5] * 3)  # 3 frames of 5 hours: 15 h declared
    with pytest.raises(VideoTooLong, match=r"lasts 54,000\.0 s; the limit \(max_duration\) is 7,200 s"):
        open_video(path)
    with open_video(path, max_duration_s=60_000) as video:  # a higher limit lets it through
        assert len(list(video.samples(0.001))) == 3


def test_a_header_that_understates_the_length_is_caught_at_the_first_frame_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "lying.mkv"
    write_frames(numbered(40), path, fps=10.0)
    set_mkv_duration(path, 1000.0)  # claims 1 s, holds 4 s
    with open_video(path, max_duration_s=2.0) as video:
        assert video.info.duration_ms_declared == pytest.approx(1000.0)
        with pytest.raises(VideoTooLong, match=r"frame at 2\.1 s"):
            list(video.samples(2.0))
        assert video.frames_decoded == 22


def test_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "8k.avi"
    write_frames([np.zeros((4320, 7680, 3), np.uint8)], path, fps=1.0)
    with pytest.raises(
        FrameTooLarge, match=r"7680x4320 = 33,177,600 pixels; the limit \(max_pixels_per_frame\) is 8,294,400"
    ):
        open_video(path)
    small = tmp_path / "small.mp4"
    write_frames(numbered(2), small, fps=10.0)
    with pytest.raises(FrameTooLarge, match="160x120"):
        open_video(small, max_pixels_per_frame=160 * 120 - 1)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".mkv"])
def test_truncated_files_are_errors_not_short_results(tmp_path: Path, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    write_frames(numbered(20), whole, fps=10.0)
    cut = tmp_path / f"cut{suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableVideo, match="truncated or damaged|cannot be opened"):
        with open_video(cut) as video:
            list(video.samples(2.0))


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_damaged_files_are_errors(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"damaged{suffix}"
    write_frames(numbered(20), path, fps=10.0)
    data = bytearray(path.read_bytes())
    start, end = len(data) // 3, len(data) // 3 + len(data) // 5
    data[start:end] = bytes((b * 7 + 3) % 256 for b in data[start:end])
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableVideo, match="truncated or damaged|no video frame|cannot be opened"):
        with open_video(path) as video:
            list(video.samples(2.0))


def test_a_video_without_frames_is_an_error(tmp_path: Path) -> None:
    import cv2

    for suffix, fourcc in ((".avi", "MJPG"), (".mp4", "mp4v")):
        path = tmp_path / f"empty{suffix}"
        cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 10.0, (160, 120)).release()
        assert path.stat().st_size > 0
        with pytest.raises(UnreadableVideo, match="no video frame|no video stream"):
            with open_video(path) as video:
                list(video.samples(2.0))


def test_a_file_that_changes_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "growing.mp4"
    write_frames(numbered(20), path, fps=10.0)
    with open_video(path) as video:
        frames = video.samples(2.0)
        next(frames)
        with open(path, "ab") as handle:
            handle.write(b"\0" * 100)
        with pytest.raises(UnreadableVideo, match="changed while it was read"):
            list(frames)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"hello, this is text\n", "not a video file facetrail reads"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 100, "is a JPEG image, not a video"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "is a PNG image"),
        (b"#EXTM3U\n#EXTINF:10,\nfile:///etc/hostname\n", "is an HLS playlist, not a video"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 100, r"is a still image \(heic\)"),
        (b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 100, "is a WebP image"),
        (b"\0\0\0\x18ftypisom" + os.urandom(2000), "cannot be opened"),
    ],
)
def test_what_is_not_a_video_is_refused_by_name(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.mp4"
    path.write_bytes(content)
    with pytest.raises(UnreadableVideo, match=message):
        open_video(path)


@pytest.mark.timeout(20)
def test_only_regular_files_are_read_a_fifo_or_device_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableVideo, match=r"is a FIFO \(named pipe\); only regular files"):
        open_video(fifo)
    with pytest.raises(UnreadableVideo, match="is a device"):
        open_video("/dev/zero")
    with pytest.raises(UnreadableVideo, match="is a folder"):
        open_video(tmp_path)
    with pytest.raises(UnreadableVideo, match="no such file"):
        open_video(tmp_path / "missing.mp4")


def test_a_path_is_never_read_as_an_ffmpeg_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_frames(numbered(4), tmp_path / "clip.mp4", fps=10.0)
    os.rename(tmp_path / "clip.mp4", tmp_path / "concat:clip.mp4|clip.mp4")
    got, _ = samples(Path("concat:clip.mp4|clip.mp4"), fps=10.0)
    assert [n for n, _ in got] == [0, 1, 2, 3]  # the file itself, not FFmpeg's concat protocol (8 frames)
    with pytest.raises(UnreadableVideo, match="no such file"):
        open_video("http://127.0.0.1:9/clip.mp4")


def test_sniff_container_families() -> None:
    assert sniff_container(b"\0\0\0\x20ftypisom\0\0\0\0") == "iso"
    assert sniff_container(b"\0\0\0\x08wide\0\0\0\0mdat") == "iso"
    assert sniff_container(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x01\x00") == "matroska"
    assert sniff_container(b"\0\0\0\x18ftypavif\0\0\0\0") is None
    assert sniff_container(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert sniff_container(struct.pack(">I", 8)) is None


# ---- through the engine (header-level refusals need no model) ---------------------


@pytest.fixture
def fake_engine_and_gallery():
    from core import Engine

    config: ModelConfig = make_config()
    gallery = LoadedGallery(GalleryRef("g", "0-" + "0" * 32, 0), config.embedding_key, ExactIndex(128))
    return Engine(config), gallery


def test_engine_refuses_bad_options_and_files_with_typed_errors(fake_engine_and_gallery, tmp_path: Path) -> None:
    engine, gallery = fake_engine_and_gallery
    clip = tmp_path / "clip.mp4"
    write_frames(numbered(4), clip, fps=10.0)
    for options, message in (
        ({"fps": 0.0}, "fps 0.0 is not a sampling rate"),
        ({"fps": math.nan}, "fps nan"),
        ({"fps": 61.0}, "fps 61.0"),
        ({"top_k": 0}, "top_k must be at least 1"),
        ({"threshold": 3.0}, "threshold 3.0 is not a cosine distance"),
        ({"min_face": 0}, "min_face must be at least 1"),
        ({"searches_per_track": 0}, "searches_per_track must be at least 1"),
        ({"max_duration": -1.0}, "max_duration -1.0"),
        ({"max_pixels_per_frame": 0}, "max_pixels_per_frame must be at least 1"),
    ):
        with pytest.raises(BadInput, match=message):
            engine.search_video(gallery, clip, **options)
    with pytest.raises(VideoTooLong):
        engine.search_video(gallery, clip, max_duration=0.1)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(UnreadableVideo, match="not a video file"):
        engine.search_video(gallery, text)
    other = LoadedGallery(gallery.ref, "another-key", gallery.index)
    with pytest.raises(ConfigMismatch, match="holds embeddings of configuration another-key"):
        engine.search_video(other, clip)
    assert engine._pipeline is None  # refused before any model was loaded


def test_refused_and_finished_videos_leave_no_open_file(tmp_path: Path) -> None:
    good, text = tmp_path / "clip.mp4", tmp_path / "text.mp4"
    write_frames(numbered(4), good, fps=10.0)
    text.write_text("not a video")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(UnreadableVideo):
            open_video(text)
        with pytest.raises(FrameTooLarge):
            open_video(good, max_pixels_per_frame=10)
        with open_video(good) as video:
            list(video.samples(2.0))
    assert len(os.listdir("/proc/self/fd")) == before
