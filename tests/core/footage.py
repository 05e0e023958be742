"""Synthetic footage for the video tests and benchmark, made at run time (never committed).

A :class:`Scene` is a textured background wider than the frame (the camera pans over
it) and :class:`Actor` s: a portrait pasted along a path of keyframes, at a scale,
optionally blurred or hidden behind an occluder for a while. :func:`write_video`
renders it with OpenCV's FFmpeg writer (MP4/MOV: MPEG-4 Part 2; AVI: MJPEG;
MKV: VP8). Ground truth comes from the scene itself (:meth:`Scene.visible`), not
from the engine.

Two byte-level edits make what OpenCV's writer cannot: :func:`retime_mp4` rewrites
an MP4/MOV's sample durations (variable frame rate, or a lying header) and
:func:`rotate_mp4` sets the track's display matrix (a phone held sideways).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "VP80"}


def load_portrait(path: Path) -> np.ndarray:
    """A portrait as RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A face-free texture: smooth colour gradients, soft blobs and fine noise (RGB uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.002, 0.01), rng.uniform(0.002, 0.01), rng.uniform(0, 6.28)
        img[:, :, c] = 120 + 60 * np.sin(xx * fx + phase) * np.cos(yy * fy)
    for _ in range(max(4, width * height // 40_000)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(15, 60)
        colour = rng.uniform(40, 220, 3)
        mask = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[:, :, None]
        img = img * (1 - mask) + colour * mask
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class Actor:
    """A portrait moving through the scene.

    ``path`` holds ``(t_s, x, y, scale)`` keyframes in scene coordinates (the portrait's
    top-left corner), linearly interpolated; outside ``[first t, last t]`` the actor is absent.
    """

    portrait: np.ndarray
    path: Sequence[tuple[float, float, float, float]]
    blur: Sequence[tuple[float, float, float]] = ()  # (t0, t1, gaussian sigma)
    occluded: Sequence[tuple[float, float]] = ()  # (t0, t1): a board hides the face

    def state(self, t: float) -> tuple[float, float, float] | None:
        keys = self.path
        if t < keys[0][0] or t > keys[-1][0]:
            return None
        for (t0, x0, y0, s0), (t1, x1, y1, s1) in zip(keys, keys[1:], strict=False):
            if t0 <= t <= t1:
                a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0), s0 + a * (s1 - s0)
        return keys[-1][1], keys[-1][2], keys[-1][3]

    def face_visible(self, t: float) -> bool:
        return self.state(t) is not None and not any(t0 <= t <= t1 for t0, t1 in self.occluded)


@dataclass
class Scene:
    """A camera of ``width x height`` over ``world`` (wider background) during ``duration`` seconds."""

    width: int
    height: int
    duration: float
    actors: list[Actor] = field(default_factory=list)
    pan: Sequence[tuple[float, float, float]] = ((0.0, 0.0, 0.0),)  # (t_s, camera x, camera y) keyframes
    seed: int = 0

    def __post_init__(self) -> None:
        extra_x = int(max(x for _, x, _ in self.pan)) + 1
        extra_y = int(max(y for _, _, y in self.pan)) + 1
        self.world = background(self.width + extra_x, self.height + extra_y, self.seed)

    def camera(self, t: float) -> tuple[int, int]:
        keys = self.pan
        if t <= keys[0][0]:
            return int(keys[0][1]), int(keys[0][2])
        for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:], strict=False):
            if t0 <= t <= t1:
                a = (t - t0) / (t1 - t0)
                return int(x0 + a * (x1 - x0)), int(y0 + a * (y1 - y0))
        return int(keys[-1][1]), int(keys[-1][2])

    def visible(self, t: float) -> list[int]:
        """Indices of the actors whose face is in view (not occluded) at ``t``."""
        return [i for i, a in enumerate(self.actors) if a.face_visible(t)]

    def render(self, t: float) -> np.ndarray:
        """The RGB frame at time ``t``."""
        cx, cy = self.camera(t)
        frame = self.world[cy : cy + self.height, cx : cx + self.width].copy()
        for actor in self.actors:
            state = actor.state(t)
            if state is None:
                continue
            x, y, scale = state
            img = cv2.resize(actor.portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for t0, t1, sigma in actor.blur:
                if t0 <= t <= t1:
                    img = cv2.GaussianBlur(img, (0, 0), sigma)
            _paste(frame, img, int(round(x)) - cx, int(round(y)) - cy)
            if any(t0 <= t <= t1 for t0, t1 in actor.occluded):
                h, w = img.shape[:2]
                board = np.full((int(h * 0.75), int(w * 1.2), 3), (70, 60, 50), np.uint8)
                _paste(frame, board, int(round(x - 0.1 * w)) - cx, int(round(y)) - cy)
        return frame


def _paste(frame: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    h, w = img.shape[:2]
    fx0, fy0 = max(0, x), max(0, y)
    fx1, fy1 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    frame[fy0:fy1, fx0:fx1] = img[fy0 - y : fy1 - y, fx0 - x : fx1 - x]


def write_video(scene: Scene, path: Path, fps: float = 10.0) -> int:
    """Render ``scene`` at ``fps`` into ``path`` (codec by suffix); return the number of frames."""
    fourcc = cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()])
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, fourcc, fps, (scene.width, scene.height))
    assert writer.isOpened(), path
    count = int(math.floor(scene.duration * fps + 1e-9))
    for i in range(count):
        writer.write(cv2.cvtColor(scene.render(i / fps), cv2.COLOR_RGB2BGR))
    writer.release()
    return count


def write_frames(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """Write RGB frames as they are."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()]), fps, (width, height)
    )
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


# ---- MP4/MOV box edits ---------------------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    out, i = [], start
    while i < end:
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        assert size >= 8, "64-bit boxes are not written by OpenCV"
        out.append((kind, i, i + size))
        i += size
    return out


def _rebuild(data: bytes, start: int, end: int, edit) -> bytes:
    """Rebuild the boxes in ``data[start:end]``, letting ``edit(kind, payload)`` replace or drop (None) a leaf."""
    out = b""
    for kind, b0, b1 in _boxes(data, start, end):
        if kind in _CONTAINERS:
            body = _rebuild(data, b0 + 8, b1, edit)
        else:
            body = edit(kind, data[b0 + 8 : b1])
            if body is None:
                continue
        out += struct.pack(">I4s", len(body) + 8, kind) + body
    return out


def _edit_moov(path: Path, edit) -> None:
    data = path.read_bytes()
    top = _boxes(data, 0, len(data))
    kinds = [k for k, _, _ in top]
    assert kinds.index(b"moov") > kinds.index(b"mdat"), "moov after mdat: chunk offsets stay valid"
    out = b""
    for kind, b0, b1 in top:
        if kind == b"moov":
            body = _rebuild(data, b0 + 8, b1, edit)
            out += struct.pack(">I4s", len(body) + 8, kind) + body
        else:
            out += data[b0:b1]
    path.write_bytes(out)


def media_timescale(path: Path) -> int:
    """The video track's media timescale (ticks per second)."""
    data = path.read_bytes()
    i = data.index(b"mdhd")
    return struct.unpack(">I", data[i + 4 + 12 : i + 4 + 16])[0]


def retime_mp4(path: Path, deltas: Sequence[int], declared_ticks: int | None = None) -> None:
    """Give the MP4/MOV's frames the durations ``deltas`` (media ticks, one per frame).

    The track and movie durations are set to ``declared_ticks`` (default: the sum, an
    honest header; a smaller value makes a header that understates the length) and the
    edit list is dropped so that every frame is presented.
    """
    runs: list[list[int]] = []
    for d in deltas:
        if runs and runs[-1][1] == d:
            runs[-1][0] += 1
        else:
            runs.append([1, d])
    total = sum(deltas) if declared_ticks is None else declared_ticks
    scale = media_timescale(path)

    def edit(kind: bytes, payload: bytes) -> bytes | None:
        if kind == b"edts":
            return None
        if kind == b"stts":
            entries = struct.unpack(">I", payload[4:8])[0]
            frames = sum(struct.unpack(">I", payload[8 + 8 * e : 12 + 8 * e])[0] for e in range(entries))
            assert frames == len(deltas), f"{frames} frames in the file, {len(deltas)} durations given"
            return b"\0\0\0\0" + struct.pack(">I", len(runs)) + b"".join(struct.pack(">II", c, d) for c, d in runs)
        if kind == b"mdhd":
            assert payload[0] == 0
            return payload[:16] + struct.pack(">I", total) + payload[20:]
        if kind in (b"mvhd", b"tkhd"):
            assert payload[0] == 0
            movie_scale = movie[0]
            ticks = int(round(total / scale * movie_scale))
            offset = 16 if kind == b"mvhd" else 20
            return payload[:offset] + struct.pack(">I", ticks) + payload[offset + 4 :]
        return payload

    data = path.read_bytes()
    i = data.index(b"mvhd")
    movie = [struct.unpack(">I", data[i + 4 + 12 : i + 4 + 16])[0]]
    _edit_moov(path, edit)


def rotate_mp4(path: Path, degrees: int) -> None:
    """Set the video track's display matrix to a clockwise rotation of ``degrees`` (90, 180 or 270)."""
    one, zero = 0x10000, 0
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    fixed = [cos * one, sin * one, zero, -sin * one, cos * one, zero, 0, 0, 0x40000000]

    def edit(kind: bytes, payload: bytes) -> bytes | None:
        if kind == b"tkhd":
            assert payload[0] == 0
            return payload[:40] + struct.pack(">9i", *fixed) + payload[76:]
        return payload

    _edit_moov(path, edit)


def set_mkv_duration(path: Path, ms: float) -> None:
    """Overwrite a Matroska file's declared duration (the Segment Info ``Duration`` float, in milliseconds)."""
    data = bytearray(path.read_bytes())
    i = data.index(b"\x44\x89")
    assert data[i + 2] == 0x88, "an 8-byte float, as FFmpeg's muxer writes it"
    data[i + 3 : i + 11] = struct.pack(">d", ms)
    path.write_bytes(bytes(data))


def face_box_at(
    scene: Scene, actor: int, t: float, face: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """Frame coordinates ``(x, y, w, h)`` of an actor's face at ``t``, given its box in the portrait."""
    state = scene.actors[actor].state(t)
    if state is None:
        return None
    x, y, scale = state
    cx, cy = scene.camera(t)
    fx, fy, fw, fh = face
    return int(x + fx * scale) - cx, int(y + fy * scale) - cy, int(fw * scale), int(fh * scale)


def in_view(scene: Scene, actor: int, t: float, face: tuple[int, int, int, int], share: float = 0.75) -> bool:
    """Whether at least ``share`` of the actor's face box lies inside the frame, unoccluded, at ``t``."""
    box = face_box_at(scene, actor, t, face)
    if box is None or not scene.actors[actor].face_visible(t):
        return False
    x, y, w, h = box
    inside_w = max(0, min(x + w, scene.width) - max(x, 0))
    inside_h = max(0, min(y + h, scene.height) - max(y, 0))
    return inside_w * inside_h >= share * w * h


def write_times(scene: Scene, path: Path, times: Sequence[float]) -> None:
    """Render ``scene`` at the given (uneven) times into an MP4/MOV that presents each frame at its time."""
    assert times[0] == 0.0, "a video's clock starts at its first frame"
    frames = [scene.render(t) for t in times]
    write_frames(frames, path, fps=10.0)
    scale = media_timescale(path)
    ends = list(times[1:]) + [times[-1] + (times[-1] - times[-2])]
    retime_mp4(path, [int(round(b * scale)) - int(round(a * scale)) for a, b in zip(times, ends, strict=True)])
