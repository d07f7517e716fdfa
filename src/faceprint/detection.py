"""Face detection with dlib's HOG (fast) or CNN/MMOD (accurate) detectors, or with YuNet.

Large images are detected on a downscaled working copy (boxes are mapped back to source
pixels); small images are upsampled for dlib's detectors so faces of ~40 px are found (YuNet
needs no upsampling: its finest stride is 8 px). ``"auto"`` runs HOG and falls back to the
CNN only when HOG finds nothing, which recovers most missed faces (rotated, profile, poorly
lit) at no cost on images where HOG succeeds. ``"yunet"`` (faceprint.yunet) also gives 5
landmarks per face, which align the face for SFace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import models
from .choices import DETECTORS, DetectorName
from .types import Box

#: Longest side of the working copy detection runs on.
DEFAULT_MAX_SIDE = 1280
#: Working copies whose longest side is at most this are upsampled once when
#: ``upsample`` is left to ``None``, so that faces down to ~40 px are found.
AUTO_UPSAMPLE_BELOW = 640
#: A YuNet box as dlib's HOG would draw it (see ``Detection.landmark_box``): side and downward shift,
#: as fractions of YuNet's box height.
YUNET_TO_DLIB_SIDE = 0.86
YUNET_TO_DLIB_SHIFT = 0.037
#: Most pixels the CNN fallback of ``"auto"`` (run when HOG finds nothing) works on, upsampling included: its
#: cost grows with them (14 s and 1.4 GB for a faceless 640x480 photo upsampled once), and a photo without a
#: face always pays it. Larger copies are shrunk to this (faces from ~80 px of the copy are still found, e.g.
#: every LFW face, as LFW's 250x250 photos stay as they are); ``detector="cnn"`` keeps the full copy.
#: BENCHMARKS.md, "A photo without a face".
FALLBACK_MAX_PIXELS = 250 * 250


@dataclass(frozen=True)
class Detection:
    box: Box
    confidence: float
    detector: str
    #: The detector's own 5 points (YuNet's, in the ArcFace template's order), (5, 2) float32 (x, y); else None.
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def landmark_box(self) -> Box:
        """The box dlib's shape predictors fit landmarks in: dlib's detectors' own box; for YuNet's (taller,
        from brow to chin), the square dlib's HOG would draw: 0.86 of its height, centred 3.7% of its height
        lower (medians over 591 faces-dev faces both found)."""
        if self.detector != "yunet":
            return self.box
        side = YUNET_TO_DLIB_SIDE * self.box.height
        centre_x = (self.box.left + self.box.right) / 2
        centre_y = (self.box.top + self.box.bottom) / 2 + YUNET_TO_DLIB_SHIFT * self.box.height
        return Box(centre_x - side / 2, centre_y - side / 2, centre_x + side / 2, centre_y + side / 2)


def detect_boxes(
    pixels: np.ndarray,
    *,
    detector: DetectorName = "auto",
    upsample: int | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    min_score: float | None = None,
    threads: int | None = 1,
) -> list[Detection]:
    """Face boxes in ``pixels`` (RGB uint8), main face first (see ``prominence``).

    ``min_score``: YuNet's lowest score kept (None: ``yunet.SCORE_THRESHOLD``); ``threads``: YuNet's
    onnxruntime threads (1: worker processes fill the cores; None: every core). dlib's detectors ignore both.
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, not {detector!r}")
    if upsample is not None and not 0 <= upsample <= 3:
        raise ValueError(f"upsample must be between 0 and 3, not {upsample}")
    working, scale = _working_copy(pixels, max_side)
    if upsample is None:
        upsample = 1 if max(working.shape[:2]) <= AUTO_UPSAMPLE_BELOW else 0
    found: list[Detection] = []
    if detector == "yunet":
        found = _run_yunet(working, min_score, threads)
    if detector in ("hog", "auto"):
        found = _run_hog(working, upsample)
    if detector == "cnn":
        found = _run_cnn(working, upsample)
    elif detector == "auto" and not found:
        found = _fallback_cnn(working, upsample)
    height, width = pixels.shape[:2]
    mapped = [_to_source(d, scale, width, height) for d in found]
    return sorted(mapped, key=lambda d: prominence(d.box, width, height), reverse=True)


def prominence(box: Box, width: int, height: int) -> float:
    """How much a face looks like the photo's subject: its area, less twice the squared distance
    of its centre from the image centre (as insightface ranks faces). Of two faces of similar
    size the central one wins; a much larger face wins wherever it is."""
    dx = (box.left + box.right - width) / 2
    dy = (box.top + box.bottom - height) / 2
    return box.area - 2.0 * (dx * dx + dy * dy)


def _working_copy(pixels: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    longest = max(pixels.shape[:2])
    if longest <= max_side:
        return pixels, 1.0
    scale = max_side / longest
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), scale


def _to_source(detection: Detection, scale: float, width: int, height: int) -> Detection:
    """A detection on the working copy in the source image's pixels."""
    landmarks = detection.landmarks
    return Detection(
        _clip(detection.box.scaled(1.0 / scale), width, height),
        detection.confidence,
        detection.detector,
        None if landmarks is None else landmarks / np.float32(scale),
    )


def _run_yunet(image: np.ndarray, min_score: float | None, threads: int | None) -> list[Detection]:
    from . import yunet  # onnxruntime loads only when YuNet runs

    threshold = yunet.SCORE_THRESHOLD if min_score is None else min_score
    return [
        Detection(Box(left, top, left + width, top + height), face.score, "yunet", face.landmarks)
        for face in yunet.detect(image, score_threshold=threshold, threads=threads)
        for left, top, width, height in [face.box]
    ]


def _run_hog(image: np.ndarray, upsample: int) -> list[Detection]:
    rects, scores, _ = models.hog_detector().run(image, upsample, 0.0)
    return [Detection(_to_box(r), float(s), "hog") for r, s in zip(rects, scores)]


def _run_cnn(image: np.ndarray, upsample: int) -> list[Detection]:
    return [Detection(_to_box(d.rect), float(d.confidence), "cnn") for d in models.cnn_detector()(image, upsample)]


def _fallback_cnn(image: np.ndarray, upsample: int) -> list[Detection]:
    """The CNN on at most FALLBACK_MAX_PIXELS: upsampled only if that fits, else on a shrunk copy."""
    pixels = image.shape[0] * image.shape[1]
    while upsample and pixels * 4**upsample > FALLBACK_MAX_PIXELS:
        upsample -= 1
    if pixels <= FALLBACK_MAX_PIXELS:
        return _run_cnn(image, upsample)
    shrunk, scale = _working_copy(image, int(max(image.shape[:2]) * (FALLBACK_MAX_PIXELS / pixels) ** 0.5))
    return [Detection(d.box.scaled(1.0 / scale), d.confidence, d.detector) for d in _run_cnn(shrunk, 0)]


def _to_box(rect) -> Box:
    # dlib rectangles are inclusive on all sides.
    return Box(float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))


def _clip(box: Box, width: int, height: int) -> Box:
    return Box(max(box.left, 0.0), max(box.top, 0.0), min(box.right, float(width)), min(box.bottom, float(height)))
