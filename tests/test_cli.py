"""The command line: every command, --json output, and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceprint.cli import app
from faceprint.pipeline import DEFAULT_OPTIONS

from .conftest import ALEX, HIRES, KIT, MULTI, OBAMA, ROSE

runner = CliRunner()


def run(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.output


def run_json(*args: object, code: int = 0):
    return json.loads(run(*args, "--json", code=code))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "gallery.db"
    people = tmp_path_factory.mktemp("people")
    for name, photos in (("Kit_Harington", KIT[:2]), ("Rose_Leslie", ROSE[:1])):
        (people / name).mkdir()
        for photo in photos:
            (people / name / photo.name).write_bytes(photo.read_bytes())
    enrolled = run_json("enroll", "--from-dir", people, "--db", path)
    assert [e["person"]["name"] for e in enrolled["enrolled"]] == ["Kit_Harington", "Rose_Leslie"]
    return path


def test_demo_names_the_group_photo(tmp_path: Path) -> None:
    out = tmp_path / "demo.jpg"
    result = run_json("demo", "--out", out)
    assert sorted(face["name"] for face in result["faces"]) == ["Kit Harington", "Rose Leslie"]
    assert Image.open(out).size == (501, 700)


def test_identify_image_and_folder(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "named.jpg"
    (single,) = run_json("identify", MULTI, "--db", db, "--out", out)
    assert sorted(f["name"] for f in single["faces"]) == ["Kit_Harington", "Rose_Leslie"]
    assert out.exists()
    answers = run_json("identify", HIRES / "Kit_Harington", "--db", db)
    assert [a["faces"][0]["name"] for a in answers] == ["Kit_Harington"] * 3
    assert "Kit_Harington" in run("identify", KIT[2], "--db", db)


def test_identify_stranger_exits_1(db: Path) -> None:
    (answer,) = run_json("identify", ALEX[1], "--db", db, code=1)
    assert answer["faces"][0]["name"] == "unknown"


def test_identify_and_verify_disclose_bands_or_decisions_only(db: Path) -> None:
    (banded,) = run_json("identify", KIT[2], "--db", db, "--disclose", "bands")
    face = banded["faces"][0]
    assert face["name"] == "Kit_Harington" and face["band"].startswith("fmr")
    assert "similarity" not in face and all("similarity" not in c for c in face["candidates"])
    (decided,) = run_json("identify", KIT[2], "--db", db, "--disclose", "decisions")
    assert [c["name"] for c in decided["faces"][0]["candidates"]] == ["Kit_Harington"]
    assert "similarity" not in json.dumps(decided) and "band" not in decided["faces"][0]
    verified = run_json("verify", ROSE[0], ROSE[1], "--disclose", "bands")
    assert verified["match"] is True and verified["band"].startswith("fmr<=")
    assert not {"similarity", "distance", "estimated_fmr"} & verified.keys()
    assert "similarity" not in run("verify", ROSE[0], ROSE[1], "--disclose", "decisions")
    run("verify", ROSE[0], ROSE[1], "--disclose", "everything", code=2)


@pytest.mark.slow
def test_enroll_with_bad_photo_reports_and_exits_4(db: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "grey").save(blank)
    result = run_json("enroll", "Barack Obama", OBAMA[0], blank, "--db", db, code=4)
    assert result["enrolled"][0]["rejected"][0]["reason"].endswith("blank.png: no face found")
    result = run_json("enroll", "Nobody", blank, "--db", db, code=4)
    assert result["failed"][0]["error"] == "NoFaceError"


def test_verify_exit_codes() -> None:
    same = run_json("verify", ROSE[0], ROSE[1])
    assert same["match"] is True and same["similarity"] > same["threshold"]
    different = run_json("verify", ROSE[0], KIT[0], code=1)
    assert different["match"] is False
    assert "same person" in run("verify", KIT[0], KIT[1])


def test_verify_many_faces_and_bad_files(tmp_path: Path) -> None:
    error = run_json("verify", MULTI, KIT[0], code=4)
    assert error["error"] == "ManyFacesError"
    # The group photo's main face (see faceprint.detection.prominence) is Kit's: it matches Kit, not Rose.
    assert run_json("verify", MULTI, KIT[0], "--largest")["match"] is True
    assert run_json("verify", MULTI, ROSE[0], "--largest", code=1)["match"] is False
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    error = run_json("verify", broken, KIT[0], code=3)
    assert error["error"] == "InvalidImageError" and "broken.jpg" in error["message"]
    assert "broken.jpg" in run("verify", broken, KIT[0], code=3)
    assert "Traceback" not in run("verify", tmp_path / "missing.jpg", KIT[0], code=3)


def test_detect_writes_annotated_copy(tmp_path: Path, db: Path) -> None:
    out = tmp_path / "boxes.png"
    result = run_json("detect", MULTI, "--out", out, "--landmarks68", "--names", "--db", db)
    assert len(result["faces"]) == 2 and {f["name"] for f in result["faces"]} == {"Kit_Harington", "Rose_Leslie"}
    annotated = np.asarray(Image.open(out))
    assert annotated.shape == (700, 501, 3) and not np.array_equal(annotated, np.asarray(Image.open(MULTI)))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (100, 100)).save(blank)
    assert run_json("detect", blank, code=4)["faces"] == []
    assert "unknown" not in run("detect", MULTI, "--detector", "hog")
    run("detect", MULTI, "--detector", "yolo", code=2)


def test_embed_exports_templates_and_lists_faceless_images(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120)).save(blank)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{MULTI}\n{blank}\n# a comment\n{tmp_path / 'missing.jpg'}\n")
    out = tmp_path / "t.npz"
    summary = run_json("embed", KIT[0], "--list", listing, "--out", out)
    assert summary["faces"] == 3 and summary["no_face"] == [str(blank)] and len(summary["errors"]) == 1
    data = np.load(out)
    model = DEFAULT_OPTIONS.model
    assert data["embeddings"].shape == (3, model.dimension) and data["boxes"].shape == (3, 4)
    assert list(data["face_index"]) == [0, 0, 1] and str(data["model"]) == model.model_id
    assert list(data["no_face"]) == [str(blank)]
    largest = run_json("embed", MULTI, "--largest", "--out", tmp_path / "l.npz")
    assert largest["faces"] == 1


def test_people_commands(db: Path) -> None:
    listed = run_json("people", "list", "--db", db)
    counts = {p["name"]: p["template_count"] for p in listed}
    assert counts["Kit_Harington"] == 2 and counts["Rose_Leslie"] == 1
    shown = run_json("people", "show", "Kit_Harington", "--db", db)
    assert len(shown["templates"]) == 2
    run_json("people", "rename", "Rose_Leslie", "Ygritte", "--db", db)
    run_json("people", "remove-template", shown["templates"][0]["id"], "--db", db)
    assert run_json("people", "show", "Kit_Harington", "--db", db)["template_count"] == 1
    run("people", "list", "--db", db)
    error = run_json("people", "show", "Nobody", "--db", db, code=5)
    assert error["error"] == "PersonNotFoundError"
    run_json("people", "merge", "Ygritte", "Kit_Harington", "--db", db)
    assert run_json("people", "remove", "Kit_Harington", "--db", db)["template_count"] == 2


def test_corrupt_gallery_exits_5(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 4096)
    assert "not a readable faceprint gallery" in run("people", "list", "--db", bad, code=5)


def test_gallery_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_DB", str(tmp_path / "env.db"))
    run_json("enroll", "Rose", ROSE[0])
    assert (tmp_path / "env.db").exists()
    assert run_json("people", "list")[0]["name"] == "Rose"


def test_usage_errors_exit_2() -> None:
    run("enroll", code=2)
    run("embed", code=2)


def test_unwritable_output_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # Its own exit code (7), not 1, which means a negative answer.
    output = run("detect", MULTI, "--out", blocker / "sub" / "out.jpg", code=7)
    assert "error:" in output and "Traceback" not in output and "out.jpg" in output
    for name in ("out.txt", "noext"):
        output = run("detect", MULTI, "--out", tmp_path / name, code=7)
        assert name in output and "Traceback" not in output
