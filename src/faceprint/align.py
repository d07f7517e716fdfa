"""Landmarks and alignment: dlib shape predictors, dlib's face chip and the ArcFace-template chip.

dlib's chip is its own ``get_face_chip`` from the 5-point landmarks (a similarity transform to
150x150 with 25% padding), exactly what the ResNet embedding was trained on. The ArcFace chip
(SFace's input) maps 5 points (eyes, nose tip, mouth corners) onto the ArcFace template of a
112x112 face by the least-squares similarity transform (Umeyama's), as OpenCV's
``FaceRecognizerSF.alignCrop`` does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from . import landmarks, models
from .types import Box

#: Where the eyes (the image's left one first), the nose tip and the mouth corners (left first) go
#: in a 112x112 ArcFace chip.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_SIZE = 112


def shape(pixels: np.ndarray, box: Box, points: int = 5) -> dlib.full_object_detection:
    """dlib's landmark fit for one face box (5 or 68 points)."""
    return models.shape_predictor(points)(pixels, dlib.rectangle(*dlib_rect(box)))


def points_array(fit: dlib.full_object_detection) -> np.ndarray:
    """Landmarks as an ``(N, 2)`` float32 array of (x, y)."""
    return np.array([(p.x, p.y) for p in fit.parts()], dtype=np.float32)


def face_chip(
    pixels: np.ndarray, fit: dlib.full_object_detection, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The aligned ``size`` x ``size`` RGB chip the embedding model expects."""
    return dlib.get_face_chip(pixels, fit, size=size, padding=padding)


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """The ArcFace template's 5 points from dlib's 68: eye centres (means of 36-41 and 42-47), nose tip
    (30), mouth corners (48, 54)."""
    return np.array(
        [points68[36:42].mean(axis=0), points68[42:48].mean(axis=0), points68[30], points68[48], points68[54]],
        dtype=np.float32,
    )


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + shift that maps ``source`` points onto ``target`` with the least
    squared error (Umeyama, 1991; in 2-D its rotation and scale ``[[a, -b], [b, a]]`` have a closed form)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    (sx, sy), (tx, ty) = (source - source_mean).T, (target - target_mean).T
    spread = float(sx @ sx + sy @ sy)
    a, b = (float(sx @ tx + sy @ ty) / spread, float(sx @ ty - sy @ tx) / spread) if spread else (1.0, 0.0)
    turn = np.array([[a, -b], [b, a]])
    return np.hstack([turn, (target_mean - turn @ source_mean)[:, None]])


def arcface_chip(pixels: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """The 112x112 RGB chip with the 5 points moved onto :data:`ARCFACE_TEMPLATE`."""
    matrix = similarity_transform(points5, ARCFACE_TEMPLATE)
    return cv2.warpAffine(pixels, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR)


@dataclass(eq=False)
class FacePoints:
    """What a model may align a face by: dlib's 5-point fit, the detector's own 5 points (YuNet's) and
    dlib's 68 points, fitted only if asked for; and dlib's chip, which quality is assessed on."""

    pixels: np.ndarray
    box: Box
    fit: dlib.full_object_detection
    detector: np.ndarray | None

    @functools.cached_property
    def dlib68(self) -> np.ndarray:
        return fit68(self.pixels, self.box)

    @functools.cached_property
    def dlib_chip(self) -> np.ndarray:
        return face_chip(self.pixels, self.fit, models.DLIB_RESNET.chip_size, models.DLIB_RESNET.chip_padding)


def fit68(pixels: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 landmarks of one face box as an ``(68, 2)`` float32 array of whole-pixel (x, y): dlib's
    68-point shape predictor run in numpy (:class:`CascadePredictor`) on its converted model."""
    return _predictor68()(pixels, dlib_rect(box))


@functools.cache
def _predictor68() -> CascadePredictor:
    return CascadePredictor(landmarks.load_shape_model(68))


def dlib_rect(box: Box) -> tuple[int, int, int, int]:
    """``box`` as dlib's rectangle (left, top, right, bottom): whole pixels, the right and bottom inclusive."""
    return round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1


class CascadePredictor:
    """dlib's ``shape_predictor`` (a cascade of regression-tree forests) on a converted model
    (:mod:`faceprint.landmarks`), computing as dlib does: the same pixels sampled, the same trees' leaves added
    in the same order in float32, so the points equal dlib's (up to a feature pixel that float rounding could
    move across a pixel boundary: none in 379 faces, tests/test_landmarks.py)."""

    def __init__(self, model: np.ndarray) -> None:
        # Plain arrays over the memory map (a memmap's own indexing costs more than the lookups).
        self.initial, self.deltas, self.anchors = (np.asarray(model[name]) for name in ("initial", "deltas", "anchors"))
        cascades, trees, leaves, values = model["leaves"].shape
        # Per cascade, the trees' splits and leaves one after another: node n of tree t is row t * count + n.
        self.idx1, self.idx2, self.thresh = (
            np.asarray(model[name]).reshape(cascades, -1) for name in ("idx1", "idx2", "thresh")
        )
        self.leaves = np.asarray(model["leaves"]).reshape(cascades, trees * leaves, values)
        self.depth = leaves.bit_length() - 1
        self.splits, self.leaf_count = leaves - 1, leaves
        self.tree_rows = np.arange(trees)

    def __call__(self, pixels: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        left, top, right, bottom = rect
        size = np.array([right - left, bottom - top], dtype=np.float64)
        corner = np.array([left, top], dtype=np.float64)
        current = self.initial.copy()
        added = np.empty((len(self.tree_rows) + 1, self.initial.size), dtype=np.float32)
        for cascade in range(len(self.leaves)):
            # Feature pixels: offsets from their anchor points, turned by the mean shape -> current shape transform.
            turn = similarity_transform(self.initial, current)[:, :2].astype(np.float32)
            deltas = self.deltas[cascade]
            moved = deltas[:, :1] * turn[:, 0] + deltas[:, 1:] * turn[:, 1]  # float32, as dlib's matrix<float>
            located = _whole_pixels(corner + size * (moved + current[self.anchors[cascade]]))
            leaves = self._leaves(cascade, _intensities(pixels, located))
            added[0] = current.reshape(-1)
            np.take(self.leaves[cascade], leaves, axis=0, out=added[1:])
            # Row after row, in float32 (numpy sums along the outer axis in order): dlib's loop over the trees.
            current = added.sum(axis=0, dtype=np.float32).reshape(-1, 2)
        return _whole_pixels(corner + size * current).astype(np.float32)

    def _leaves(self, cascade: int, features: np.ndarray) -> np.ndarray:
        """The row of the leaf each tree of ``cascade`` ends in (trees are complete: node i's children are
        2i+1 and 2i+2, and the leaves follow the splits)."""
        node = np.zeros(len(self.tree_rows), dtype=np.intp)
        first = self.tree_rows * self.splits
        idx1, idx2, thresh = self.idx1[cascade], self.idx2[cascade], self.thresh[cascade]
        for _ in range(self.depth):
            row = first + node
            node = 2 * node + np.where(features[idx1[row]] - features[idx2[row]] > thresh[row], 1, 2)
        return self.tree_rows * self.leaf_count + node - self.splits


def _whole_pixels(points: np.ndarray) -> np.ndarray:
    """dlib's conversion of a point to whole pixels: rounded half up."""
    return np.floor(points + 0.5)


def _intensities(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's ``get_pixel_intensity`` at each (x, y) (the mean of R, G and B, rounded down), 0 outside the image."""
    x, y = points[:, 0].astype(np.intp), points[:, 1].astype(np.intp)
    inside = (x >= 0) & (y >= 0) & (x < pixels.shape[1]) & (y < pixels.shape[0])
    values = np.zeros(len(points), dtype=np.float32)
    found = pixels[y[inside], x[inside]].astype(np.int32)
    values[inside] = found.sum(axis=1) // 3 if found.ndim == 2 else found
    return values
