"""Stored video files, decoded as a stream and sampled by presentation time.

>>> with open_video("cam.mp4") as video:
...     for frame in video.samples(fps=2.0):
...         frame.t_ms, frame.pixels.shape          # RGB uint8, upright
...     video.duration_ms

Decoder: OpenCV's FFmpeg backend
--------------------------------
Frames are decoded by ``cv2.VideoCapture`` with ``CAP_FFMPEG``: the FFmpeg that the
``opencv-contrib-python-headless`` wheel bundles. That wheel is already a pinned
dependency (deepface needs it), so video costs no new package and no second copy of
FFmpeg in the process. PyAV (~100 MB of wheels) was tried on the same bad files and
gives typed decode errors and the container's name, but it too decodes a truncated AVI
or a damaged MJPEG stream without complaint, so either way truncation must be found by
comparing what decoded with what the container declares. OpenCV gives what the job
needs: the presentation time of each frame (``CAP_PROP_POS_MSEC``, from FFmpeg's
best-effort timestamp, so variable frame rate is handled), the display-matrix rotation
applied to frames (``CAP_PROP_ORIENTATION_AUTO``), the frame size and declared length
before any frame is decoded, and ``grab()``/``retrieve()``, which decodes every frame
(unavoidable for inter-coded video) but converts to RGB only the sampled ones.

What this module adds around it
-------------------------------
- **Regular files only.** The path is opened non-blocking and ``fstat``-ed before
  anything reads it: a FIFO, ``/dev/zero``, a socket or a folder is
  :class:`UnreadableVideo` at once, never a hang. FFmpeg then opens the same open file
  (``/proc/self/fd/N`` on Linux), so the file cannot be swapped between the check and
  the decode, and a user path is never read as an FFmpeg URL (``http:``, ``concat:``).
- **A container allow-list by magic bytes**: ISO base media (MP4, MOV, M4V, 3GP), AVI
  and Matroska/WebM. Images, HEIF/AVIF stills, playlists (HLS ``#EXTM3U``, which would
  make FFmpeg open other files) and everything else are refused before FFmpeg parses a
  byte of them.
- **Identity**: the SHA-256 of the file's bytes, streamed in 1 MiB blocks. The file's
  size and modification time are checked again after decoding; a file that changed
  while it was read is refused (the hash would not describe what was searched).
- **Limits**: the frame size (``max_pixels_per_frame``, default 3840 x 2160) is checked
  from the header before decoding and on every sampled frame; the length
  (``max_duration``, default 2 hours) is checked from the header before decoding and on
  every decoded frame's timestamp, so a header that understates the length is caught
  within one frame of the limit.
- **Truncation and damage**: decoding that ends early is an error, not a short result.
  When the container indexes its frames (MP4/MOV, AVI) the decoded count must reach the
  index's count (within 1 % or 2 frames, for edit lists); for every container the
  decoded end must reach the declared duration (within 2 % or two frame intervals).
  A file with no frame that decodes is an error too.

Sampling rule
-------------
Sample slots are ``k / fps`` seconds (k = 0, 1, ...). A decoded frame is sampled when
its presentation time falls in a slot no earlier frame was sampled for; each sampled
frame is the first frame at or after its slot's start. Gaps in a variable-frame-rate
stream skip slots (no frame is sampled twice), bursts of frames are thinned, and a frame
whose timestamp does not advance past the previous frame's is decoded but never sampled.
Memory is bounded by one decoded frame (plus FFmpeg's own decoding buffers): the file is
never read whole.

FFmpeg reports damaged data on stderr through OpenCV; those lines are diagnostics, the
error this module raises is the outcome.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

import cv2
import numpy as np

from core.errors import FrameTooLarge, UnreadableVideo, VideoTooLong
from core.image import regular_fd

__all__ = [
    "DEFAULT_MAX_DURATION_S",
    "DEFAULT_MAX_PIXELS_PER_FRAME",
    "CONTAINERS",
    "VideoInfo",
    "VideoFacts",
    "SampledFrame",
    "VideoReader",
    "ReadAhead",
    "open_video",
    "video_facts",
    "sniff_container",
]

#: Default length limit, in seconds (a long CCTV export; a 10-hour file is refused).
DEFAULT_MAX_DURATION_S = 7200.0
#: Default per-frame pixel limit: 4K UHD. An 8K frame (33 MP) is refused.
DEFAULT_MAX_PIXELS_PER_FRAME = 3840 * 2160

#: Containers read, by the name :func:`sniff_container` returns.
CONTAINERS: dict[str, str] = {"iso": "MP4/MOV", "avi": "AVI", "matroska": "Matroska/WebM"}

_BLOCK = 1 << 20
_ISO_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
#: ISO base media brands of still images (HEIF, AVIF, JPEG 2000, camera raw): not video.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_IMAGE_BRANDS |= {b"jp2 ", b"jpx ", b"crx "}
_KNOWN_NOT_VIDEO = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"#EXTM3U", "an HLS playlist"),
    (b"%PDF", "a PDF document"),
)
#: Containers whose index lists every frame, so the decoded count can be checked against it.
_INDEXED = {"iso", "avi"}


def sniff_container(head: bytes) -> str | None:
    """Return the container family of a file from its first bytes, or ``None`` when not a video read here."""
    if len(head) >= 12 and head[4:8] in _ISO_FIRST_BOXES:
        if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
            return None
        return "iso"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    return None


def _not_video_message(label: str, head: bytes) -> str:
    for magic, what in _KNOWN_NOT_VIDEO:
        if head.startswith(magic):
            return f"{label}: is {what}, not a video"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return f"{label}: is a WebP image, not a video"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return f"{label}: is a still image ({head[8:12].decode('ascii', 'replace').strip()}), not a video"
    accepted = ", ".join(CONTAINERS.values())
    return f"{label}: not a video file facetrail reads (containers: {accepted})"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file is, as known before its frames are decoded.

    Attributes
    ----------
    source
        The path as given.
    sha256
        Hex SHA-256 of the file's bytes: the video's identity in results and records.
    size_bytes
        File size.
    container
        ``"iso"`` (MP4/MOV), ``"avi"`` or ``"matroska"`` (see :data:`CONTAINERS`).
    width, height
        Frame size the stream declares, in pixels, as frames are delivered (after rotation).
    rotation
        Clockwise rotation in degrees from the container's display matrix; frames are
        delivered already rotated upright.
    fps_declared
        The stream's average frame rate as the container states it (0 when unknown).
    frames_declared
        Frames the container lists or estimates (0 when unknown).
    duration_ms_declared
        ``frames_declared / fps_declared`` in milliseconds, or ``None`` when unknown.
    """

    source: str
    sha256: str
    size_bytes: int
    container: str
    width: int
    height: int
    rotation: int
    fps_declared: float
    frames_declared: int
    duration_ms_declared: float | None


@dataclass(frozen=True, eq=False)
class SampledFrame:
    """One sampled frame.

    Attributes
    ----------
    index
        Position among the decoded frames (0-based).
    t_ms
        Presentation time in milliseconds from the start of the stream.
    pixels
        RGB uint8, upright (rotation applied), shape ``(height, width, 3)``.
    """

    index: int
    t_ms: float
    pixels: np.ndarray


class VideoReader:
    """An open video file: checked, hashed and probed; decode it with :meth:`samples`.

    Build it with :func:`open_video` and close it (or use it as a context manager).
    """

    def __init__(
        self,
        info: VideoInfo,
        fd: int,
        capture: cv2.VideoCapture,
        snapshot: tuple[int, ...],
        *,
        max_duration_s: float,
        max_pixels_per_frame: int,
    ) -> None:
        self.info = info
        self._fd = fd
        self._capture: cv2.VideoCapture | None = capture
        self._snapshot = snapshot
        self._max_ms = max_duration_s * 1000.0
        self._max_pixels = max_pixels_per_frame
        self._started = False
        #: Frames decoded so far.
        self.frames_decoded = 0
        #: End time of the last decoded frame in ms (its timestamp plus one frame interval), once decoding ended.
        self.duration_ms: float | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder and the file."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            os.close(self._fd)

    def samples(self, fps: float) -> Iterator[SampledFrame]:
        """Decode the whole stream, yielding the frames sampled at ``fps`` (see the module's sampling rule).

        The checks for truncation and for a file that changed run after the last frame,
        so a caller sees the error in place of the end of iteration.

        Raises
        ------
        VideoTooLong
            A frame's timestamp lies beyond ``max_duration``.
        FrameTooLarge
            A sampled frame has more pixels than ``max_pixels_per_frame``.
        UnreadableVideo
            No frame decodes; decoding ended early (truncated or damaged); the file changed.
        """
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, not {fps}")
        capture = self._capture
        if capture is None:
            raise ValueError("the video is closed")
        if self._started:
            raise ValueError("a video is decoded once: open it again to sample it again")
        self._started = True
        label = self.info.source
        period = 1000.0 / fps
        next_slot = 0
        last_t = -math.inf
        last_step: float | None = None
        while capture.grab():
            self.frames_decoded += 1
            t = float(capture.get(cv2.CAP_PROP_POS_MSEC))
            if not math.isfinite(t) or t <= last_t:
                continue
            if t > self._max_ms:
                raise VideoTooLong(
                    f"{label}: has a frame at {t / 1000:,.1f} s; the limit (max_duration) is {self._max_ms / 1000:,.0f} s"
                )
            if last_t > -math.inf:
                last_step = t - last_t
            last_t = t
            slot = max(0, math.floor((t + 1e-3) / period))
            if slot < next_slot:
                continue
            next_slot = slot + 1
            ok, bgr = capture.retrieve()
            if not ok or bgr is None or bgr.ndim != 3:
                raise UnreadableVideo(f"{label}: the frame at {t / 1000:.3f} s decodes but cannot be converted to RGB")
            height, width = bgr.shape[:2]
            if width * height > self._max_pixels:
                raise FrameTooLarge(
                    f"{label}: the frame at {t / 1000:.3f} s is {width}x{height} = {width * height:,} pixels; "
                    f"the limit (max_pixels_per_frame) is {self._max_pixels:,}"
                )
            yield SampledFrame(self.frames_decoded - 1, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        self._finish(last_t, last_step)

    def _finish(self, last_t: float, last_step: float | None) -> None:
        info, label = self.info, self.info.source
        if self.frames_decoded == 0 or last_t == -math.inf:
            raise UnreadableVideo(f"{label}: holds no video frame that decodes")
        step = last_step if last_step is not None else (1000.0 / info.fps_declared if info.fps_declared > 0 else 0.0)
        self.duration_ms = last_t + step
        declared = info.frames_declared
        if info.container in _INDEXED and declared > 0:
            missing = declared - self.frames_decoded
            if missing > max(2.0, 0.01 * declared):
                raise UnreadableVideo(
                    f"{label}: is truncated or damaged: {self.frames_decoded:,} of the {declared:,} frames "
                    "its index lists could be decoded"
                )
        expected = info.duration_ms_declared
        if expected is not None and self.duration_ms < expected - max(2.0 * step, 0.02 * expected):
            raise UnreadableVideo(
                f"{label}: is truncated or damaged: decoding stopped at {self.duration_ms / 1000:,.2f} s "
                f"of the {expected / 1000:,.2f} s the container declares"
            )
        if _snapshot(os.fstat(self._fd)) != self._snapshot:
            raise UnreadableVideo(f"{label}: the file changed while it was read; its SHA-256 would not describe it")


def _snapshot(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_regular(path: Path, label: str) -> tuple[int, os.stat_result]:
    try:
        return regular_fd(path)
    except FileNotFoundError as err:
        raise UnreadableVideo(f"{label}: no such file") from err
    except OSError as err:
        raise UnreadableVideo(f"{label}: {err.strerror or err}") from err


def _hash(fd: int, label: str) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    head = b""
    try:
        while block := os.read(fd, _BLOCK):
            if not head:
                head = block[:64]
            digest.update(block)
    except OSError as err:
        raise UnreadableVideo(f"{label}: cannot read ({err.strerror or err})") from err
    return digest.hexdigest(), head


def _decoder_path(fd: int, path: Path) -> str:
    proc = Path(f"/proc/self/fd/{fd}")
    return str(proc) if proc.exists() else str(path.resolve())


def open_video(
    source: str | os.PathLike[str],
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    max_pixels_per_frame: int = DEFAULT_MAX_PIXELS_PER_FRAME,
) -> VideoReader:
    """Open, hash and probe a video file; nothing is decoded yet.

    Parameters
    ----------
    source
        Path of a regular file.
    max_duration_s
        Refuse videos longer than this many seconds.
    max_pixels_per_frame
        Refuse videos whose frames have more pixels than this.

    Raises
    ------
    UnreadableVideo
        Missing, empty, not a regular file, not a container read here, or a header
        FFmpeg cannot open (truncated, damaged, no video stream).
    FrameTooLarge
        The declared frame size exceeds ``max_pixels_per_frame``.
    VideoTooLong
        The declared length exceeds ``max_duration_s``.
    """
    if not (math.isfinite(max_duration_s) and max_duration_s > 0):
        raise ValueError(f"max_duration must be a positive number of seconds, not {max_duration_s}")
    if max_pixels_per_frame < 1:
        raise ValueError(f"max_pixels_per_frame must be at least 1, not {max_pixels_per_frame}")
    label = str(source)
    path = Path(source).expanduser()
    fd, st = _open_regular(path, label)
    capture: cv2.VideoCapture | None = None
    opened = False
    try:
        if st.st_size == 0:
            raise UnreadableVideo(f"{label}: the file is empty")
        sha256, head = _hash(fd, label)
        container = sniff_container(head)
        if container is None:
            raise UnreadableVideo(_not_video_message(label, head))
        capture = cv2.VideoCapture(
            _decoder_path(fd, path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_NONE]
        )
        if not capture.isOpened():
            raise UnreadableVideo(
                f"{label}: this {CONTAINERS[container]} file cannot be opened: its header is truncated or damaged, "
                "or it holds no video stream"
            )
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        info = _probe(capture, label, sha256, st.st_size, container)
        pixels = info.width * info.height
        if pixels > max_pixels_per_frame:
            raise FrameTooLarge(
                f"{label}: frames are {info.width}x{info.height} = {pixels:,} pixels; "
                f"the limit (max_pixels_per_frame) is {max_pixels_per_frame:,}"
            )
        if info.duration_ms_declared is not None and info.duration_ms_declared > max_duration_s * 1000.0:
            raise VideoTooLong(
                f"{label}: lasts {info.duration_ms_declared / 1000:,.1f} s; "
                f"the limit (max_duration) is {max_duration_s:,.0f} s"
            )
        opened = True
    finally:
        if not opened:  # refused (or interrupted): release what was opened, then let the error go on
            if capture is not None:
                capture.release()
            os.close(fd)
    return VideoReader(
        info, fd, capture, _snapshot(st), max_duration_s=max_duration_s, max_pixels_per_frame=max_pixels_per_frame
    )


def _probe(capture: cv2.VideoCapture, label: str, sha256: str, size: int, container: str) -> VideoInfo:
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        raise UnreadableVideo(f"{label}: its video stream declares no frame size")
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    raw_count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = int(raw_count) if math.isfinite(raw_count) and raw_count > 0 else 0
    duration = frames / fps * 1000.0 if fps > 0 and frames > 0 else None
    rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
    return VideoInfo(label, sha256, size, container, width, height, rotation, fps, frames, duration)


@dataclass(frozen=True)
class VideoFacts:
    """What is known of a file whose video search failed: for the record of the failed job.

    :func:`video_facts` fills what it can learn without decoding a frame; a field is
    ``None`` when it could not be learnt (a FIFO or a device is never read, a file that
    is not a container read here has no header to probe).

    Attributes
    ----------
    sha256
        Hex SHA-256 of the file's bytes, for a regular file that could be read.
    size_bytes
        File size, for a regular file.
    container
        Container family (see :data:`CONTAINERS`), when the first bytes name one.
    width, height
        Frame size the header declares (after rotation), when FFmpeg opens the header.
    duration_ms_declared
        Length the header declares, in milliseconds, when it declares one.
    """

    sha256: str | None = None
    size_bytes: int | None = None
    container: str | None = None
    width: int | None = None
    height: int | None = None
    duration_ms_declared: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "container": self.container,
            "width": self.width,
            "height": self.height,
            "duration_ms_declared": self.duration_ms_declared,
        }


def video_facts(source: str | os.PathLike[str]) -> VideoFacts:
    """Learn what can be known of ``source`` without decoding a frame (hash, size, container, header).

    Meant for the record of a job that failed: it never raises for what the file holds,
    and it reads only regular files (a FIFO, a device or a folder gives empty facts at once).
    The file is read once more to hash it.
    """
    label = str(source)
    path = Path(source).expanduser()
    try:
        fd, st = regular_fd(path)
    except OSError:
        return VideoFacts()
    capture: cv2.VideoCapture | None = None
    try:
        try:
            sha256, head = _hash(fd, label)
        except UnreadableVideo:
            return VideoFacts(size_bytes=st.st_size)
        container = sniff_container(head)
        if container is None:
            return VideoFacts(sha256, st.st_size)
        capture = cv2.VideoCapture(
            _decoder_path(fd, path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_NONE]
        )
        if not capture.isOpened():
            return VideoFacts(sha256, st.st_size, container)
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        try:
            info = _probe(capture, label, sha256, st.st_size, container)
        except UnreadableVideo:  # the header declares no frame size
            return VideoFacts(sha256, st.st_size, container)
        return VideoFacts(sha256, st.st_size, container, info.width, info.height, info.duration_ms_declared)
    finally:
        if capture is not None:
            capture.release()
        os.close(fd)


T = TypeVar("T")
_END = object()


class ReadAhead(Generic[T]):
    """Iterate ``items`` one step ahead on a worker thread (decode the next frame while this one is searched).

    OpenCV and numpy release the GIL while they decode and convert, so the decoder runs on
    the second core while the caller detects faces. An exception raised by ``items``
    reaches the caller at the item where it happened. :meth:`close` (or leaving the
    ``with`` block) waits for the step in flight, so the decoder is never released under
    a running ``grab()``.
    """

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="facetrail-decode")
        self._pending: futures.Future[object] | None = None

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        self._pending = self._pool.submit(next, self._items, _END)
        while True:
            item = self._pending.result()
            if item is _END:
                return
            self._pending = self._pool.submit(next, self._items, _END)
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Wait for the step in flight and stop the worker thread."""
        if self._pending is not None:
            futures.wait([self._pending])
        self._pool.shutdown(wait=True)
