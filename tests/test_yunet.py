"""YuNet on onnxruntime: the same faces as OpenCV's FaceDetectorYN, in faceprint's detections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import faceprint
from faceprint import models, yunet
from faceprint.detection import detect_boxes
from faceprint.image import load_image
from faceprint.pipeline import PipelineOptions

from .conftest import HIRES, KIT, MULTI, ROSE

PHOTOS = sorted(p for p in HIRES.glob("*/*") if p.suffix in (".jpg", ".png"))


def opencv_faces(pixels: np.ndarray) -> np.ndarray:
    """FaceDetectorYN's rows (box x, y, w, h, 5 landmarks, score) on the same int8 file, best score first."""
    height, width = pixels.shape[:2]
    source = str(models.packaged_path(models.YUNET_FILE))
    detector = cv2.FaceDetectorYN.create(source, "", (width, height), yunet.SCORE_THRESHOLD, yunet.NMS_THRESHOLD)
    _, faces = detector.detect(np.ascontiguousarray(pixels[:, :, ::-1]))
    faces = np.zeros((0, 15), np.float32) if faces is None else faces
    return faces[np.argsort(-faces[:, 14], kind="stable")]


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_faces_equal_opencvs_within_a_pixel(photo) -> None:
    pixels = load_image(photo).pixels
    ours, reference = yunet.detect(pixels), opencv_faces(pixels)
    assert len(ours) == len(reference)
    for face, row in zip(ours, reference):
        np.testing.assert_allclose(face.box, row[:4], atol=1.0)
        np.testing.assert_allclose(face.landmarks.ravel(), row[4:14], atol=1.0)
        assert face.score == pytest.approx(row[14], abs=1e-3)


def test_detections_carry_the_five_landmarks_in_source_pixels() -> None:
    pixels = load_image(MULTI).pixels
    full = detect_boxes(pixels, detector="yunet")
    assert len(full) == 2 and {d.detector for d in full} == {"yunet"}
    for detection in full:
        assert detection.landmarks is not None and detection.landmarks.shape == (5, 2)
        box = detection.box
        assert all(box.left < x < box.right and box.top < y < box.bottom for x, y in detection.landmarks)
        left_eye, right_eye, nose, left_mouth, right_mouth = detection.landmarks
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0] and nose[1] > left_eye[1]
    # Detected on a half-size working copy, the faces are mapped back where they are.
    half = detect_boxes(pixels, detector="yunet", max_side=max(pixels.shape[:2]) // 2)
    for a, b in zip(full, half):
        assert a.box.iou(b.box) > 0.85
        assert np.abs(a.landmarks - b.landmarks).max() < 0.1 * a.box.width


def test_no_face_in_a_blank_image() -> None:
    assert detect_boxes(np.full((240, 320, 3), 128, np.uint8), detector="yunet") == []


def test_any_size_is_padded_to_a_multiple_of_32() -> None:
    blob = yunet.blob(np.full((33, 70, 3), (1, 2, 3), np.uint8))
    assert blob.shape == (1, 3, 64, 96)
    assert blob[0, :, 0, 0].tolist() == [3, 2, 1]  # BGR
    assert not blob[:, :, 33:].any() and not blob[:, :, :, 70:].any()


def test_dlib_landmarks_fit_in_the_square_hog_would_draw() -> None:
    pixels = load_image(MULTI).pixels
    for yunet_face in detect_boxes(pixels, detector="yunet"):
        square = yunet_face.landmark_box
        assert square.width == pytest.approx(square.height)
        assert square.height == pytest.approx(0.86 * yunet_face.box.height)
        hog_face = max(detect_boxes(pixels, detector="hog"), key=lambda d: d.box.iou(square))
        assert hog_face.landmark_box == hog_face.box
        assert hog_face.box.iou(square) > yunet_face.box.iou(hog_face.box)


def test_yunet_and_hog_faces_give_the_same_dlib_template() -> None:
    for photo in (KIT[0], ROSE[0]):
        by_yunet = faceprint.embed(photo, options=PipelineOptions(detector="yunet", model=models.DLIB_RESNET))[
            0
        ].template
        by_hog = faceprint.embed(photo, options=PipelineOptions(detector="hog", model=models.DLIB_RESNET))[0].template
        assert float(by_yunet.vector @ by_hog.vector) > 0.99
