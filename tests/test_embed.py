"""Templates: normalised, tagged, batched, with test-time augmentation."""

from __future__ import annotations

import dataclasses

import numpy as np

import faceprint
from faceprint.embed import embed_chips
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, find_faces

from .conftest import KIT, MULTI, ROSE


def test_templates_are_unit_float32_and_tagged() -> None:
    faces = faceprint.embed(MULTI)
    assert len(faces) == 2
    for face in faces:
        assert face.template is not None
        assert face.template.vector.dtype == np.float32 and face.template.vector.shape == (128,)
        assert abs(np.linalg.norm(face.template.vector) - 1) < 1e-5
        assert face.template.model_id == "dlib-resnet-v1"


def test_batch_embedding_equals_one_by_one() -> None:
    images = [load_image(p).pixels for p in (KIT[0], ROSE[0], MULTI)]
    batched = [f.template.vector for faces in find_faces(images) for f in faces]
    single = [f.template.vector for image in images for f in find_faces([image])[0]]
    assert len(batched) == 4
    np.testing.assert_allclose(np.array(batched), np.array(single), atol=1e-5)


def test_flip_augmentation_changes_little_and_jitter_is_averaged() -> None:
    pixels = load_image(ROSE[0]).pixels
    plain = find_faces([pixels], dataclasses.replace(DEFAULT_OPTIONS, flip=False))[0][0].template.vector
    flipped = find_faces([pixels], dataclasses.replace(DEFAULT_OPTIONS, flip=True))[0][0].template.vector
    assert 0.95 < float(plain @ flipped) < 0.99999
    chip = np.zeros((150, 150, 3), np.uint8)
    assert embed_chips([chip, chip], jitter=3).shape == (2, 128)


def test_empty_batch() -> None:
    assert embed_chips([]).shape == (0, 128)
    assert find_faces([]) == []
