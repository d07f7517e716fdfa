"""Templates: normalised, tagged, batched, with test-time augmentation."""

from __future__ import annotations

import dataclasses

import numpy as np

import faceprint
from faceprint.embedding import embed_chips
from faceprint.image import load_image
from faceprint.models import DLIB_RESNET
from faceprint.pipeline import DEFAULT_OPTIONS, find_faces
from faceprint.profiles import CLASSIC

from .conftest import KIT, MULTI, ROSE


def test_templates_are_unit_float32_and_tagged() -> None:
    faces = faceprint.embed(MULTI)
    assert len(faces) == 2
    for face in faces:
        assert face.template is not None
        assert face.template.vector.dtype == np.float32
        assert face.template.vector.shape == (DEFAULT_OPTIONS.model.dimension,)
        assert abs(np.linalg.norm(face.template.vector) - 1) < 1e-5
        assert face.template.model_id == DEFAULT_OPTIONS.model.model_id


def test_batch_embedding_equals_one_by_one() -> None:
    images = [load_image(p).pixels for p in (KIT[0], ROSE[0], MULTI)]
    batched = [f.template.vector for faces in find_faces(images) for f in faces]
    single = [f.template.vector for image in images for f in find_faces([image])[0]]
    assert len(batched) == 4
    np.testing.assert_allclose(np.array(batched), np.array(single), atol=1e-5)


def template(pixels: np.ndarray, **options: object) -> np.ndarray:
    return find_faces([pixels], dataclasses.replace(DEFAULT_OPTIONS, **options))[0][0].template.vector


def test_flip_and_jitter_augmentation_change_little_and_are_repeatable() -> None:
    pixels = load_image(ROSE[0]).pixels
    plain = template(pixels, flip=False)
    flipped = template(pixels, flip=True)
    jittered = template(pixels, flip=False, jitter=4)
    assert 0.95 < float(plain @ flipped) < 0.99999
    assert 0.95 < float(plain @ jittered) < 0.99999
    np.testing.assert_array_equal(jittered, template(pixels, flip=False, jitter=4))


def test_onnx_and_dlib_runtimes_give_the_same_templates() -> None:
    """dlib's ResNet has two runtimes (the classic profile's model; SFace runs on onnxruntime only)."""
    pixels = load_image(MULTI).pixels
    for flip in (False, True):
        onnx_faces = find_faces([pixels], dataclasses.replace(CLASSIC, backend="onnx", flip=flip))[0]
        dlib_faces = find_faces([pixels], dataclasses.replace(CLASSIC, backend="dlib", flip=flip))[0]
        for a, b in zip(onnx_faces, dlib_faces):
            assert a.template.model_id == b.template.model_id
            np.testing.assert_allclose(a.template.vector, b.template.vector, atol=1e-5)
    chip = np.zeros((150, 150, 3), np.uint8)
    assert embed_chips([chip, chip], jitter=3, backend="dlib", model=DLIB_RESNET).shape == (2, DLIB_RESNET.dimension)


def test_empty_batch() -> None:
    assert embed_chips([]).shape == (0, DEFAULT_OPTIONS.model.dimension)
    assert find_faces([]) == []
