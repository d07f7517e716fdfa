"""The fused model: one template per face whose inner product is the weighted sum of dlib's and SFace's cosines."""

from __future__ import annotations

import numpy as np

from faceprint import models
from faceprint.embedding import part_templates
from faceprint.image import load_image
from faceprint.pipeline import PipelineOptions, find_faces

from .conftest import KIT, OBAMA, ROSE

PHOTOS = [KIT[0], KIT[1], ROSE[0], OBAMA[0]]


def templates(model: models.EmbeddingModel) -> np.ndarray:
    images = [load_image(photo).pixels for photo in PHOTOS]
    faces = find_faces(images, PipelineOptions(model=model, threads=1))
    return np.array([image_faces[0].template.vector for image_faces in faces], dtype=np.float64)


def test_fused_inner_product_is_the_weighted_sum_of_the_two_cosines() -> None:
    fused, dlib, sface = (templates(m) for m in (models.FUSED, models.DLIB_RESNET, models.SFACE))
    weight = models.FUSED_DLIB_WEIGHT
    assert fused.shape == (len(PHOTOS), 256)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6)
    expected = weight * (dlib @ dlib.T) + (1 - weight) * (sface @ sface.T)
    np.testing.assert_allclose(fused @ fused.T, expected, atol=1e-6)
    recovered = part_templates(fused, models.FUSED)
    np.testing.assert_allclose(recovered[0], dlib, atol=1e-6)
    np.testing.assert_allclose(recovered[1], sface, atol=1e-6)


def test_fused_model_is_named_by_its_parts_and_their_weights_sum_to_one() -> None:
    assert models.embedding_model("dlib-resnet-v1+sface-2021dec") is models.FUSED
    assert [part.model_id for part, _ in models.FUSED.parts] == ["dlib-resnet-v1", "sface-2021dec"]
    assert sum(weight for _, weight in models.FUSED.parts) == 1
    assert models.FUSED.dimension == sum(part.dimension for part, _ in models.FUSED.parts)
