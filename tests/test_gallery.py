"""Gallery: enrollment, identification, persistence, people management and bad situations."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faceprint import (
    Gallery,
    GalleryError,
    InvalidImageError,
    LowQualityError,
    ManyFacesError,
    ModelError,
    NoFaceError,
    PersonNotFoundError,
    Template,
)
from faceprint.gallery import _assign
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.pipeline import ImageResult, process_files
from faceprint.types import Candidate

from .conftest import ALEX, HIRES, KIT, LIN, MULTI, OBAMA, ROOT, ROSE, run_python


def rel(path: Path) -> str:
    return str(path.relative_to(HIRES))


@pytest.fixture()
def gallery(tmp_path: Path, hires_results: dict[str, ImageResult]) -> Gallery:
    """A gallery with Kit (2 photos), Rose (1) and Obama (1) enrolled."""
    g = Gallery(tmp_path / "gallery.db")
    for name, photos in (("Kit Harington", KIT[:2]), ("Rose Leslie", ROSE[:1]), ("Barack Obama", OBAMA[:1])):
        g.enroll_results(name, [hires_results[rel(p)] for p in photos])
    yield g
    g.close()


def names(gallery: Gallery, photo: Path) -> list[str]:
    return [i.name for i in gallery.identify(photo)]


def test_enroll_then_identify_known_and_unknown(gallery: Gallery) -> None:
    assert names(gallery, KIT[2]) == ["Kit Harington"]
    assert names(gallery, ROSE[1]) == ["Rose Leslie"]
    assert names(gallery, OBAMA[3]) == ["Barack Obama"]
    assert names(gallery, ALEX[1]) == ["unknown"]
    assert names(gallery, LIN[0]) == ["unknown"]


def test_identification_reports_candidates_scores_and_threshold(gallery: Gallery) -> None:
    (answer,) = gallery.identify(KIT[2], top_k=3)
    assert answer.match is not None and answer.match.similarity >= answer.threshold
    assert answer.candidates[0].name == "Kit Harington"
    assert len(answer.candidates) == 3
    scores = [c.similarity for c in answer.candidates]
    assert scores == sorted(scores, reverse=True)
    assert answer.candidates[0].estimated_fmr < answer.candidates[1].estimated_fmr
    (stranger,) = gallery.identify(ALEX[1])
    assert stranger.match is None and stranger.candidates[0].similarity < stranger.threshold


def test_group_photo_names_both_faces(gallery: Gallery) -> None:
    assert sorted(names(gallery, MULTI)) == ["Kit Harington", "Rose Leslie"]


@pytest.mark.slow
def test_one_person_is_never_given_to_two_faces(tmp_path: Path, hires_results: dict[str, ImageResult]) -> None:
    with Gallery(tmp_path / "kit.db", fmr=0.1) as g:
        g.enroll_results("Kit Harington", [hires_results[rel(p)] for p in KIT])
        assert sorted(names(g, MULTI)) == ["Kit Harington", "unknown"]


def test_assignment_prefers_the_stronger_face() -> None:
    kit, rose = Candidate(1, "Kit", 0.95, 1e-5), Candidate(2, "Rose", 0.93, 1e-4)
    weaker_kit = Candidate(1, "Kit", 0.94, 1e-5)
    # Face 1 is more like Kit than face 0 is; face 0 falls back to its second candidate.
    matches = _assign([[weaker_kit, rose], [kit]], threshold=0.92)
    assert matches == [rose, kit]
    assert _assign([[weaker_kit], [kit]], threshold=0.92) == [None, kit]
    assert _assign([[Candidate(1, "Kit", 0.5, 0.1)]], threshold=0.92) == [None]


@pytest.mark.slow
def test_gallery_persists_across_processes(gallery: Gallery) -> None:
    code = "import sys, faceprint; print([i.name for i in faceprint.Gallery(sys.argv[1]).identify(sys.argv[2])])"
    done = run_python(code, str(gallery.path), str(KIT[2]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Kit Harington']"


@pytest.mark.slow
def test_enrollment_refuses_bad_photos_with_the_reason(gallery: Gallery, tmp_path: Path) -> None:
    import cv2

    from faceprint.image import load_image

    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(ROSE[0])), (0, 0), 6))
    with pytest.raises(LowQualityError, match=r"blurred\.jpg: face quality too low: too blurry"):
        gallery.enroll("Blurry Rose", [blurred])
    with pytest.raises(ManyFacesError, match="2 faces found"):
        gallery.enroll("Two People", [MULTI])
    blank = np.full((200, 200, 3), 90, np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        gallery.enroll("Nobody", [blank])
    assert [p.name for p in gallery.people()] == ["Barack Obama", "Kit Harington", "Rose Leslie"]
    # A partly bad batch stores the good photos and reports the others.
    partial = gallery.enroll("Rose Leslie", [ROSE[1], blank, load_image(MULTI).pixels])
    assert len(partial.added) == 1 and len(partial.rejected) == 2
    assert gallery.person("Rose Leslie").template_count == 2


def test_enroll_people_from_one_folder_per_person(tmp_path: Path) -> None:
    from PIL import Image

    from faceprint.image import person_folders

    root = tmp_path / "people"
    for name, photos in (("Kit", KIT[:2]), ("Rose", [*ROSE[:1], MULTI])):
        (root / name).mkdir(parents=True)
        for photo in photos:
            (root / name / photo.name).write_bytes(photo.read_bytes())
    (root / "Nobody").mkdir()
    Image.new("RGB", (120, 120), "grey").save(root / "Nobody" / "blank.png")
    (root / "empty").mkdir()  # no photos: not a person
    people = person_folders(root)
    assert list(people) == ["Kit", "Nobody", "Rose"]
    done: list[int] = []
    with Gallery(tmp_path / "g.db") as g:
        outcome = g.enroll_people(people, workers=1, on_done=done.append)
        assert [e.person.name for e in outcome.enrolled] == ["Kit", "Rose"] and sum(done) == 5
        assert [len(e.added) for e in outcome.enrolled] == [2, 1] and outcome.refused_any
        assert isinstance(outcome.enrolled[1].rejected[0][1], ManyFacesError)
        ((person, error),) = outcome.failed
        assert person == "Nobody" and isinstance(error, NoFaceError)
        assert outcome.to_dict()["failed"] == [{"person": "Nobody", "error": "NoFaceError", "message": str(error)}]
        assert [p.name for p in g.people()] == ["Kit", "Rose"]
        with pytest.raises(ValueError, match="external_id"):
            g.enroll_people(people, external_id="x")
    with pytest.raises(InvalidImageError, match="no sub-folder with images"):
        person_folders(root / "empty")


def test_largest_face_can_be_enrolled_from_a_group_photo(tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.db") as g:
        result = g.enroll("Kit Harington", [MULTI], largest=True)
        assert len(result.added) == 1


def test_the_same_photo_is_not_enrolled_twice(gallery: Gallery) -> None:
    again = gallery.enroll("Kit Harington", [KIT[0], KIT[2]])
    assert again.duplicates == 1 and len(again.added) == 1
    assert gallery.person("Kit Harington").template_count == 3


def test_people_management(gallery: Gallery) -> None:
    gallery.enroll("Kit", [KIT[2]], external_id="emp-7", metadata={"team": "north"})
    assert gallery.person("emp-7").name == "Kit"
    merged = gallery.merge("Kit", "Kit Harington")
    assert merged.template_count == 3 and merged.external_id == "emp-7" and merged.metadata == {"team": "north"}
    with pytest.raises(PersonNotFoundError):
        gallery.person("Kit")
    renamed = gallery.rename("Kit Harington", "Jon Snow")
    assert names(gallery, KIT[2]) == ["Jon Snow"] and renamed.id == merged.id
    with pytest.raises(GalleryError, match="already exists"):
        gallery.rename("Jon Snow", "Rose Leslie")
    first = gallery.templates("Jon Snow")[0]
    assert first.source and first.image_sha256 and first.quality_report and first.model_id == gallery.model_id
    gallery.remove_template(first.id)
    assert gallery.person("Jon Snow").template_count == 2
    gallery.remove_person("Jon Snow")
    assert names(gallery, KIT[2]) == ["unknown"]
    with pytest.raises(PersonNotFoundError):
        gallery.remove_person("Jon Snow")


def test_templates_of_another_model_are_refused(gallery: Gallery) -> None:
    with pytest.raises(ModelError, match="different models"):
        gallery.add_templates("X", [Template(np.ones(128, np.float32) / np.sqrt(128), "arcface-r100")])


def test_corrupt_gallery_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = np.random.default_rng(0).bytes(8192)
    path.write_bytes(garbage)
    with pytest.raises(GalleryError, match=r"corrupt\.db: not a readable faceprint gallery"):
        Gallery(path)
    assert path.read_bytes() == garbage


def test_foreign_sqlite_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(GalleryError, match="not a faceprint gallery"):
        Gallery(path)


def test_gallery_from_a_newer_version_is_refused(gallery: Gallery) -> None:
    gallery.close()
    with sqlite3.connect(gallery.path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(GalleryError, match="newer than this faceprint supports"):
        Gallery(gallery.path)


def test_gallery_is_in_wal_mode_with_schema_version(gallery: Gallery) -> None:
    with sqlite3.connect(gallery.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_a_failure_mid_enrollment_commits_nothing(
    gallery: Gallery, hires_results: dict[str, ImageResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = SQLiteStore.add_templates

    def add_then_fail(self, db, person_id, templates):  # type: ignore[no-untyped-def]
        real_add(self, db, person_id, templates)
        raise RuntimeError("power cut")

    monkeypatch.setattr(SQLiteStore, "add_templates", add_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        gallery.enroll_results("Alex Lacamoire", [hires_results[rel(p)] for p in ALEX[1:]])
    monkeypatch.undo()
    with pytest.raises(PersonNotFoundError):
        gallery.person("Alex Lacamoire")
    assert names(gallery, KIT[2]) == ["Kit Harington"]


WRITER = """
import sys, time
import numpy as np
from faceprint import Gallery, Template
db, prefix, count, start_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
with Gallery(db) as g:
    while not __import__("os").path.exists(start_file):
        time.sleep(0.01)
    for i in range(count):
        vectors = rng.normal(size=(3, g.options.model.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        g.add_templates(f"{prefix}-{i}", [Template(v, g.model_id) for v in vectors])
        print(f"{prefix}-{i}", flush=True)
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db, start = tmp_path / "shared.db", tmp_path / "go"
    Gallery(db).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, "60", str(start)], stdout=subprocess.PIPE)
        for name in ("a", "b")
    ]
    time.sleep(1.0)  # both imported and waiting
    start.touch()
    for w in writers:
        assert w.wait(timeout=120) == 0
    with Gallery(db) as g:
        people = g.people()
        assert len(people) == 120 and {p.template_count for p in people} == {3}


CREATOR = """
import sys, time
from pathlib import Path
from faceprint.gallery.sqlite import SQLiteStore
folder, start, rounds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):  # every process opens the same new gallery at the same moment
    at = start + 0.2 * i
    time.sleep(max(at - time.time() - 0.002, 0))
    while time.time() < at:
        pass
    SQLiteStore(folder / f"{i}.db").close()
"""


@pytest.mark.slow
def test_processes_creating_one_gallery_at_once_all_open_it(tmp_path: Path) -> None:
    """Two races of creating a gallery: switching a new file to write-ahead logging failed at once, without waiting,
    while another process held it (3 creators: about 1 round in 10), and a process reading the file's header before
    another committed the schema, and its tables after, took it for a foreign SQLite file."""
    start, rounds = time.time() + 3, 25
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, str(tmp_path), str(start), str(rounds)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for creator in creators:
        _, err = creator.communicate(timeout=120)
        assert creator.returncode == 0, err
    for i in range(rounds):
        store = SQLiteStore(tmp_path / f"{i}.db", create=False)
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        store.close()


@pytest.mark.slow
def test_two_cli_enrollments_at_once_both_land(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    commands = [
        [sys.executable, "-m", "faceprint", "enroll", name, *map(str, photos), "--db", str(db), "--json"]
        for name, photos in (("Kit Harington", KIT), ("Barack Obama", OBAMA[:4]))
    ]
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with Gallery(db) as g:
        assert {p.name: p.template_count for p in g.people()} == {"Kit Harington": 3, "Barack Obama": 4}


def test_killing_a_writer_mid_enrollment_loses_no_committed_person(tmp_path: Path) -> None:
    db, start = tmp_path / "killed.db", tmp_path / "go"
    start.touch()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "k", "100000", str(start)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    committed = [writer.stdout.readline().strip() for _ in range(40)]
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with Gallery(db) as g:
        assert g.store.integrity_check() == "ok"
        people = {p.name: p.template_count for p in g.people()}
    assert set(committed) <= set(people)
    assert set(people.values()) == {3}  # every enrollment is whole: none half-written


def test_process_files_keeps_going_past_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    results = list(process_files([KIT[0], bad, ROSE[0]], workers=1))
    assert [r.error is None for r in results] == [True, False, True]
    assert "bad.jpg: not an image" in str(results[1].error)


def test_truncated_gallery_file_gives_a_gallery_error(gallery: Gallery) -> None:
    gallery.close()
    with sqlite3.connect(gallery.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = gallery.path.read_bytes()
    gallery.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryError, match=r"gallery\.db"), Gallery(gallery.path) as damaged:
        damaged.people()
        damaged.enroll("Alex Lacamoire", [ALEX[1]])
