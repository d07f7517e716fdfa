"""Shared fixtures: the committed faces-hires photos and their templates, computed once."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faceprint import Gallery
from faceprint.library import scan
from faceprint.pipeline import ImageResult, process_files

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT / "tests" / "data" / "faces-hires"
SHARED_DATA = Path(os.environ.get("FACEPRINT_SHARED_DATA", ROOT.parent / "shared" / "data"))

MULTI = HIRES / "multi" / "kit_harington_and_rose_leslie.jpg"
KIT = sorted((HIRES / "Kit_Harington").glob("*"))
ROSE = sorted((HIRES / "Rose_Leslie").glob("*"))
OBAMA = sorted((HIRES / "Barack_Obama").glob("*"))
ALEX = sorted((HIRES / "Alex_Lacamoire").glob("*"))
LIN = sorted((HIRES / "Lin-Manuel_Miranda").glob("*"))


@pytest.fixture(autouse=True, scope="session")
def no_user_gallery(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's own default gallery (and a $FACEPRINT_DB) stay out of the tests: the default is a fresh folder."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("user-data")))
    patch.delenv("FACEPRINT_DB", raising=False)


#: The faces-hires people with a folder of single-face photos.
PERSONS = ("Alex_Lacamoire", "Barack_Obama", "Kit_Harington", "Lin-Manuel_Miranda", "Rose_Leslie")


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 15 single-face photos of faces-hires, a folder per person."""
    root = tmp_path_factory.mktemp("people")
    for person in PERSONS:
        shutil.copytree(HIRES / person, root / person)
    return root


@pytest.fixture(scope="module")
def scanned_library(people_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The faces-hires people scanned into a gallery (15 photos, a face each), nobody enrolled; copy it to change it."""
    db = tmp_path_factory.mktemp("library") / "g.db"
    with Gallery(db) as gallery:
        scan(gallery, people_dir, workers=2)
    return db


def hires_rows() -> list[dict[str, str]]:
    with open(HIRES / "images.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def hires_results() -> dict[str, ImageResult]:
    """Pipeline results of every committed photo, keyed by path relative to faces-hires."""
    rows = hires_rows()
    results = process_files([HIRES / r["path"] for r in rows], workers=2)
    return {row["path"]: result for row, result in zip(rows, results)}


def run_python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a separate process, as a user's second program would be)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )
