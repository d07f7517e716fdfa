"""Landmarks and alignment: dlib shape predictors and the embedding model's face chip.

The chip is dlib's own ``get_face_chip`` from the 5-point landmarks (a similarity
transform to 150x150 with 25% padding), exactly what the ResNet embedding was trained on.
"""

from __future__ import annotations

import dlib
import numpy as np

from . import models
from .types import Box


def shape(pixels: np.ndarray, box: Box, points: int = 5) -> dlib.full_object_detection:
    """dlib's landmark fit for one face box (5 or 68 points)."""
    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
    return models.shape_predictor(points)(pixels, rect)


def points_array(fit: dlib.full_object_detection) -> np.ndarray:
    """Landmarks as an ``(N, 2)`` float32 array of (x, y)."""
    return np.array([(p.x, p.y) for p in fit.parts()], dtype=np.float32)


def face_chip(
    pixels: np.ndarray, fit: dlib.full_object_detection, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The aligned ``size`` x ``size`` RGB chip the embedding model expects."""
    return dlib.get_face_chip(pixels, fit, size=size, padding=padding)
