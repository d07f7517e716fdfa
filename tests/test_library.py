"""Photo libraries: scanning a folder into the gallery, incrementally and resumably."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceprint import Gallery, InvalidImageError, ModelError
from faceprint.cli import app
from faceprint.library import scan
from faceprint.pipeline import process_files
from faceprint.profiles import ACCURATE, FAST

from .conftest import KIT, MULTI, ROOT, ROSE


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """Five photos: Kit's three, one of Rose, and the photo of both (two faces)."""
    folder = tmp_path / "photos"
    (folder / "kit").mkdir(parents=True)
    (folder / "other").mkdir()
    for photo in KIT:
        shutil.copy(photo, folder / "kit" / photo.name)
    shutil.copy(ROSE[0], folder / "other" / ROSE[0].name)
    shutil.copy(MULTI, folder / "other" / MULTI.name)
    return folder


def faces_by_path(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.path, f.id, f.vector, f.box FROM face f JOIN photo p ON p.id = f.photo_id ORDER BY f.id"
        ).fetchall()
    found: dict[str, list[tuple]] = {}
    for path, face_id, vector, box in rows:
        found.setdefault(path, []).append((face_id, np.frombuffer(vector, "<f4"), box))
    return found


def test_scan_stores_every_face_with_template_box_quality_and_thumbnail(tmp_path: Path, library: Path) -> None:
    reports: list[tuple[str, int, int]] = []
    with Gallery(tmp_path / "g.db") as gallery:
        summary = scan(gallery, library, workers=1, on_progress=lambda *report: reports.append(report))
        model = gallery.model_id
        expected = {
            str(p): r
            for p, r in zip(
                sorted(library.rglob("*.jpg")),
                process_files(sorted(library.rglob("*.jpg")), gallery.options, workers=1),
            )
        }
    assert (summary.photos, summary.new, summary.faces, summary.errors) == (5, 5, 6, [])
    assert reports[0] == ("scanning photos", 0, 5) and reports[-1] == ("scanning photos", 5, 5)
    stored = faces_by_path(tmp_path / "g.db")
    assert set(stored) == set(expected)
    for path, faces in stored.items():
        assert len(faces) == len(expected[path].faces)
        for (_, vector, box), face in zip(faces, expected[path].faces):
            assert np.abs(vector - face.template.vector).max() <= 1e-6
            assert json.loads(box) == list(face.box.as_tuple())
    with sqlite3.connect(tmp_path / "g.db") as conn:
        rows = conn.execute(
            "SELECT f.model_id, f.quality, f.thumbnail, p.sha256, p.size FROM face f JOIN photo p ON p.id = f.photo_id"
        ).fetchall()
    for model_id, quality, thumbnail, sha256, size in rows:
        assert model_id == model and 0 <= quality <= 1 and len(sha256) == 64 and size > 0
        assert max(Image.open(io.BytesIO(thumbnail)).size) <= 96


def test_rescan_processes_only_new_changed_and_notices_gone_and_moved(tmp_path: Path, library: Path) -> None:
    with Gallery(tmp_path / "g.db") as gallery:
        scan(gallery, library, workers=1)
        before = faces_by_path(tmp_path / "g.db")
        again = scan(gallery, library, workers=1)
        assert (again.unchanged, again.new, again.changed, again.faces) == (5, 0, 0, 0)

        touched = library / "kit" / KIT[0].name
        os.utime(touched, ns=(1_000_000_000, 1_000_000_000))  # new mtime, same bytes: confirmed by digest
        (library / "kit" / KIT[1].name).rename(library / "moved.jpg")
        (library / "other" / ROSE[0].name).unlink()
        shutil.copy(KIT[2], library / "other" / MULTI.name)  # same path, other content
        shutil.copy(ROSE[1], library / "new.jpg")
        summary = scan(gallery, library, workers=1)
    assert (summary.photos, summary.new, summary.changed, summary.moved, summary.deleted) == (5, 1, 1, 2, 1)
    assert summary.faces == 2  # the new photo's face and the changed one's single face
    after = faces_by_path(tmp_path / "g.db")
    assert after[str(touched)][0][0] == before[str(touched)][0][0]  # same face row: not processed again
    assert after[str(library / "moved.jpg")][0][0] == before[str(library / "kit" / KIT[1].name)][0][0]
    assert str(library / "other" / ROSE[0].name) not in after
    assert len(after[str(library / "other" / MULTI.name)]) == 1


def test_unreadable_photo_is_reported_and_the_others_stored(tmp_path: Path, library: Path) -> None:
    (library / "broken.jpg").write_bytes(KIT[0].read_bytes()[:300])
    with Gallery(tmp_path / "g.db") as gallery:
        summary = scan(gallery, library, workers=1)
        assert [path for path, _ in summary.errors] == [str(library / "broken.jpg")]
        assert summary.faces == 6
        assert scan(gallery, library, workers=1).unchanged == 6  # not retried until it changes


def test_scan_refuses_a_folder_that_is_not_one_and_faces_of_another_model(tmp_path: Path, library: Path) -> None:
    with Gallery(tmp_path / "g.db") as gallery:
        with pytest.raises(InvalidImageError, match="not a folder"):
            scan(gallery, library / "missing")
        scan(gallery, library / "kit", workers=1)
        model = gallery.model_id
    other = next(profile for profile in (ACCURATE, FAST) if profile.model.model_id != model)
    with Gallery(tmp_path / "g.db", options=other) as gallery, pytest.raises(ModelError, match="photo library"):
        scan(gallery, library)
    with Gallery(tmp_path / "g.db") as gallery, pytest.raises(ModelError, match="photo library"):
        gallery.reembed(other)  # the library's faces would be left of another model


def test_scan_command_reports_in_json_and_refuses_a_missing_folder(tmp_path: Path, library: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["scan", str(library / "kit"), "--db", str(tmp_path / "g.db"), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["faces"] == 3
    missing = runner.invoke(app, ["scan", str(tmp_path / "nowhere"), "--db", str(tmp_path / "g.db")])
    assert missing.exit_code == 3 and "not a folder" in missing.output


_SCAN_SLOWLY = """
import sys
from faceprint import Gallery
from faceprint.library import scan
with Gallery(sys.argv[1]) as gallery:
    scan(gallery, sys.argv[2], workers=1, batch_size=1)
"""


@pytest.mark.slow
def test_killed_scan_loses_at_most_the_batch_in_flight_and_the_next_one_completes(
    tmp_path: Path, library: Path
) -> None:
    for i in range(3):  # more photos, so the kill lands mid-scan
        shutil.copytree(library / "kit", library / f"copy{i}")
    db = tmp_path / "g.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen([sys.executable, "-c", _SCAN_SLOWLY, str(db), str(library)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _photos(db) < 3:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted = _photos(db)
    assert 3 <= interrupted < 14, "the kill should land mid-scan"
    with Gallery(db) as gallery:
        summary = scan(gallery, library, workers=1)
    assert summary.unchanged == interrupted and summary.new == 14 - interrupted
    with Gallery(tmp_path / "clean.db") as gallery:
        scan(gallery, library, workers=1)
    resumed, clean = faces_by_path(db), faces_by_path(tmp_path / "clean.db")
    assert set(resumed) == set(clean)
    for path in clean:
        assert [np.abs(a[1] - b[1]).max() <= 1e-6 for a, b in zip(resumed[path], clean[path])] == [True] * len(
            clean[path]
        )


def _photos(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM photo").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
