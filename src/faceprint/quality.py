"""Per-face quality: size, sharpness, exposure and pose, with the thresholds enrollment uses.

All measures except ``face_size`` are taken on the aligned 150x150 chip, so they are
comparable across image resolutions. Pose comes from the 5 landmarks: roll is the angle of
the eye line, yaw is estimated from how far the base of the nose sits from the midpoint of
the eyes: about 0.19 inter-eye distances per unit of tan(yaw), a ratio fitted against
head poses solved (cv2.solvePnP) from the 68 landmarks of faces-dev photos (r = 0.83).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .types import Box, Quality

#: Nose-base offset (in inter-eye distances) per unit of tan(yaw); see the module docstring.
_NOSE_DEPTH_RATIO = 0.19


@dataclass(frozen=True)
class QualityThresholds:
    """Limits a face must meet to be enrolled. Defaults are documented in the README."""

    min_face_size: float = 40.0
    min_sharpness: float = 10.0
    min_brightness: float = 35.0
    max_brightness: float = 225.0
    min_contrast: float = 15.0
    max_abs_yaw: float = 55.0


DEFAULT_THRESHOLDS = QualityThresholds()


def assess(
    chip: np.ndarray, landmarks: np.ndarray, box: Box, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
) -> Quality:
    """Quality report of one face from its chip, 5 landmarks and box."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    brightness = float(grey.mean())
    contrast = float(grey.std())
    yaw, roll = estimate_pose(landmarks)
    face_size = float(box.width)
    score = (
        _ramp(face_size, 30.0, 100.0)
        * _ramp(sharpness, 5.0, 60.0)
        * _ramp(contrast, 10.0, 35.0)
        * (1.0 - _ramp(abs(brightness - 128.0), 60.0, 110.0))
        * (1.0 - _ramp(abs(yaw), 20.0, 70.0))
    )
    problems = _problems(face_size, sharpness, brightness, contrast, yaw, thresholds)
    return Quality(face_size, sharpness, brightness, contrast, yaw, roll, score, problems)


def estimate_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, roll) in degrees from dlib's 5 points (two per eye, then the nose base)."""
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    dx, dy = right - left
    eye_distance = math.hypot(dx, dy)
    if eye_distance < 1e-6:
        return 0.0, 0.0
    roll = math.degrees(math.atan2(dy, dx))
    # Nose offset along the eye line, in inter-eye distances.
    nose = landmarks[4] - (left + right) / 2.0
    offset = (nose[0] * dx + nose[1] * dy) / eye_distance**2
    yaw = math.degrees(math.atan(offset / _NOSE_DEPTH_RATIO))
    return yaw, roll


def _problems(
    face_size: float, sharpness: float, brightness: float, contrast: float, yaw: float, t: QualityThresholds
) -> tuple[str, ...]:
    problems = []
    if face_size < t.min_face_size:
        problems.append(f"face too small ({face_size:.0f} px < {t.min_face_size:.0f} px)")
    if sharpness < t.min_sharpness:
        problems.append(f"too blurry (sharpness {sharpness:.1f} < {t.min_sharpness:.0f})")
    if brightness < t.min_brightness:
        problems.append(f"too dark (brightness {brightness:.0f} < {t.min_brightness:.0f})")
    if brightness > t.max_brightness:
        problems.append(f"overexposed (brightness {brightness:.0f} > {t.max_brightness:.0f})")
    if contrast < t.min_contrast:
        problems.append(f"too little contrast ({contrast:.1f} < {t.min_contrast:.0f})")
    if abs(yaw) > t.max_abs_yaw:
        problems.append(f"head turned too far (yaw {yaw:+.0f} deg, limit {t.max_abs_yaw:.0f})")
    return tuple(problems)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear between."""
    return min(max((value - low) / (high - low), 0.0), 1.0)
