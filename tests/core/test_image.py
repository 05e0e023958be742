"""The safe image loader: formats, normalisation and every kind of bad input."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from core.errors import ImageTooLarge, UnreadableImage
from core.image import load_image


def _gradient(width: int = 64, height: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    r = np.tile(x, (height, 1))
    g = np.tile(y[:, None], (1, width))
    b = np.full((height, width), 128, dtype=np.float32)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def _save(img: PILImage.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_lossless_formats_round_trip_exactly(fmt: str) -> None:
    pixels = _gradient()
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    data = _save(PILImage.fromarray(pixels), fmt, **kwargs)
    image = load_image(data)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.sha256 == hashlib.sha256(data).hexdigest()


def test_jpeg_loads_close_to_source() -> None:
    pixels = _gradient()
    image = load_image(_save(PILImage.fromarray(pixels), "JPEG", quality=95))
    assert np.abs(image.pixels.astype(int) - pixels.astype(int)).mean() < 3


def test_path_and_bytes_give_the_same_identity(tmp_path: Path) -> None:
    data = _save(PILImage.fromarray(_gradient()), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert load_image(path).sha256 == load_image(data).sha256 == hashlib.sha256(data).hexdigest()
    assert load_image(str(path)).source == str(path)


def test_exif_orientation_is_applied() -> None:
    pixels = _gradient(64, 48)
    img = PILImage.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = load_image(_save(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert image.pixels.shape == (64, 48, 3)


def test_grayscale_becomes_rgb() -> None:
    gray = _gradient()[:, :, 0]
    image = load_image(_save(PILImage.fromarray(gray, mode="L"), "PNG"))
    assert image.pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(image.pixels[:, :, 0], gray)
    np.testing.assert_array_equal(image.pixels[:, :, 1], gray)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    data = _save(PILImage.fromarray(values), "PNG")
    image = load_image(data)
    assert image.pixels.shape == (48, 64, 3)
    assert image.pixels[0, 0, 0] == 0 and image.pixels[-1, -1, 0] == 255
    # the middle of the range stays in the middle (clipping would give 255 almost everywhere)
    assert 100 < int(image.pixels[24, 32, 0]) < 160


def test_cmyk_jpeg_becomes_rgb() -> None:
    pixels = _gradient()
    data = _save(PILImage.fromarray(pixels).convert("CMYK"), "JPEG", quality=95)
    image = load_image(data)
    assert image.pixels.shape == (48, 64, 3)
    assert np.abs(image.pixels.astype(int) - pixels.astype(int)).mean() < 6


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[:, :, 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half transparent
    image = load_image(_save(PILImage.fromarray(rgba, mode="RGBA"), "PNG"))
    assert tuple(image.pixels[0, 0]) == (200, 0, 0)
    assert tuple(image.pixels[9, 9]) == (255, 255, 255)


def test_palette_image_becomes_rgb() -> None:
    img = PILImage.fromarray(_gradient()).convert("P")
    assert load_image(_save(img, "PNG")).pixels.shape == (48, 64, 3)


def test_array_input_rgb_gray_and_rgba() -> None:
    pixels = _gradient()
    assert load_image(pixels).pixels.shape == (48, 64, 3)
    assert load_image(pixels[:, :, 0]).pixels.shape == (48, 64, 3)
    rgba = np.concatenate([pixels, np.full((48, 64, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(load_image(rgba).pixels, pixels)
    with pytest.raises(UnreadableImage, match="uint8"):
        load_image(pixels.astype(np.float32))


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnreadableImage, match="empty"):
        load_image(path)


def test_truncated_jpeg_is_unreadable() -> None:
    data = _save(PILImage.fromarray(_gradient(256, 256)), "JPEG", quality=95)
    with pytest.raises(UnreadableImage, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_text_file_named_jpg_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(UnreadableImage, match="not an image"):
        load_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="no such file"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(UnreadableImage, match="folder"):
        load_image(tmp_path)


def test_unsupported_format_is_named() -> None:
    data = _save(PILImage.fromarray(_gradient()), "GIF")
    with pytest.raises(UnreadableImage, match="GIF"):
        load_image(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but carries almost no data (a bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_30000_by_30000_png_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(ImageTooLarge, match="900000000 pixels|30000x30000"):
        load_image(path)


def test_pixel_limit_is_configurable() -> None:
    data = _save(PILImage.fromarray(_gradient(64, 48)), "PNG")
    with pytest.raises(ImageTooLarge, match="limit is 1,000"):
        load_image(data, max_pixels=1000)


def test_byte_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_save(PILImage.fromarray(_gradient()), "PNG"))
    with pytest.raises(ImageTooLarge, match="bytes"):
        load_image(path, max_bytes=10)


def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_image(42)  # type: ignore[arg-type]
