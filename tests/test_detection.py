"""Detection, landmarks, alignment and quality on the committed real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import faceprint
from faceprint.detection import detect_boxes
from faceprint.image import load_image
from faceprint.pipeline import ImageResult

from .conftest import HIRES, MULTI, hires_rows


@pytest.mark.slow
def test_every_photo_has_its_labelled_face_count(hires_results: dict[str, ImageResult]) -> None:
    for row in hires_rows():
        result = hires_results[row["path"]]
        assert result.error is None
        assert len(result.faces) == int(row["n_faces"]), row["path"]


def test_group_photo_boxes_are_where_the_faces_are() -> None:
    faces = faceprint.detect(MULTI)
    # Checked by eye: Rose Leslie's face is the lower-left one, Kit Harington's the upper-right.
    centres = sorted((f.box.left + f.box.width / 2, f.box.top + f.box.height / 2) for f in faces)
    (rose_x, rose_y), (kit_x, kit_y) = centres
    assert 90 < rose_x < 160 and 140 < rose_y < 210
    assert 260 < kit_x < 350 and 90 < kit_y < 190
    assert all(f.quality.face_size > 60 for f in faces)


@pytest.mark.parametrize("detector", ["hog", "cnn"])
@pytest.mark.slow
def test_detectors_agree_on_box(detector: str) -> None:
    faces = faceprint.detect(HIRES / "resolution" / "Barack_Obama_480p.jpg", detector=detector)
    assert len(faces) == 1 and faces[0].detector == detector
    assert 380 < faces[0].box.left + faces[0].box.width / 2 < 470


def test_large_images_are_detected_on_a_downscaled_copy_and_mapped_back() -> None:
    boxes = {}
    for name, width in (("240p", 427), ("480p", 853), ("1080p", 1920)):
        faces = faceprint.detect(HIRES / "resolution" / f"Barack_Obama_{name}.jpg")
        assert len(faces) == 1
        boxes[name] = np.array(faces[0].box.as_tuple()) / width  # in fractions of the width
    # The same face in the same place at every resolution, 1080p detected at 1280 px.
    assert np.abs(boxes["1080p"] - boxes["480p"]).max() < 0.02
    assert np.abs(boxes["240p"] - boxes["480p"]).max() < 0.03


def test_max_side_controls_the_working_copy() -> None:
    pixels = load_image(HIRES / "resolution" / "Barack_Obama_1080p.jpg").pixels
    full = detect_boxes(pixels, detector="hog", max_side=1920)[0].box
    small = detect_boxes(pixels, detector="hog", max_side=640)[0].box
    assert full.iou(small) > 0.7


def test_upsampling_finds_small_faces() -> None:
    pixels = load_image(HIRES / "resolution" / "Barack_Obama_240p.jpg").pixels
    tiny = cv2.resize(pixels, (214, 120), interpolation=cv2.INTER_AREA)  # face about 32 px wide
    assert detect_boxes(tiny, detector="hog", upsample=0) == []
    assert len(detect_boxes(tiny, detector="hog", upsample=2)) == 1


@pytest.mark.slow
def test_no_face_in_a_blank_image() -> None:
    assert faceprint.detect(np.full((300, 300, 3), 128, np.uint8)) == []


def test_landmarks_5_and_68() -> None:
    face = faceprint.detect(HIRES / "Rose_Leslie" / "Rose_Leslie_0001.jpg", landmarks68=True)[0]
    assert face.landmarks.shape == (5, 2) and face.landmarks68 is not None and face.landmarks68.shape == (68, 2)
    box = face.box
    inside = (face.landmarks[:, 0] > box.left) & (face.landmarks[:, 0] < box.right)
    assert inside.all()
    assert faceprint.detect(HIRES / "Rose_Leslie" / "Rose_Leslie_0001.jpg")[0].landmarks68 is None


def test_quality_yaw_flips_sign_on_a_mirrored_photo() -> None:
    pixels = load_image(HIRES / "Kit_Harington" / "Kit_Harington_0002.jpg").pixels  # head clearly turned
    yaw = faceprint.detect(pixels)[0].quality.yaw
    mirrored_yaw = faceprint.detect(np.ascontiguousarray(pixels[:, ::-1]))[0].quality.yaw
    assert abs(yaw) > 15
    assert np.sign(yaw) == -np.sign(mirrored_yaw)
    assert abs(yaw + mirrored_yaw) < 10


@pytest.mark.slow
def test_quality_flags_blur_darkness_and_small_faces() -> None:
    pixels = load_image(HIRES / "Rose_Leslie" / "Rose_Leslie_0001.jpg").pixels
    sharp = faceprint.detect(pixels)[0].quality
    assert sharp.acceptable and sharp.score > 0.8
    blurred = faceprint.detect(cv2.GaussianBlur(pixels, (0, 0), 6))[0].quality
    assert blurred.sharpness < sharp.sharpness / 5
    assert any("blurry" in p for p in blurred.problems)
    dark = faceprint.detect((pixels * 0.12).astype(np.uint8), detector="cnn")[0].quality
    assert any("too dark" in p for p in dark.problems)
    small = cv2.resize(pixels, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    tiny_faces = faceprint.detect(small, upsample=2)
    assert tiny_faces and any("too small" in p for p in tiny_faces[0].quality.problems)
    assert tiny_faces[0].quality.score < sharp.score


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="detector must be one of"):
        faceprint.detect(MULTI, detector="yolo")  # type: ignore[arg-type]


def test_main_face_first_prefers_the_centre_between_similar_sizes() -> None:
    from faceprint.detection import prominence
    from faceprint.types import Box

    centre, corner = Box(80, 80, 170, 170), Box(160, 0, 252, 92)  # the corner face is slightly larger
    assert corner.area > centre.area
    assert prominence(centre, 250, 250) > prominence(corner, 250, 250)
    big_corner = Box(0, 0, 200, 200)
    assert prominence(big_corner, 250, 250) > prominence(centre, 250, 250)
