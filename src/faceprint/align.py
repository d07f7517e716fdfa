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

from . import models
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


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """The ArcFace template's 5 points from dlib's 68: eye centres (means of 36-41 and 42-47), nose tip
    (30), mouth corners (48, 54)."""
    return np.array(
        [points68[36:42].mean(axis=0), points68[42:48].mean(axis=0), points68[30], points68[48], points68[54]],
        dtype=np.float32,
    )


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + shift that maps ``source`` points onto ``target`` with the least
    squared error (Umeyama, 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / centred_source.var(axis=0).sum()
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


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
        return points_array(shape(self.pixels, self.box, 68))

    @functools.cached_property
    def dlib_chip(self) -> np.ndarray:
        return face_chip(self.pixels, self.fit, models.DLIB_RESNET.chip_size, models.DLIB_RESNET.chip_padding)
