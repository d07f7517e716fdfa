"""faceprint.compat.face_recognition against the real face_recognition 1.4's results on the committed photos.

The references (tests/data/face_recognition) were made once by tools/face_recognition_fixtures.py
with face_recognition itself; nothing here installs or imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dlib
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from typer.testing import CliRunner as TyperRunner

import faceprint.compat.face_recognition as face_recognition
from faceprint.cli import app
from faceprint.compat.face_recognition import api, face_detection_cli, face_recognition_cli

from .conftest import MULTI, ROOT, run_python

REFERENCE = ROOT / "tests" / "data" / "face_recognition"
META = json.loads((REFERENCE / "reference.json").read_text())
PHOTOS: list[str] = META["photos"]
#: Larger photos take seconds in dlib's HOG upsampled once (the original's default).
SLOW_PIXELS = 500_000
ENCODING_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "reference.npz") as arrays:
        return dict(arrays)


@pytest.fixture(scope="module")
def multi() -> np.ndarray:
    return face_recognition.load_image_file(MULTI)


@pytest.fixture(autouse=True)
def in_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the references' paths and command lines are repository-relative


def reference_locations(reference: dict[str, np.ndarray], index: int) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in row) for row in reference[f"{index}/locations"]]


def photo_params() -> list:
    def pixels(path: str) -> int:
        with Image.open(ROOT / path) as image:
            return image.width * image.height

    return [
        pytest.param(index, path, id=Path(path).name, marks=[pytest.mark.slow] if pixels(path) > SLOW_PIXELS else [])
        for index, path in enumerate(PHOTOS)
    ]


@pytest.mark.parametrize(("index", "path"), photo_params())
def test_hog_locations_equal_the_originals(reference: dict[str, np.ndarray], index: int, path: str) -> None:
    image = face_recognition.load_image_file(path)
    assert face_recognition.face_locations(image) == reference_locations(reference, index)


def test_landmarks_and_encodings_equal_the_originals(reference: dict[str, np.ndarray]) -> None:
    assert sum(len(reference[f"{i}/locations"]) for i in range(len(PHOTOS))) >= len(PHOTOS)
    for index, path in enumerate(PHOTOS):
        image = face_recognition.load_image_file(path)
        locations = reference_locations(reference, index)
        for model, points in (("large", 68), ("small", 5)):
            fits = api._raw_face_landmarks(image, locations, model)
            found = np.array([[(p.x, p.y) for p in fit.parts()] for fit in fits]).reshape(-1, points, 2)
            np.testing.assert_array_equal(found, reference[f"{index}/landmarks_{model}"], err_msg=path)
            encodings = np.array(face_recognition.face_encodings(image, locations, model=model)).reshape(-1, 128)
            expected = reference[f"{index}/encodings_{model}"]
            np.testing.assert_allclose(encodings, expected, rtol=0, atol=ENCODING_TOLERANCE, err_msg=path)


def test_jittered_encodings_draw_the_originals_views(reference: dict[str, np.ndarray], tmp_path: Path) -> None:
    """A fresh process's first jittered call gives the original's (dlib's generator, seeded alike)."""
    jittered = META["jittered"]
    code = (
        "import sys, numpy as np, faceprint.compat.face_recognition as fr\n"
        "image = fr.load_image_file(sys.argv[1])\n"
        "np.save(sys.argv[3], np.array(fr.face_encodings(image, num_jitters=int(sys.argv[2]))))\n"
    )
    output = tmp_path / "jittered.npy"
    result = run_python(code, jittered["photo"], str(jittered["num_jitters"]), str(output))
    assert result.returncode == 0, result.stderr
    found = np.load(output)
    np.testing.assert_allclose(found, reference["jittered"], rtol=0, atol=ENCODING_TOLERANCE)
    # Jitter changes the encodings: the comparison above is not the unjittered one.
    unjittered = face_recognition.face_encodings(face_recognition.load_image_file(jittered["photo"]))
    assert np.abs(np.array(unjittered) - found).max() > 10 * ENCODING_TOLERANCE


def test_results_have_the_originals_types_and_shapes(multi: np.ndarray) -> None:
    locations = face_recognition.face_locations(multi)
    assert len(locations) == 2 and all(type(box) is tuple and len(box) == 4 for box in locations)
    assert all(isinstance(v, int) for box in locations for v in box)
    encodings = face_recognition.face_encodings(multi, locations)
    assert type(encodings) is list and [(e.shape, e.dtype) for e in encodings] == [((128,), np.float64)] * 2
    # Raw dlib descriptors, not unit vectors: the 0.6 tolerance keeps its meaning.
    assert all(abs(np.linalg.norm(e) - 1) > 0.01 for e in encodings)
    distances = face_recognition.face_distance(encodings, encodings[0])
    assert type(distances) is np.ndarray and distances.shape == (2,) and distances[0] == 0
    assert face_recognition.compare_faces(encodings, encodings[0]) == [True, distances[1] <= 0.6]
    assert face_recognition.compare_faces(encodings, encodings[0], tolerance=distances[1] / 2) == [True, False]


def test_landmark_dictionaries(multi: np.ndarray) -> None:
    large = face_recognition.face_landmarks(multi)
    sizes = {"chin": 17, "left_eyebrow": 5, "right_eyebrow": 5, "nose_bridge": 4, "nose_tip": 5}
    sizes |= {"left_eye": 6, "right_eye": 6, "top_lip": 12, "bottom_lip": 12}
    assert len(large) == 2 and all({k: len(v) for k, v in face.items()} == sizes for face in large)
    fit = api._raw_face_landmarks(multi)[0]
    assert large[0]["chin"][0] == (fit.part(0).x, fit.part(0).y)
    assert large[0]["top_lip"][-1] == (fit.part(60).x, fit.part(60).y)
    small = face_recognition.face_landmarks(multi, model="small")
    assert [{k: len(v) for k, v in face.items()} for face in small] == [
        {"nose_tip": 1, "left_eye": 2, "right_eye": 2}
    ] * 2
    with pytest.raises(ValueError, match="Invalid landmarks model type"):
        face_recognition.face_landmarks(multi, model="medium")


def test_empty_inputs_give_empty_results() -> None:
    blank = np.full((200, 300, 3), 128, dtype=np.uint8)
    assert face_recognition.face_locations(blank) == []
    assert face_recognition.face_landmarks(blank) == []
    assert face_recognition.face_encodings(blank) == []
    assert face_recognition.face_encodings(blank, known_face_locations=[]) == []
    assert face_recognition.face_encodings(blank, num_jitters=4) == []
    encoding = np.ones(128)
    for empty in ([], np.array([])):
        distances = face_recognition.face_distance(empty, encoding)
        assert type(distances) is np.ndarray and distances.shape == (0,)
        assert face_recognition.compare_faces(empty, encoding) == []


def test_load_image_file_modes(tmp_path: Path) -> None:
    rgba = ROOT / "tests/data/faces-hires/Alex_Lacamoire/Alex_Lacamoire_0001.png"
    assert face_recognition.load_image_file(rgba).shape == (394, 424, 3)
    grey = face_recognition.load_image_file(rgba, mode="L")
    assert grey.shape == (394, 424) and grey.dtype == np.uint8
    with open(rgba, "rb") as file:
        assert face_recognition.load_image_file(file, mode="").shape == (394, 424, 4)


def test_cut_image_file_raises_and_changes_no_global_setting(tmp_path: Path) -> None:
    """Unlike the original, importing the module leaves Pillow refusing truncated files (documented)."""
    from PIL import ImageFile

    cut = tmp_path / "cut.jpg"
    cut.write_bytes(MULTI.read_bytes()[:20_000])
    with pytest.raises(OSError, match="truncated"):
        face_recognition.load_image_file(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_raw_helpers_return_dlibs_objects(multi: np.ndarray) -> None:
    rects = api._raw_face_locations(multi)
    assert isinstance(rects, dlib.rectangles) and len(rects) == 2
    assert api._rect_to_css(api._css_to_rect((10, 40, 30, 20))) == (10, 40, 30, 20)
    assert api._trim_css_to_bounds((-5, 400, 600, -1), multi.shape) == (0, 400, 600, 0)
    fits = api._raw_face_landmarks(multi, [api._rect_to_css(r) for r in rects], model="small")
    assert all(isinstance(f, dlib.full_object_detection) and f.num_parts == 5 for f in fits)
    # The original's module-level models, loaded when asked for.
    assert isinstance(api.pose_predictor_68_point, dlib.shape_predictor)
    assert isinstance(api.face_detector, dlib.fhog_object_detector)
    with pytest.raises(AttributeError):
        _ = api.no_such_model


@pytest.mark.slow
def test_cnn_locations_single_and_batched(multi: np.ndarray) -> None:
    found = api._raw_face_locations(multi, 0, model="cnn")
    assert isinstance(found, dlib.mmod_rectangles) and len(found) == 2
    single = face_recognition.face_locations(multi, 0, model="cnn")
    assert single == [api._trim_css_to_bounds(api._rect_to_css(d.rect), multi.shape) for d in found]
    batched = face_recognition.batch_face_locations([multi, multi], number_of_times_to_upsample=0, batch_size=2)
    assert batched == [single, single]


def split_distance(line: str) -> tuple[str, float | None]:
    """A show-distance line without its distance, and the distance (None when printed as such)."""
    head, _, last = line.rpartition(",")
    try:
        return head, float(last)
    except ValueError:
        return line, None


def assert_same_lines(found: list[str], expected: list[str]) -> None:
    """The same lines, distances within float rounding of the ONNX runtime."""
    found_parts = sorted(split_distance(line) for line in found)
    expected_parts = sorted(split_distance(line) for line in expected)
    assert [text for text, _ in found_parts] == [text for text, _ in expected_parts]
    for (_, a), (_, b) in zip(found_parts, expected_parts):
        assert a == b or abs(a - b) < ENCODING_TOLERANCE  # type: ignore[operator]


@pytest.mark.parametrize("run", range(len(META["face_detection"])))
def test_face_detection_cli_prints_the_originals_lines(run: int) -> None:
    expected = META["face_detection"][run]
    result = CliRunner().invoke(face_detection_cli.main, expected["args"])
    assert result.exit_code == 0, result.output
    assert sorted(result.output.splitlines()) == expected["lines"]


@pytest.mark.slow
@pytest.mark.parametrize("run", range(len(META["face_recognition"])))
def test_face_recognition_cli_prints_the_originals_lines(run: int) -> None:
    expected = META["face_recognition"][run]
    result = CliRunner().invoke(face_recognition_cli.main, expected["args"])
    assert result.exit_code == 0, result.output
    assert_same_lines(result.output.splitlines(), expected["lines"])


def test_faceprint_compat_commands_run_the_originals() -> None:
    runner = TyperRunner()
    expected = META["face_recognition"][1]
    result = runner.invoke(app, ["compat", "face_recognition", *expected["args"]])
    assert result.exit_code == 0, result.output
    assert_same_lines(result.output.splitlines(), expected["lines"])
    result = runner.invoke(app, ["compat", "face_detection", "--help"])
    assert result.exit_code == 0 and "--upsample INTEGER" in result.output
    assert "Usage: faceprint compat face_detection [OPTIONS] IMAGE_TO_CHECK" in result.output
    result = runner.invoke(app, ["compat", "face_recognition", "--tolerance", "x", "a", "b"])
    assert result.exit_code == 2 and "'x' is not a valid float" in result.output


@pytest.mark.slow
def test_faceprint_compat_face_detection_on_several_cpus() -> None:
    """--cpus 2 runs a process pool; its workers' lines reach a pipe."""
    expected = META["face_detection"][0]
    command = [sys.executable, "-m", "faceprint", "compat", "face_detection", *expected["args"], "--cpus", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == expected["lines"]


@pytest.mark.slow
def test_face_recognitions_own_test_suite_passes() -> None:
    """face_recognition's tests/test_face_recognition.py, its imports pointed here (tools/face_recognition_suite.py)."""
    sdist = os.environ.get("FACE_RECOGNITION_SDIST")
    if not sdist:
        pytest.skip(
            "set FACE_RECOGNITION_SDIST to face_recognition's sdist "
            "(pip download --no-binary :all: --no-deps face_recognition==1.3.0): its tests and photos are not committed"
        )
    command = [sys.executable, str(ROOT / "tools" / "face_recognition_suite.py"), sdist]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Ran 30 tests" in result.stderr and "OK" in result.stderr
