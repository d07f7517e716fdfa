"""Image loading: every source type and format, EXIF, odd modes, and every kind of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faceprint
from faceprint import InvalidImageError
from faceprint.image import load_image

from .conftest import ALEX, KIT

PHOTO = KIT[1]  # 630x374 JPEG


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_formats_decode_to_rgb(tmp_path: Path, rgb: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(rgb).save(path, fmt)
    loaded = load_image(path)
    assert loaded.pixels.shape == rgb.shape and loaded.pixels.dtype == np.uint8
    assert np.abs(loaded.pixels.astype(int) - rgb).mean() < 6  # lossy formats stay close


def test_sources_agree(rgb: np.ndarray) -> None:
    from_path = load_image(PHOTO)
    from_bytes = load_image(PHOTO.read_bytes())
    from_array = load_image(rgb)
    from_pil = load_image(Image.open(PHOTO))
    for other in (from_bytes, from_array, from_pil):
        assert np.array_equal(other.pixels, from_path.pixels)
    assert from_path.sha256 == from_bytes.sha256
    assert str(PHOTO) == from_path.name


def test_exif_orientation_is_applied(tmp_path: Path, rgb: np.ndarray) -> None:
    # Store the photo rotated with an EXIF tag saying "rotate back": cameras do this.
    rotated = Image.fromarray(np.rot90(rgb, k=1))  # turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    rotated.save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.pixels.shape == rgb.shape
    assert len(faceprint.detect(path)) == 1


def test_grey_rgba_and_16_bit_are_converted(tmp_path: Path, rgb: np.ndarray) -> None:
    grey = rgb.mean(axis=2).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert load_image(tmp_path / "grey.png").pixels.shape == rgb.shape
    deep = load_image(tmp_path / "grey16.png").pixels
    assert deep.shape == rgb.shape and abs(int(deep[..., 0].mean()) - int(grey.mean())) <= 1
    rgba = load_image(ALEX[0])  # a real RGBA PNG
    assert rgba.pixels.shape[2] == 3
    assert load_image(grey.astype(np.uint16) * 257).pixels.shape == rgb.shape
    assert load_image(rgb.astype(np.float32) / 255).pixels.max() > 200
    assert len(faceprint.detect(tmp_path / "grey.png")) == 1


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"nope\.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty\.jpg: the file is empty"):
        load_image(tmp_path / "empty.jpg")


def test_non_image_file(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("these are not pixels")
    with pytest.raises(InvalidImageError, match=r"notes\.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_file(tmp_path: Path) -> None:
    data = PHOTO.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match=r"cut\.jpg: corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="is a directory"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # 20000 x 20000 one-bit pixels: a 50 KB file that would decode to 1.2 GB of RGB.
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(InvalidImageError, match=r"bomb\.png: .*decompression bomb"):
        load_image(path)


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (2000, 1500)).save(path)
    assert load_image(path).pixels.shape == (1500, 2000, 3)
    with pytest.raises(InvalidImageError, match=r"big\.png: 2000x1500 is 3 MP, over the limit of 1 MP"):
        load_image(path, max_pixels=1_000_000)


def test_unusable_array_shape() -> None:
    with pytest.raises(InvalidImageError, match="expected an HxW"):
        load_image(np.zeros((4, 4, 5), dtype=np.uint8))


def test_bytes_source_error_names_size() -> None:
    with pytest.raises(InvalidImageError, match=r"<5 bytes>: not an image"):
        load_image(b"hello")


def test_pil_image_from_stream_round_trip() -> None:
    buffer = io.BytesIO()
    Image.open(PHOTO).save(buffer, "PNG")
    assert load_image(buffer.getvalue()).pixels.shape[:2] == (374, 630)
