"""Loading and normalising images from any source into RGB uint8 arrays.

Every source (path, bytes, numpy array, PIL image) ends as a C-contiguous ``(H, W, 3)``
uint8 RGB array with EXIF orientation applied. Anything that cannot become one raises
``InvalidImageError`` naming the input.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError
from .types import Box

ImageSource = str | os.PathLike | bytes | np.ndarray | Image.Image

#: Largest image accepted, in pixels (100 MP); beyond it a file is treated as a
#: decompression bomb. Override per call with ``max_pixels``.
MAX_PIXELS = 100_000_000

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """Decoded pixels plus what we need to report on and deduplicate the source."""

    pixels: np.ndarray
    name: str
    sha256: str


def describe(source: ImageSource) -> str:
    """A short human name for an image source, used in messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.size[0]}x{source.size[1]} {source.mode}>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode ``source`` into RGB uint8 pixels.

    >>> img = load_image("tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0001.jpg")
    >>> img.pixels.shape, img.pixels.dtype
    ((799, 1280, 3), dtype('uint8'))
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        pixels = _normalise_array(source, name)
        _check_size(pixels.shape[1], pixels.shape[0], max_pixels, name)
        return LoadedImage(pixels, name, hashlib.sha256(pixels.tobytes()).hexdigest())
    if isinstance(source, Image.Image):
        _check_size(*source.size, max_pixels, name)
        pixels = _decode_pil(source, name)
        return LoadedImage(pixels, name, hashlib.sha256(pixels.tobytes()).hexdigest())
    data = source if isinstance(source, bytes) else _read_file(Path(source), name)
    if not data:
        raise InvalidImageError(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # _check_size enforces faceprint's own limit; Pillow's warning below it would only leak to stderr.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                _check_size(*img.size, max_pixels, name)
                pixels = _decode_pil(img, name)
    except UnidentifiedImageError:
        raise InvalidImageError(f"{name}: not an image, or a format faceprint cannot read") from None
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{name}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports a header cut short this way
        raise InvalidImageError(f"{name}: corrupt or truncated image ({exc})") from None
    return LoadedImage(pixels, name, hashlib.sha256(data).hexdigest())


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InvalidImageError(f"{name}: is a directory, not an image") from None
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot read ({exc.strerror or exc})") from None


def _check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name}: {width}x{height} is {width * height / 1e6:.0f} MP, over the limit of "
            f"{max_pixels / 1e6:.0f} MP (possible decompression bomb; raise max_pixels if intended)"
        )


def _decode_pil(img: Image.Image, name: str) -> np.ndarray:
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{name}: corrupt or truncated image ({exc})") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _normalise_array(np.asarray(img), name)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas become white, not black, which keeps detection on cut-outs sane.
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def _normalise_array(array: np.ndarray, name: str) -> np.ndarray:
    """Arrays are taken as RGB (or grey, or RGBA); ints beyond 8 bits and floats are rescaled."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImageError(f"{name}: expected an HxW, HxWx3 or HxWx4 array")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        return np.ascontiguousarray(np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8))
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit sources (PNG, TIFF, sensors) are rescaled rather than clipped.
        top = 255 if int(array.max(initial=0)) <= 255 else 65535
        return np.ascontiguousarray((np.clip(array, 0, top) * (255.0 / top)).round().astype(np.uint8))
    raise InvalidImageError(f"{name}: unsupported array dtype {array.dtype}")


def face_thumbnail(pixels: np.ndarray, box: Box, side: int, *, margin: float = 0.25) -> bytes:
    """A ``side``-pixel square JPEG of the face in ``box``, with ``margin`` of its size around it (clipped to
    the image): small enough to keep one per face in a gallery, large enough to recognise someone by eye."""
    height, width = pixels.shape[:2]
    half = max(box.width, box.height) * (0.5 + margin)
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(width, int(cx + half)), min(height, int(cy + half))
    crop = Image.fromarray(pixels[top:bottom, left:right] if right > left and bottom > top else pixels)
    crop.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=85)
    return out.getvalue()


def iter_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, by suffix."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_files(inputs: Sequence[Path]) -> list[Path]:
    """Image files named directly, plus the image files under any folder named (an empty folder is an error)."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(_images_in(item))
        else:
            files.append(item)
    return files


def person_folders(folder: Path) -> dict[str, list[Path]]:
    """One sub-folder of photos per person: ``{sub-folder name: its image files}`` (sub-folders without images
    left out; no such sub-folder at all is an error)."""
    if not folder.is_dir():
        raise InvalidImageError(f"{folder}: not a folder")
    people = {d.name: iter_image_files(d) for d in sorted(folder.iterdir()) if d.is_dir()}
    people = {person: photos for person, photos in people.items() if photos}
    if not people:
        raise InvalidImageError(f"{folder}: no sub-folder with images (expected one folder per person)")
    return people


def read_image_list(path: Path) -> list[Path]:
    """The image paths of a text file, one a line (blank lines and lines starting with ``#`` skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read list ({exc.strerror or exc})") from None
    return [Path(line.strip()) for line in lines if line.strip() and not line.startswith("#")]


def _images_in(folder: Path) -> list[Path]:
    found = iter_image_files(folder)
    if not found:
        raise InvalidImageError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    return found


#: The leading bytes of each image format faceprint reads (IMAGE_SUFFIXES), by format name.
_SIGNATURES: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("jpeg", (b"\xff\xd8\xff",)),
    ("png", (b"\x89PNG\r\n\x1a\n",)),
    ("bmp", (b"BM",)),
    ("tiff", (b"II*\x00", b"MM\x00*")),
)


def sniff_format(data: bytes) -> str | None:
    """The image format ``data`` is in, read from its first bytes (not from a file name), or None when it is
    none that faceprint reads: a service checks an upload with this before decoding it."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for name, heads in _SIGNATURES if data.startswith(heads)), None)
