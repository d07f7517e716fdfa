"""dlib's shape predictors run in numpy from their converted models: dlib's points, a cache that loads at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import align, landmarks, models
from faceprint.detection import detect_boxes
from faceprint.errors import ModelError
from faceprint.image import load_image
from faceprint.types import Box

from .conftest import HIRES, KIT, MULTI, OBAMA, SHARED_DATA


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shape-cache")


def boxes_of(paths: list[Path]) -> list[tuple[np.ndarray, Box]]:
    """Each face YuNet finds in the photos, with its photo's pixels, and a box partly outside the first photo
    (feature pixels outside the image count as 0)."""
    found = []
    for path in paths:
        pixels = load_image(path).pixels
        found += [(pixels, detection.landmark_box) for detection in detect_boxes(pixels, detector="yunet")]
    pixels, box = found[0]
    return [*found, (pixels, Box(box.left - box.width / 2, box.top - box.height / 2, box.right, box.bottom))]


def dlib_points(pixels: np.ndarray, box: Box, points: int) -> np.ndarray:
    return align.points_array(align.shape(pixels, box, points))


def test_the_68_points_are_dlibs() -> None:
    faces = boxes_of(sorted(HIRES.rglob("*.jpg")))
    assert len(faces) >= 20
    for pixels, box in faces:
        np.testing.assert_array_equal(align.fit68(pixels, box), dlib_points(pixels, box, 68))


@pytest.mark.shared
@pytest.mark.slow
def test_the_68_points_are_dlibs_on_faces_dev() -> None:
    root = SHARED_DATA / "faces-dev" / "deepfunneled"
    if not root.is_dir():
        pytest.skip("faces-dev is not here")
    paths = sorted(root.rglob("*.jpg"))[:: len(list(root.rglob("*.jpg"))) // 300]
    faces = boxes_of(paths)
    differ = [
        i for i, (pixels, box) in enumerate(faces) if (align.fit68(pixels, box) != dlib_points(pixels, box, 68)).any()
    ]
    assert not differ, f"{len(differ)} of {len(faces)} faces"


def test_the_5_point_model_converts_and_runs_as_dlibs_too(cache_dir: Path) -> None:
    predictor = align.CascadePredictor(landmarks.load_shape_model(5, cache_dir))
    for pixels, box in boxes_of([KIT[0], MULTI]):
        np.testing.assert_array_equal(predictor(pixels, align.dlib_rect(box)), dlib_points(pixels, box, 5))


def test_the_converted_model_is_memory_mapped_from_the_cache(cache_dir: Path) -> None:
    first = landmarks.load_shape_model(5, cache_dir)
    cached, _, digest = landmarks.converted_path(5, cache_dir)
    assert cached.name.startswith(f"dlib-shape5-{digest[:16]}-")
    again = landmarks.load_shape_model(5, cache_dir)
    assert isinstance(again.base, np.memmap) or isinstance(again, np.memmap)
    for name in first.dtype.names or ():
        np.testing.assert_array_equal(again[name], first[name])


def test_a_corrupt_or_truncated_cache_is_rebuilt(cache_dir: Path) -> None:
    landmarks.load_shape_model(5, cache_dir)
    cached, _, digest = landmarks.converted_path(5, cache_dir)
    built = cached.read_bytes()
    other_source = built.replace(digest.encode(), b"0" * 64)
    for corrupt in (built[: len(built) // 2], built[:-1], b"", other_source):
        cached.write_bytes(corrupt)
        model = landmarks.load_shape_model(5, cache_dir)
        assert model["source_sha256"].item() == digest.encode()
        assert cached.read_bytes() == built
    pixels, box = boxes_of([OBAMA[0]])[0]
    np.testing.assert_array_equal(
        align.CascadePredictor(model)(pixels, align.dlib_rect(box)), dlib_points(pixels, box, 5)
    )


def test_an_unwritable_cache_still_gives_the_model(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_bytes(b"")
    model = landmarks.load_shape_model(5, blocked)
    assert model["initial"].shape == (5, 2)


def test_a_file_that_is_not_a_shape_model_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.dat"
    other.write_bytes(models.model_path("mmod_human_face_detector.dat").read_bytes()[:4096])
    with pytest.raises(ModelError):
        landmarks.read_shape_model(other)
