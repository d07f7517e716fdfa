"""The fused model: one template per face whose inner product is the weighted sum of dlib's and SFace's cosines."""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, models, profiles
from faceprint.cli import app
from faceprint.embedding import part_templates
from faceprint.errors import ModelError
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, PipelineOptions, find_faces
from faceprint.types import Box

from .conftest import KIT, OBAMA, ROSE

PHOTOS = [KIT[0], KIT[1], ROSE[0], OBAMA[0]]
CALIBRATIONS = resources.files("faceprint.data")


def templates(model: models.EmbeddingModel, **options) -> np.ndarray:
    images = [load_image(photo).pixels for photo in PHOTOS]
    faces = find_faces(images, PipelineOptions(model=model, threads=1, **options))
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


def test_an_unflipped_part_skips_only_its_own_mirror_image() -> None:
    fused = part_templates(templates(models.FUSED, unflipped=(models.SFACE.model_id,)), models.FUSED)
    np.testing.assert_allclose(fused[0], templates(models.DLIB_RESNET, flip=True), atol=1e-6)
    np.testing.assert_allclose(fused[1], templates(models.SFACE, flip=False), atol=1e-6)
    assert not np.allclose(fused[1], templates(models.SFACE, flip=True, unflipped=()), atol=1e-4)


def test_fused_model_is_named_by_its_parts_and_their_weights_sum_to_one() -> None:
    assert models.embedding_model("dlib-resnet-v1+sface-2021dec") is models.FUSED
    assert [part.model_id for part, _ in models.FUSED.parts] == ["dlib-resnet-v1", "sface-2021dec"]
    assert sum(weight for _, weight in models.FUSED.parts) == 1
    assert models.FUSED.dimension == sum(part.dimension for part, _ in models.FUSED.parts)


def test_a_gallery_opened_without_options_keeps_its_templates_model(tmp_path: Path) -> None:
    assert Gallery(tmp_path / "new.db").options == DEFAULT_OPTIONS == profiles.ACCURATE
    # A gallery made by the former default (dlib's ResNet) keeps that pipeline, and refuses the new model.
    with Gallery(tmp_path / "dlib.db", options=profiles.CLASSIC) as gallery:
        gallery.enroll("Kit", [KIT[0]])
    with Gallery(tmp_path / "dlib.db") as reopened:
        assert reopened.options == profiles.CLASSIC and reopened.model_id == models.DLIB_RESNET.model_id
        (answer,) = reopened.identify(KIT[1])
        assert answer.name == "Kit"
        with pytest.raises(ModelError, match="mixing models is refused"):
            Gallery(tmp_path / "dlib.db", options=DEFAULT_OPTIONS).enroll("Rose", [ROSE[0]])
    sface = PipelineOptions(model=models.SFACE, threads=1)
    with Gallery(tmp_path / "sface.db", options=sface) as gallery:
        gallery.enroll("Kit", [KIT[0]])
    with Gallery(tmp_path / "sface.db") as reopened:
        assert reopened.options == dataclasses.replace(profiles.CLASSIC, model=models.SFACE, unflipped=())
        with pytest.raises(ModelError, match="mixing models is refused"):
            Gallery(tmp_path / "sface.db", options=profiles.FAST).enroll("Rose", [ROSE[0]])
    assert profiles.options_for_model(models.FUSED) == profiles.ACCURATE
    assert profiles.options_for_model(models.DLIB_RESNET) == profiles.CLASSIC


def test_reembed_computes_templates_anew_from_their_sources_and_removes_those_gone(tmp_path: Path) -> None:
    kept, gone, changed = (tmp_path / f"{name}.jpg" for name in ("kept", "gone", "changed"))
    for copy, photo in zip((kept, gone, changed), (KIT[0], KIT[1], ROSE[0])):
        shutil.copy(photo, copy)
    with Gallery(tmp_path / "g.db", options=profiles.CLASSIC) as gallery:  # a gallery of the former default
        gallery.enroll("Kit", [kept, gone])
        gallery.enroll("Rose", [changed])
        gallery.set_calibration(json.loads(CALIBRATIONS.joinpath("calibration-dlib-resnet-v1.json").read_text()))
        gone.unlink()
        shutil.copy(ROSE[1], changed)
        done = gallery.reembed(workers=1)  # to the default pipeline's model
        assert done.model_id == DEFAULT_OPTIONS.model.model_id == models.FUSED.model_id and done.reembedded == 1
        # The stored calibration measured dlib's scores: the gallery now decides with the fused model's own.
        assert done.calibration_dropped and gallery.stored_calibration() is None
        assert gallery.calibration().model_id == models.FUSED.model_id
        assert sorted((Path(str(r.source)).name, reason) for r, reason in done.removed) == [
            ("changed.jpg", "source image changed since enrollment"),
            ("gone.jpg", "source image gone"),
        ]
        assert gallery.store.model_ids() == [models.FUSED.model_id] and gallery.template_count() == 1
        (answer,) = gallery.identify(KIT[2])
        assert answer.name == "Kit" and answer.face.template.model_id == models.FUSED.model_id
    with Gallery(tmp_path / "g.db") as reopened:
        assert reopened.options == profiles.ACCURATE
        assert reopened.person("Rose").template_count == 0


def test_reembed_of_a_gallery_whose_sources_all_exist_keeps_every_template(tmp_path: Path) -> None:
    photos = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for copy, photo in zip(photos, (KIT[0], ROSE[0])):
        shutil.copy(photo, copy)
    with Gallery(tmp_path / "g.db", options=profiles.FAST) as gallery:
        gallery.enroll("Kit", [photos[0]])
        gallery.enroll("Rose", [photos[1]])
        before = {r.person_id: r.box for r in gallery.store.all_templates()}
        done = gallery.reembed(profiles.CLASSIC, workers=1)
        assert (done.reembedded, done.removed, done.model_id) == (2, [], models.DLIB_RESNET.model_id)
        assert not done.calibration_dropped
        after = {r.person_id: r.box for r in gallery.store.all_templates()}
        # The same faces, found again by the classic profile's detector: boxes of each person's face overlap.
        assert before.keys() == after.keys()
        assert all(Box(*before[p]).iou(Box(*after[p])) > 0.3 for p in before)
        assert [a.name for a in gallery.identify(ROSE[1])] == ["Rose"]


def test_cli_profile_and_people_reembed(tmp_path: Path) -> None:
    photo, db = tmp_path / "kit.jpg", tmp_path / "g.db"
    shutil.copy(KIT[0], photo)
    run("enroll", "Kit", photo, "--profile", "fast", "--db", db)
    run("identify", KIT[1], "--db", db)  # the gallery measures itself for identification (dlib's scores)
    done = json.loads(run("people", "reembed", "--profile", "accurate", "--db", db, "--json"))
    assert (done["model_id"], done["reembedded"], done["removed"]) == (models.FUSED.model_id, 1, [])
    # The gallery now identifies with the fused model, without being told.
    (answer,) = json.loads(run("identify", KIT[1], "--db", db, "--json"))
    assert answer["faces"][0]["name"] == "Kit"
    run("verify", KIT[0], KIT[1], "--profile", "accurate")  # no gallery: the shipped fused calibration
    assert "Invalid value for '--profile'" in run("embed", KIT[0], "--profile", "slow", code=2)


def run(*args: object, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.output
