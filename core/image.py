"""The one safe image loader.

Every image that enters facetrail passes through :func:`load_image`: a path, the
raw bytes of a file, or a pixel array. It returns an :class:`Image` with RGB
uint8 pixels and the SHA-256 of the source bytes, which is the image's identity
in caches, galleries and audit records (the image itself is never stored).

What it guards against and normalises:

- formats: JPEG, PNG, WebP and BMP; anything else is :class:`UnreadableImage`;
- empty, truncated or corrupt files, and text files with an image name;
- decompression bombs: the pixel count is read from the header and checked
  against ``max_pixels`` *before* the pixels are decoded (:class:`ImageTooLarge`);
- EXIF orientation (applied), grayscale, palette, CMYK, 16-bit and alpha
  (composited onto white), so every image comes out as 8-bit RGB.

RGB/BGR conversion happens here and in the deepface adapter only.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from core.errors import ImageTooLarge, UnreadableImage

__all__ = ["Image", "ImageSource", "load_image", "open_regular", "regular_fd", "sha256_file", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES"]

#: Default pixel limit: 40 megapixels is a large photo; bombs claim billions.
DEFAULT_MAX_PIXELS = 40_000_000
#: Default file-size limit.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "MPO"}  # MPO: multi-picture JPEG from phones

ImageSource = str | os.PathLike[str] | bytes | np.ndarray


@dataclass(frozen=True, eq=False)
class Image:
    """A decoded image.

    Attributes
    ----------
    pixels
        RGB, uint8, shape ``(height, width, 3)``, C-contiguous.
    sha256
        Hex SHA-256 of the source bytes (of the array's bytes and shape for arrays).
    source
        The path as given, or ``"<bytes>"`` / ``"<array>"``.
    """

    pixels: np.ndarray
    sha256: str
    source: str

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def regular_fd(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and return ``(fd, stat)`` only if it is a regular file.

    The open itself never blocks (a named pipe is opened non-blocking, then the fd is
    set blocking again), and devices, pipes, sockets and folders are refused before a
    byte is read, so ``/dev/zero`` or a FIFO named as an image or a video fails at once
    instead of hanging. The caller owns the fd.

    Raises
    ------
    FileNotFoundError, PermissionError
        As :func:`os.open` does.
    IsADirectoryError
        For a folder.
    OSError
        ``EINVAL`` with ``strerror`` "is a FIFO (named pipe); only regular files are read" and the like.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        error = IsADirectoryError if code == errno.EISDIR else OSError
        raise error(code, f"is {_kind(st.st_mode)}; only regular files are read", str(path))
    os.set_blocking(fd, True)
    return fd, st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading (see :func:`regular_fd`; anything else is refused at once)."""
    fd, _ = regular_fd(path)
    return os.fdopen(fd, "rb")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a regular file's bytes (streamed; see :func:`open_regular`)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_path(path: Path, max_bytes: int) -> bytes:
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise ImageTooLarge(f"{path}: file is {size:,} bytes; the limit is {max_bytes:,}")
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as err:
        raise UnreadableImage(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise UnreadableImage(f"{path}: is a folder, not an image file") from err
    except OSError as err:
        raise UnreadableImage(f"{path}: cannot read ({err.strerror or err})") from err
    if len(data) > max_bytes:  # it grew while being read
        raise ImageTooLarge(f"{path}: file is over {max_bytes:,} bytes, the limit")
    return data


def _to_rgb(img: PILImage.Image) -> np.ndarray:
    """Normalise any decoded PIL image to RGB uint8."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        raw = np.asarray(img)
        if mode == "I":  # 32-bit integer; PNG 16-bit grayscale often decodes to this
            raw = np.clip(raw, 0, 65535)
        gray = (raw.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if mode == "F":
        raw = np.asarray(img, dtype=np.float32)
        top = float(raw.max()) or 1.0
        gray = np.clip(raw / top * 255.0, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _decode(data: bytes, label: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise UnreadableImage(f"{label}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{label}: {width}x{height} is {width * height:,} pixels; the limit is {max_pixels:,}"
                )
            if img.format not in _FORMATS:
                raise UnreadableImage(
                    f"{label}: {img.format or 'unknown'} images are not supported (use JPEG, PNG, WebP or BMP)"
                )
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        raise ImageTooLarge(f"{label}: image is too large to decode safely ({err})") from err
    except UnidentifiedImageError as err:
        raise UnreadableImage(f"{label}: not an image in a supported format (JPEG, PNG, WebP, BMP)") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # PIL reports truncated and corrupt data with these
        raise UnreadableImage(f"{label}: the image data is damaged or truncated ({err})") from err


def _from_array(array: np.ndarray) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise UnreadableImage(f"<array>: pixel type must be uint8, not {arr.dtype}")
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnreadableImage(f"<array>: expected an (H, W), (H, W, 3) or (H, W, 4) RGB array, got {arr.shape}")
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image:
    """Load an image from a path, the bytes of a file, or an RGB array.

    Parameters
    ----------
    source
        A file path, the file's bytes, or a uint8 array (RGB or RGBA, or grayscale).
    max_pixels
        Refuse images with more pixels than this (checked before decoding).
    max_bytes
        Refuse files larger than this.

    Returns
    -------
    Image
        RGB uint8 pixels and the SHA-256 of the source bytes.

    Raises
    ------
    UnreadableImage
        Missing, empty, truncated or corrupt file; unsupported format.
    ImageTooLarge
        More than ``max_pixels`` pixels or ``max_bytes`` bytes.
    """
    if isinstance(source, np.ndarray):
        pixels = _from_array(source)
        if pixels.shape[0] * pixels.shape[1] > max_pixels:
            raise ImageTooLarge(f"<array>: {pixels.shape[1]}x{pixels.shape[0]} exceeds {max_pixels:,} pixels")
        digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
        return Image(pixels=pixels, sha256=digest, source="<array>")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageTooLarge(f"<bytes>: {len(data):,} bytes; the limit is {max_bytes:,}")
        label = "<bytes>"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        data = _read_path(path, max_bytes)
        label = str(source)
    else:
        raise TypeError(f"load_image takes a path, bytes or a numpy array, not {type(source).__name__}")
    pixels = _decode(data, label, max_pixels)
    return Image(pixels=pixels, sha256=hashlib.sha256(data).hexdigest(), source=label)
