"""YuNet, the OpenCV Zoo's face detector with 5 landmarks, on onnxruntime.

The image goes in as OpenCV's ``FaceDetectorYN`` feeds it: BGR, float 0-255, NCHW, no
normalisation, zero-padded at the bottom and right to a multiple of 32. The outputs are
decoded as ``FaceDetectorYN`` does: per stride 8, 16 and 32, each cell's score is
``sqrt(cls * obj)``, its box centre ``(col + dx, row + dy) * stride`` and size
``exp(dw, dh) * stride``, its landmarks ``(col + lx, row + ly) * stride``; then non-maximum
suppression on the boxes rounded down to whole pixels, as OpenCV's ``NMSBoxes`` on ``Rect2i``.
Landmarks are in YuNet's order: the eye on the image's left, the other eye, the nose tip, the
mouth corner on the image's left, the other corner (the order of the ArcFace template).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .resnet_onnx import LazySession
from .zoo_onnx import yunet_graph_path, yunet_onnx_bytes

STRIDES = (8, 16, 32)
#: Padding multiple: the coarsest stride.
DIVISOR = 32
#: Lowest score kept: at 0.6 YuNet found a face in every faces-dev image (BENCHMARKS.md, detection).
SCORE_THRESHOLD = 0.6
#: Boxes overlapping a better one by more than this (intersection over union) are dropped, as in OpenCV.
NMS_THRESHOLD = 0.3


@dataclass(frozen=True, eq=False)
class RawFace:
    """One YuNet detection in the pixels of the image it ran on."""

    box: tuple[float, float, float, float]  # left, top, width, height
    score: float
    landmarks: np.ndarray  # (5, 2) float32 (x, y)


def detect(
    pixels: np.ndarray,
    *,
    score_threshold: float = SCORE_THRESHOLD,
    nms_threshold: float = NMS_THRESHOLD,
    threads: int | None = 1,
) -> list[RawFace]:
    """YuNet's faces in an RGB uint8 image, best score first."""
    outputs = session(threads).get().run(None, {"input": blob(pixels)})
    return decode(outputs, pixels.shape[1], score_threshold, nms_threshold)


@functools.cache
def session(threads: int | None = 1) -> LazySession:
    """The process's YuNet session per thread count (one thread by default: detection runs per image,
    and worker processes fill the cores)."""
    return LazySession(yunet_onnx_bytes, threads, ["CPUExecutionProvider"], yunet_graph_path)


def padded_size(height: int, width: int) -> tuple[int, int]:
    return -(-height // DIVISOR) * DIVISOR, -(-width // DIVISOR) * DIVISOR


def blob(pixels: np.ndarray) -> np.ndarray:
    """The (1, 3, H, W) float32 BGR input of an RGB image, zero-padded bottom and right to multiples of 32."""
    height, width = pixels.shape[:2]
    padded = np.zeros((1, 3, *padded_size(height, width)), dtype=np.float32)
    for channel in range(3):  # one plane at a time: a third faster than one transposed copy on 1080p frames
        padded[0, channel, :height, :width] = pixels[:, :, 2 - channel]
    return padded


def decode(outputs: list[np.ndarray], width: int, score_threshold: float, nms_threshold: float) -> list[RawFace]:
    """Faces from YuNet's 12 outputs (cls, obj, bbox, kps for each stride) for an image ``width`` pixels wide."""
    padded_width = padded_size(DIVISOR, width)[1]
    boxes, scores, landmarks = [], [], []
    for level, stride in enumerate(STRIDES):
        cls, obj, bbox, kps = (outputs[level + len(STRIDES) * k][0] for k in range(4))
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        keep = np.flatnonzero(score >= score_threshold)
        columns = padded_width // stride
        cells = np.stack([keep % columns, keep // columns], axis=1).astype(np.float32)
        size = np.exp(bbox[keep, 2:4]) * stride
        centre = (cells + bbox[keep, 0:2]) * stride
        boxes.append(np.concatenate([centre - size / 2, size], axis=1))
        landmarks.append(((kps[keep].reshape(-1, 5, 2) + cells[:, None, :]) * stride).astype(np.float32))
        scores.append(score[keep])
    all_boxes, all_scores, all_landmarks = np.concatenate(boxes), np.concatenate(scores), np.concatenate(landmarks)
    faces = []
    for i in nms(np.floor(all_boxes), all_scores, nms_threshold):
        left, top, box_width, box_height = (float(v) for v in all_boxes[i])
        faces.append(RawFace((left, top, box_width, box_height), float(all_scores[i]), all_landmarks[i]))
    return faces


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Indices of the boxes (left, top, width, height) kept, best score first: each is kept unless it
    overlaps a kept one by more than ``threshold`` (intersection over union). OpenCV's own ``NMSBoxes``,
    as ``FaceDetectorYN`` calls it on whole-pixel boxes."""
    if not len(boxes):
        return []
    kept = cv2.dnn.NMSBoxes(boxes.astype(np.int32).tolist(), scores.astype(np.float32).tolist(), 0.0, threshold)
    return [int(i) for i in np.asarray(kept).reshape(-1)]
