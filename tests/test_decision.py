"""One decision rule per kind of search: a gallery's stored calibration decides ``verify`` at its operating FMR
(``faceprint.match.operating_point``) and ``identify`` and ``video`` at an FPIR for the gallery's size
(``faceprint.match.identification_point``); an FMR outside the calibration, or an FPIR that is not a rate,
is a usage error."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faceprint import Gallery
from faceprint.cli import app
from faceprint.errors import UnsupportedFMRError
from faceprint.match import DEFAULT_FPIR, Calibration, load_calibration, operating_point
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.video.identity import IdentityResolver

from .conftest import KIT
from .video_clips import crossing_clip, make_gallery

MODEL = DEFAULT_OPTIONS.model.model_id  # the model of a new gallery, whose table the test raises
#: Operating FMR of the test calibration: neither the shipped default (1e-3) nor a grid end.
STORED_FMR = 1e-2

runner = CliRunner()


def strict_calibration() -> dict[str, Any]:
    """The shipped table with every threshold raised past any real pair's similarity: under it, nobody
    matches, so a front end that ignored the gallery's calibration would show itself by naming people."""
    document = json.loads(resources.files("faceprint.data").joinpath(f"calibration-{MODEL}.json").read_text())
    for n, point in enumerate(sorted(document["points"], key=lambda p: -p["fmr"])):
        point["threshold"] = 0.999 + n * 1e-5
    return {**document, "source": "test: nobody passes", "operating_fmr": STORED_FMR}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery of Kit Harington and Rose Leslie whose stored calibration lets nobody through."""
    path = tmp_path_factory.mktemp("decision") / "gallery.db"
    with make_gallery(path) as gallery:
        gallery.set_calibration(strict_calibration())
    return path


def invoke(*args: object) -> Any:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_operating_point_takes_the_stored_calibration_and_its_fmr() -> None:
    stored = Calibration.from_dict(strict_calibration())
    point = operating_point(MODEL, stored=stored)
    assert (point.calibration, point.fmr, point.threshold) == (stored, STORED_FMR, stored.threshold(STORED_FMR))
    assert operating_point(MODEL, fmr=1e-4, stored=stored).threshold == stored.threshold(1e-4)
    shipped = operating_point(MODEL)
    assert (shipped.fmr, shipped.threshold) == (1e-3, load_calibration(MODEL).threshold(1e-3))
    for outside in (1e-9, 0.0, -1.0, 0.5):
        with pytest.raises(UnsupportedFMRError, match=r"from 1e-05 to 0\.1"):
            operating_point(MODEL, fmr=outside)


def test_verify_decides_by_the_gallery_calibration(calibrated: Path, tmp_path: Path) -> None:
    Gallery(tmp_path / "uncalibrated.db").close()
    shipped = invoke("verify", KIT[0], KIT[1], "--db", tmp_path / "uncalibrated.db", "--json")
    assert shipped.exit_code == 0 and json.loads(shipped.stdout)["match"]
    missing = invoke("verify", KIT[0], KIT[1], "--db", tmp_path / "none.db", "--json")  # a mistyped --db (issue 15)
    assert missing.exit_code == 5 and not (tmp_path / "none.db").exists(), "reading must not create a gallery"
    result = invoke("verify", KIT[0], KIT[1], "--db", calibrated, "--json")
    verdict = json.loads(result.stdout)
    stored = Calibration.from_dict(strict_calibration())
    assert result.exit_code == 1 and not verdict["match"]
    assert verdict["operating_fmr"] == STORED_FMR and verdict["threshold"] == round(stored.threshold(STORED_FMR), 4)


def test_identify_decides_by_the_gallery_calibration(calibrated: Path) -> None:
    result = invoke("identify", KIT[1], "--db", calibrated, "--json")
    face = json.loads(result.stdout)[0]["faces"][0]
    with Gallery(calibrated) as gallery:
        point = gallery.identification_point()
    assert point.calibration.source == "test: nobody passes"
    assert result.exit_code == 1 and face["name"] == "unknown" and face["decision"] == "no_match"
    assert face["fpir"] == DEFAULT_FPIR and face["threshold"] == round(point.threshold, 4) >= 0.999
    assert face["candidates"][0]["name"] == "Kit Harington", "the search itself still ranks Kit first"


def test_video_decides_by_the_gallery_calibration(calibrated: Path, tmp_path: Path) -> None:
    clip = crossing_clip().write(tmp_path / "clip.mp4")
    events = tmp_path / "events.jsonl"
    result = invoke("video", clip, "--events", events, "--db", calibrated)
    assert result.exit_code == 0, result.output
    labels = [json.loads(line)["label"] for line in events.read_text().splitlines()]
    assert len(labels) == 2 and all(label.startswith("unknown") for label in labels), labels
    with Gallery(calibrated) as gallery:
        point = IdentityResolver(gallery).point
    assert (point.fpir, point.calibration.source) == (DEFAULT_FPIR, "test: nobody passes")


@pytest.mark.parametrize(
    ("command", "option", "message"),
    [
        ("verify", "--fmr=1e-9", "from 1e-05 to 0.1"),
        ("identify", "--fpir=1.5", "between 0 and 1"),
        ("video", "--fpir=0", "between 0 and 1"),
    ],
)
def test_a_rate_outside_the_rule_is_a_usage_error(
    command: str, option: str, message: str, calibrated: Path, tmp_path: Path
) -> None:
    inputs = {"verify": [KIT[0], KIT[1]], "identify": [KIT[0]], "video": [tmp_path / "clip.mp4"]}[command]
    if command == "video":
        crossing_clip().write(inputs[0])
    result = invoke(command, *inputs, option, "--db", calibrated)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_gallery_reports_its_operating_point(calibrated: Path) -> None:
    with Gallery(calibrated) as gallery:
        assert gallery.operating_point().fmr == STORED_FMR
        assert gallery.operating_point(1e-4).fmr == 1e-4
        assert gallery.calibration().source == "test: nobody passes"
        assert gallery.identification_point().fpir == DEFAULT_FPIR
        assert gallery.identification_point(1e-3).fpir == 1e-3
