"""Per-face quality: size, sharpness, exposure and pose, with the thresholds enrollment uses.

All measures except ``face_size`` are taken on the aligned 150x150 chip, so they are
comparable across image resolutions. Yaw and roll come from ``faceprint.pose.head_pose``:
solved from the 68 landmarks when the pipeline has them, else estimated from the 5 points
(a fit to the former), so the yaw limit means the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .choices import QualityFilter
from .pose import HeadPose, head_pose
from .types import Box, Quality


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

#: The ``strict`` quality filter of enrollment: reference photos taken on purpose (a passport-like, frontal,
#: sharp, evenly lit face at least 80 px wide). Stricter than the defaults on every measure, so a face that
#: passes it passes them too. Of the committed faces-hires photos, which the defaults all accept, it refuses
#: the four heads turned beyond 30 degrees and the 240p copy.
STRICT_THRESHOLDS = QualityThresholds(
    min_face_size=80.0,
    min_sharpness=20.0,
    min_brightness=50.0,
    max_brightness=205.0,
    min_contrast=20.0,
    max_abs_yaw=30.0,
)


def assess(
    chip: np.ndarray,
    landmarks: np.ndarray,
    box: Box,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
    pose: HeadPose | None = None,
) -> Quality:
    """Quality report of one face from its chip, 5 landmarks and box (and its pose, if already known)."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    brightness = float(grey.mean())
    contrast = float(grey.std())
    pose = pose or head_pose(landmarks)
    yaw, roll = pose.yaw, pose.roll
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


def problems_for(face_quality: Quality, quality_filter: QualityFilter) -> tuple[str, ...]:
    """Why ``quality_filter`` refuses a face of this quality (empty: accepted). ``auto`` keeps the problems the
    pipeline found with its own thresholds; ``strict`` measures again against ``STRICT_THRESHOLDS``."""
    if quality_filter == "none":
        return ()
    if quality_filter == "auto":
        return face_quality.problems
    q = face_quality
    return _problems(q.face_size, q.sharpness, q.brightness, q.contrast, q.yaw, STRICT_THRESHOLDS)


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
