"""``face_recognition.api`` (1.4) on faceprint: the same functions, private helpers included.

Locations, landmarks and the dlib objects of ``_raw_face_locations``, ``_raw_face_locations_batched``
and ``_raw_face_landmarks`` come from dlib's own detectors and shape predictors, called as the
original calls them, so they are identical. Encodings are dlib's raw (not unit-normalised) 128-d
descriptors of the same chips, computed by faceprint's ONNX port of dlib's ResNet in one batch
per image (within 1e-6 of dlib's), so ``tolerance=0.6`` keeps its meaning. This layer pins dlib's
models: faceprint's own default embedding model does not apply here.

Differences, on purpose: models load on first use rather than at import (``face_detector``,
``cnn_face_detector``, ``pose_predictor_68_point``, ``pose_predictor_5_point`` and
``face_encoder`` are still there as module attributes); and importing this module does not make
Pillow accept truncated image files for the whole process (the original sets
``ImageFile.LOAD_TRUNCATED_IMAGES``), so a cut file raises ``OSError`` instead of loading grey.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, Any

import dlib
import numpy as np
import PIL.Image

from ... import align, embedding, models

#: (top, right, bottom, left), in pixels.
Css = tuple[int, int, int, int]

_MODELS: dict[str, Callable[[], Any]] = {
    "face_detector": models.hog_detector,
    "cnn_face_detector": models.cnn_detector,
    "pose_predictor_68_point": lambda: models.shape_predictor(68),
    "pose_predictor_5_point": lambda: models.shape_predictor(5),
    "face_encoder": models.dlib_embedder,
}


def __getattr__(name: str) -> Any:
    """The original's module-level dlib models, loaded when first asked for."""
    if name in _MODELS:
        return _MODELS[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rect_to_css(rect: dlib.rectangle) -> Css:
    """A dlib rectangle as (top, right, bottom, left)."""
    return rect.top(), rect.right(), rect.bottom(), rect.left()


def _css_to_rect(css: Sequence[int]) -> dlib.rectangle:
    """(top, right, bottom, left) as a dlib rectangle."""
    return dlib.rectangle(css[3], css[0], css[1], css[2])


def _trim_css_to_bounds(css: Sequence[int], image_shape: tuple[int, ...]) -> Css:
    """(top, right, bottom, left) clipped to an image of numpy shape ``image_shape``."""
    return max(css[0], 0), min(css[1], image_shape[1]), min(css[2], image_shape[0]), max(css[3], 0)


def face_distance(face_encodings: Any, face_to_compare: np.ndarray) -> np.ndarray:
    """The Euclidean distance of each encoding to ``face_to_compare`` (an empty array for no encodings)."""
    if len(face_encodings) == 0:
        return np.empty(0)
    return np.linalg.norm(face_encodings - face_to_compare, axis=1)


def load_image_file(file: str | IO[bytes], mode: str = "RGB") -> np.ndarray:
    """An image file (.jpg, .png, ...) as a numpy array, converted to ``mode`` ("RGB" or "L")."""
    image: PIL.Image.Image = PIL.Image.open(file)
    if mode:
        image = image.convert(mode)
    return np.array(image)


def _raw_face_locations(img: np.ndarray, number_of_times_to_upsample: int = 1, model: str = "hog") -> Any:
    """dlib's detections: ``rectangles`` from HOG, ``mmod_rectangles`` from the CNN (``model="cnn"``)."""
    if model == "cnn":
        return models.cnn_detector()(img, number_of_times_to_upsample)
    return models.hog_detector()(img, number_of_times_to_upsample)


def face_locations(img: np.ndarray, number_of_times_to_upsample: int = 1, model: str = "hog") -> list[Css]:
    """Face boxes as (top, right, bottom, left) tuples, by dlib's HOG (default) or CNN (``model="cnn"``) detector."""
    found = _raw_face_locations(img, number_of_times_to_upsample, model)
    rects = [face.rect for face in found] if model == "cnn" else list(found)
    return [_trim_css_to_bounds(_rect_to_css(rect), img.shape) for rect in rects]


def _raw_face_locations_batched(
    images: Sequence[np.ndarray], number_of_times_to_upsample: int = 1, batch_size: int = 128
) -> Any:
    """dlib's CNN detections of each image (``mmod_rectangles`` per image), ``batch_size`` images at a time."""
    return models.cnn_detector()(images, number_of_times_to_upsample, batch_size=batch_size)


def batch_face_locations(
    images: Sequence[np.ndarray], number_of_times_to_upsample: int = 1, batch_size: int = 128
) -> list[list[Css]]:
    """The CNN's face boxes of each image (all of one size), as (top, right, bottom, left) tuples."""
    batched = _raw_face_locations_batched(images, number_of_times_to_upsample, batch_size)
    # As the original: every image's boxes are clipped to the first image's size.
    return [[_trim_css_to_bounds(_rect_to_css(face.rect), images[0].shape) for face in found] for found in batched]


def _raw_face_landmarks(
    face_image: np.ndarray, face_locations: Sequence[Sequence[int]] | None = None, model: str = "large"
) -> list[dlib.full_object_detection]:
    """dlib's landmark fits (68 points; 5 with ``model="small"``) of the given faces, or of HOG's."""
    if face_locations is None:
        rects = list(_raw_face_locations(face_image))
    else:
        rects = [_css_to_rect(location) for location in face_locations]
    predictor = models.shape_predictor(5 if model == "small" else 68)
    return [predictor(face_image, rect) for rect in rects]


def face_landmarks(
    face_image: np.ndarray, face_locations: Sequence[Sequence[int]] | None = None, model: str = "large"
) -> list[dict[str, list[tuple[int, int]]]]:
    """Each face's features (chin, eyebrows, nose, eyes, lips) as lists of (x, y) points."""
    fits = _raw_face_landmarks(face_image, face_locations, model)
    points = [[(p.x, p.y) for p in fit.parts()] for fit in fits]
    if model == "large":
        return [_features_68(face) for face in points]
    if model == "small":
        return [{"nose_tip": [face[4]], "left_eye": face[2:4], "right_eye": face[0:2]} for face in points]
    raise ValueError("Invalid landmarks model type. Supported models are ['small', 'large'].")


def _features_68(points: list[tuple[int, int]]) -> dict[str, list[tuple[int, int]]]:
    # The original's grouping of dlib's 68 points, lips walked around from each mouth corner.
    return {
        "chin": points[0:17],
        "left_eyebrow": points[17:22],
        "right_eyebrow": points[22:27],
        "nose_bridge": points[27:31],
        "nose_tip": points[31:36],
        "left_eye": points[36:42],
        "right_eye": points[42:48],
        "top_lip": [*points[48:55], points[64], points[63], points[62], points[61], points[60]],
        "bottom_lip": [*points[54:60], points[48], points[60], points[67], points[66], points[65], points[64]],
    }


def face_encodings(
    face_image: np.ndarray,
    known_face_locations: Sequence[Sequence[int]] | None = None,
    num_jitters: int = 1,
    model: str = "small",
) -> list[np.ndarray]:
    """dlib's 128-d encoding (float64, not normalised) of each face, aligned by the 5-point ("small") or 68-point fit.

    ``num_jitters`` > 1 averages that many randomly jittered views of each face, drawn as dlib draws them.
    """
    fits = _raw_face_landmarks(face_image, known_face_locations, model)
    chips = [align.face_chip(face_image, fit) for fit in fits]
    if not chips:
        return []
    found = embedding.dlib_face_descriptors(chips, num_jitters=num_jitters)
    return list(found.astype(np.float64))


def compare_faces(known_face_encodings: Any, face_encoding_to_check: np.ndarray, tolerance: float = 0.6) -> list[bool]:
    """Whether each known encoding is within ``tolerance`` (Euclidean) of ``face_encoding_to_check``."""
    return list(face_distance(known_face_encodings, face_encoding_to_check) <= tolerance)
