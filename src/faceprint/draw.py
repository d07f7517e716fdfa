"""Drawing faces on images: boxes, landmarks and labels, for annotated outputs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import OutputError
from .image import ImageSource, load_image
from .types import Box, Face

_GREEN = (40, 200, 40)
_RED = (220, 50, 50)
_YELLOW = (250, 210, 0)


def annotate(pixels: np.ndarray, faces: Sequence[Face], labels: Sequence[str | None] | None = None) -> np.ndarray:
    """A copy of ``pixels`` with each face's box, landmarks and label drawn.

    Faces labelled ``unknown`` are drawn in red, others in green.
    """
    canvas = pixels.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    for i, face in enumerate(faces):
        label = labels[i] if labels else None
        colour = _RED if label == "unknown" else _GREEN
        left, top, right, bottom = (round(v) for v in face.box.as_tuple())
        cv2.rectangle(canvas, (left, top), (right, bottom), colour, thickness)
        points = face.landmarks68 if face.landmarks68 is not None else face.landmarks
        for x, y in points:
            cv2.circle(canvas, (round(x), round(y)), thickness + 1, _YELLOW, -1)
        if label:
            _label(canvas, label, left, bottom, colour, thickness)
    return canvas


def _label(canvas: np.ndarray, text: str, left: int, bottom: int, colour: tuple[int, int, int], thickness: int) -> None:
    scale = 0.5 * thickness
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(canvas, (left, bottom), (left + width + 6, bottom + height + baseline + 6), colour, -1)
    cv2.putText(
        canvas, text, (left + 3, bottom + height + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness
    )


def save(pixels: np.ndarray, path: Path) -> None:
    """Write RGB pixels to ``path`` (format from the suffix)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    except (OSError, ValueError, KeyError) as exc:  # PIL: KeyError or ValueError for a suffix it cannot write
        raise OutputError(
            f"{path}: cannot write the image ({exc.args[0] if exc.args else type(exc).__name__})"
        ) from None


def save_annotated(source: ImageSource, faces: Sequence[Face], labels: Sequence[str | None] | None, path: Path) -> None:
    """Write a copy of the image ``source`` with its faces drawn (see ``annotate``) to ``path``."""
    save(annotate(load_image(source).pixels, faces, labels), path)


def annotate_boxes(
    pixels: np.ndarray, boxes: Sequence[Box], labels: Sequence[str], known: Sequence[bool]
) -> np.ndarray:
    """A copy of ``pixels`` with labelled boxes: green for known people, red otherwise."""
    canvas = pixels.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    for box, label, is_known in zip(boxes, labels, known):
        colour = _GREEN if is_known else _RED
        left, top, right, bottom = (round(v) for v in box.as_tuple())
        cv2.rectangle(canvas, (left, top), (right, bottom), colour, thickness)
        _label(canvas, label, left, bottom, colour, thickness)
    return canvas


def thumbnail(image: ImageSource, box: Box, size: int = 96) -> bytes:
    """A small JPEG of one face: the square around ``box`` with a quarter of its size as margin, ``size`` wide."""
    pixels = load_image(image).pixels
    side = max(box.width, box.height) * 1.5
    centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    left, top = max(0, int(centre_x - side / 2)), max(0, int(centre_y - side / 2))
    crop = Image.fromarray(pixels[top : int(top + side), left : int(left + side)])
    buffer = io.BytesIO()
    crop.resize((size, size), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
