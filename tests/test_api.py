"""The flat public API: faceprint.detect, embed, analyze, verify, load_image."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faceprint
from faceprint import Face, Template
from faceprint.detection import prominence
from faceprint.errors import InvalidImageError, ManyFacesError, ModelError, NoFaceError
from faceprint.pipeline import DEFAULT_OPTIONS

from .conftest import KIT, MULTI, ROSE


@pytest.fixture(scope="module")
def multi_faces() -> list[Face]:
    return faceprint.embed(MULTI)


@pytest.fixture(scope="module")
def rose_face() -> Face:
    return faceprint.embed(ROSE[0])[0]


@pytest.fixture
def blank_photo(tmp_path: Path) -> Path:
    path = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (200, 190, 180)).save(path)  # small: the CNN fallback is quick
    return path


@pytest.fixture
def broken_photo(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8 this is not a JPEG")
    return path


def test_load_image_gives_rgb_pixels_name_and_file_hash() -> None:
    loaded = faceprint.load_image(ROSE[0])
    width, height = Image.open(ROSE[0]).size
    assert loaded.pixels.shape == (height, width, 3) and loaded.pixels.dtype == np.uint8
    assert loaded.name == str(ROSE[0])
    assert loaded.sha256 == hashlib.sha256(ROSE[0].read_bytes()).hexdigest()
    assert np.array_equal(faceprint.load_image(ROSE[0].read_bytes()).pixels, loaded.pixels)


def test_embed_gives_unit_templates_of_the_model_main_face_first(multi_faces: list[Face]) -> None:
    assert len(multi_faces) == 2
    for face in multi_faces:
        assert face.template is not None and face.template.model_id == DEFAULT_OPTIONS.model.model_id
        assert face.template.vector.shape == (DEFAULT_OPTIONS.model.dimension,)
        assert face.template.vector.dtype == np.float32
        assert np.linalg.norm(face.template.vector) == pytest.approx(1.0, abs=1e-5)
        assert face.landmarks.shape == (5, 2)
    height, width = faceprint.load_image(MULTI).pixels.shape[:2]
    ranks = [prominence(face.box, width, height) for face in multi_faces]
    assert ranks == sorted(ranks, reverse=True)


def test_detect_finds_the_same_faces_without_templates(multi_faces: list[Face]) -> None:
    detected = faceprint.detect(MULTI)
    assert [face.box for face in detected] == [face.box for face in multi_faces]
    assert all(face.template is None for face in detected)
    assert faceprint.detect(MULTI, landmarks68=True)[0].landmarks68.shape == (68, 2)


def test_analyze_computes_only_what_is_asked() -> None:
    face = faceprint.analyze(ROSE[0], "pose")[0]
    assert face.attributes is not None and face.attributes.pose is not None
    assert (face.attributes.age, face.attributes.gender, face.attributes.expression) == (None, None, None)
    assert face.template is None
    with pytest.raises(ValueError, match="at least one attribute"):
        faceprint.analyze(ROSE[0], [])
    with pytest.raises(ValueError, match="smile"):
        faceprint.analyze(ROSE[0], ["smile"])  # type: ignore[list-item]


def test_verify_tells_same_from_different_people() -> None:
    same = faceprint.verify(ROSE[0], ROSE[1])
    different = faceprint.verify(ROSE[0], KIT[0])
    assert same.match and same.decision == "match"
    assert not different.match and different.decision == "no_match"
    assert same.similarity > different.similarity


def test_verify_takes_faces_and_templates_as_well_as_images(rose_face: Face) -> None:
    from_paths = faceprint.verify(ROSE[0], ROSE[1])
    assert rose_face.template is not None
    for a in (rose_face, rose_face.template):
        assert faceprint.verify(a, ROSE[1]).similarity == pytest.approx(from_paths.similarity, abs=1e-6)
    assert faceprint.verify(rose_face, rose_face.template).similarity == pytest.approx(1.0, abs=1e-5)


def test_verify_refuses_templates_of_different_models(rose_face: Face) -> None:
    assert rose_face.template is not None
    other_model = Template(rose_face.template.vector, "another-model")
    with pytest.raises(ModelError, match="different models"):
        faceprint.verify(rose_face, other_model)


def test_verify_needs_a_face_with_a_template() -> None:
    with pytest.raises(ValueError, match="no template"):
        faceprint.verify(faceprint.detect(ROSE[0])[0], ROSE[1])


def test_verify_of_a_group_photo_needs_largest(multi_faces: list[Face]) -> None:
    with pytest.raises(ManyFacesError, match=re.escape(f"{MULTI}: 2 faces")):
        faceprint.verify(MULTI, ROSE[0])
    largest = faceprint.verify(MULTI, ROSE[0], largest=True)
    assert largest.similarity == pytest.approx(faceprint.verify(multi_faces[0], ROSE[0]).similarity, abs=1e-6)


def test_a_photo_without_a_face_is_named_in_the_error(blank_photo: Path) -> None:
    assert faceprint.detect(blank_photo) == []
    assert faceprint.embed(blank_photo) == []
    with pytest.raises(NoFaceError, match=re.escape(f"{blank_photo}: no face")):
        faceprint.verify(blank_photo, ROSE[0])


@pytest.mark.parametrize("call", [faceprint.detect, faceprint.embed, faceprint.analyze, faceprint.load_image])
def test_an_unreadable_file_is_named_in_the_error(call, broken_photo: Path) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(str(broken_photo))):
        call(broken_photo)


def test_verify_names_the_file_it_cannot_read(broken_photo: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(f"{broken_photo}: ")):
        faceprint.verify(ROSE[0], broken_photo)
    missing = tmp_path / "missing.jpg"
    with pytest.raises(InvalidImageError, match=re.escape(f"{missing}: no such file")):
        faceprint.verify(missing, ROSE[0])
