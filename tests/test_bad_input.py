"""Bad input and odd usage (issue 15): every command answers with one clear error and its exit code,
and a batch completes for its good inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, InvalidImageError, Template, load_image
from faceprint.cli import app
from faceprint.errors import GalleryError, InvalidNameError

from .conftest import KIT

runner = CliRunner()


def run(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.output


def run_json(*args: object, code: int = 0):
    return json.loads(run(*args, "--json", code=code))


def unit(seed: int) -> Template:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return Template(vector / np.linalg.norm(vector), "dlib-resnet-v1")


@pytest.fixture()
def cut_jpeg(tmp_path: Path) -> Path:
    """A JPEG cut inside its header (``head -c 2000``): Pillow fails while opening it, not while decoding."""
    path = tmp_path / "cut.jpg"
    path.write_bytes(KIT[0].read_bytes()[:2000])
    return path


# --- unreadable files ---------------------------------------------------------------------


def test_a_jpeg_cut_in_its_header_is_an_invalid_image_naming_the_file(cut_jpeg: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"cut\.jpg: corrupt or truncated"):
        load_image(cut_jpeg)
    error = run_json("verify", cut_jpeg, KIT[0], code=3)
    assert error["error"] == "InvalidImageError" and "cut.jpg" in error["message"]


# --- person names -------------------------------------------------------------------------

STORES = ["sqlite"] + (["milvus"] if importlib.util.find_spec("milvus_lite") else [])


@pytest.fixture(params=STORES)
def empty_gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Gallery:
    location = tmp_path / ("people.milvus.db" if request.param == "milvus" else "people.db")
    with Gallery(location) as gallery:
        yield gallery


@pytest.mark.parametrize("name", ["", "   ", "a\tb", "two\nlines", "unknown", " Unknown "])
def test_names_that_cannot_be_stored_are_refused(empty_gallery: Gallery, name: str) -> None:
    with pytest.raises(InvalidNameError):
        empty_gallery.add_templates(name, [unit(0)])
    assert empty_gallery.people() == []


def test_names_are_stripped_nfc_and_one_person_in_any_case(empty_gallery: Gallery) -> None:
    empty_gallery.add_templates(" Kit ", [unit(0)])
    empty_gallery.add_templates("kit", [unit(1)])
    empty_gallery.add_templates("Zoe\u0301", [unit(2)])  # e + combining accent: stored as one code point
    assert [(p.name, p.template_count) for p in empty_gallery.people()] == [("Kit", 2), ("Zoé", 1)]
    assert empty_gallery.person("KIT").name == "Kit" and empty_gallery.person("zoé").template_count == 1
    with pytest.raises(GalleryError, match="already exists"):
        empty_gallery.rename("Zoé", "KIT")
    with pytest.raises(InvalidNameError):
        empty_gallery.rename("Kit", "")
    assert empty_gallery.rename("Kit", "kit  ").name == "kit"  # a change of case only is a rename


def test_the_cli_refuses_bad_names_as_usage_errors(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    assert "empty" in run("enroll", "   ", KIT[0], "--db", db, code=2)
    run("enroll", "Kit", KIT[0], "--db", db)
    assert "unknown" in run("people", "rename", "Kit", "unknown", "--db", db, code=2)
    assert "empty" in run("people", "rename", "Kit", "", "--db", db, code=2)
