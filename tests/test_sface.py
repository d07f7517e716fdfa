"""SFace as faceprint's second embedding model: OpenCV's features, its own alignment, stable templates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery, align, models
from faceprint.embedding import embed_chips, embedder
from faceprint.errors import ModelError
from faceprint.image import load_image
from faceprint.pipeline import PipelineOptions, faces_in
from faceprint.sface import OnnxSFace

from .conftest import HIRES, KIT, OBAMA, ROOT, ROSE

#: Computed by tools/sface_reference.py with OpenCV 4's FaceRecognizerSF (OpenCV 5 cannot load the file).
REFERENCE = json.loads((ROOT / "tests" / "data" / "sface-opencv-reference.json").read_text())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("face", REFERENCE["faces"], ids=lambda face: face["photo"])
def test_features_equal_opencvs(face: dict) -> None:
    pixels = load_image(HIRES / face["photo"]).pixels
    chip = align.arcface_chip(pixels, np.array(face["landmarks"], dtype=np.float32))
    (ours,) = OnnxSFace(threads=1).embed([chip])
    assert cosine(ours, np.array(face["feature"])) >= 0.9999


def test_similarity_transform_is_exact_for_a_similarity() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -2.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = (align.ARCFACE_TEMPLATE - shift) @ np.linalg.inv(rotation).T
    np.testing.assert_allclose(align.similarity_transform(source, align.ARCFACE_TEMPLATE)[:, :2], rotation, atol=1e-9)


def test_five_points_from_68_are_eye_centres_nose_and_mouth_corners() -> None:
    points68 = np.arange(136, dtype=np.float32).reshape(68, 2)
    five = align.five_from_68(points68)
    np.testing.assert_array_equal(five[0], points68[36:42].mean(axis=0))
    np.testing.assert_array_equal(five[2:], points68[[30, 48, 54]])


@pytest.mark.parametrize("alignment", ["detector", "dlib68"])
def test_same_person_scores_above_different_people_by_a_margin(alignment: str) -> None:
    options = PipelineOptions(detector="yunet", model=models.SFACE, alignment=alignment, threads=1)  # type: ignore[arg-type]
    people = {name: [faces_in(path, options)[0].template for path in paths[:2]] for name, paths in
              (("kit", KIT), ("rose", ROSE), ("obama", OBAMA))}  # fmt: skip
    templates = [t for pair in people.values() for t in pair]
    assert {t.model_id for t in templates} == {"sface-2021dec"}
    assert all(t.vector.shape == (128,) and abs(np.linalg.norm(t.vector) - 1) < 1e-5 for t in templates)
    genuine = [float(a.vector @ b.vector) for a, b in people.values()]
    impostor = [float(a.vector @ b.vector) for i, a in enumerate(templates) for b in templates[i + 2 - i % 2 :]]
    assert min(genuine) > max(impostor) + 0.3


def test_templates_are_flip_averaged_and_repeatable() -> None:
    pixels = load_image(KIT[0]).pixels
    options = PipelineOptions(detector="yunet", model=models.SFACE, threads=1)
    face = faces_in(KIT[0], options)[0]
    chip = align.arcface_chip(pixels, align.five_from_68(align.points_array(align.shape(pixels, face.box, 68))))
    plain, flipped = embed_chips([chip], model=models.SFACE), embed_chips([chip], model=models.SFACE, flip=True)
    again = embed_chips([chip], model=models.SFACE, flip=True)
    np.testing.assert_array_equal(flipped, again)
    assert 0.9 < float(plain[0] @ flipped[0]) < 0.99999
    mirror = embed_chips([np.ascontiguousarray(chip[:, ::-1])], model=models.SFACE)
    both = (plain[0] + mirror[0]) / np.linalg.norm(plain[0] + mirror[0])
    # The flip-averaged template is the mean of the two views' raw features, normalised.
    assert float(both @ flipped[0]) > 0.999


def test_each_model_aligns_its_own_chip() -> None:
    pixels = load_image(KIT[0]).pixels
    detection = faces_in(KIT[0], PipelineOptions(detector="yunet"), embed=False)[0]
    points = align.FacePoints(pixels, detection.box, align.shape(pixels, detection.box), None)
    assert embedder(models.DLIB_RESNET).chip(points, "detector").shape == (150, 150, 3)
    assert embedder(models.SFACE).chip(points, "detector").shape == (112, 112, 3)
    with pytest.raises(ValueError, match="onnxruntime only"):
        embed_chips([np.zeros((112, 112, 3), np.uint8)], model=models.SFACE, backend="dlib")


def test_a_gallery_keeps_its_model(tmp_path: Path) -> None:
    dlib_face = faces_in(KIT[0])[0]
    sface_options = PipelineOptions(detector="yunet", model=models.SFACE, threads=1)
    sface_face = faces_in(KIT[1], sface_options)[0]
    Gallery(tmp_path / "g.db").add_templates("Kit", [dlib_face.template])
    with pytest.raises(ModelError, match="mixing models is refused"):
        Gallery(tmp_path / "g.db", options=sface_options).add_templates("Kit", [sface_face.template])
    # A gallery of SFace templates identifies with SFace's own calibration.
    sface_gallery = Gallery(tmp_path / "sface.db", options=sface_options)
    sface_gallery.add_templates("Kit", [sface_face.template])
    assert sface_gallery.operating_point().calibration.model_id == "sface-2021dec"
    (answer,) = sface_gallery.identify(KIT[2])
    assert answer.name == "Kit" and answer.face.template is not None
    assert answer.face.template.model_id == "sface-2021dec"
