"""Erasure that erases: after a removal, no file faceprint wrote holds the removed vectors, in any stored form."""

from __future__ import annotations

import base64
import shutil
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.choices import Storage
from faceprint.cli import app
from faceprint.errors import KeyRequiredError
from faceprint.gallery import Gallery
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.library import Clusters, scan
from faceprint.library.scan import THUMBNAIL_SIDE
from faceprint.library.sheet import contact_sheet
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import process_files
from faceprint.protect import new_key
from faceprint.types import Template

from .conftest import KIT, MULTI, ROSE

runner = CliRunner()
PEOPLE, PER_PERSON = 120, 5


def stored_forms(vectors: np.ndarray) -> list[bytes]:
    """Each vector as any faceprint file could hold it: float32, float16, faiss's 8-bit codes over [-1, 1]
    (the i8 index) and a plain symmetric int8 quantisation."""
    dimension = vectors.shape[1]
    quantiser = faiss.ScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit_uniform)
    quantiser.train(np.stack([-np.ones(dimension), np.ones(dimension)]).astype(np.float32))
    faiss_codes = quantiser.compute_codes(np.ascontiguousarray(vectors, np.float32))
    symmetric = np.round(vectors * 127).astype(np.int8)
    forms = [vectors.astype("<f4"), vectors.astype("<f2"), faiss_codes, symmetric]
    return [form[i].tobytes() for form in forms for i in range(len(vectors))]


def files_found_in(folder: Path, patterns: list[bytes]) -> dict[str, int]:
    """For every byte of every file under ``folder``: how many of ``patterns`` each file holds."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = sum(pattern in data for pattern in patterns)
        if hits:
            found[path.name] = hits
    return found


def fill(gallery: Gallery) -> dict[str, np.ndarray]:
    """PEOPLE people of PER_PERSON random unit templates of the gallery's model, one enrollment each."""
    dimension = EMBEDDING_MODELS[gallery.model_id].dimension
    rng = np.random.default_rng(17)
    people = {}
    for n in range(PEOPLE):
        vectors = rng.normal(size=(PER_PERSON, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        gallery.add_templates(f"person {n}", [Template(v, gallery.model_id) for v in vectors])
        people[f"person {n}"] = vectors
    return people


@pytest.mark.parametrize("storage", ["f32", "f16", "i8"])
def test_removing_a_person_leaves_no_copy_of_their_vectors_in_any_file(tmp_path: Path, storage: Storage) -> None:
    folder = tmp_path / "gallery"
    with Gallery(folder / "g.db", index="hnsw", index_storage=storage) as gallery:
        people = fill(gallery)
        gallery.rebuild_index()  # a saved graph holding every vector
        gone = people["person 7"]
        before = files_found_in(folder, stored_forms(gone))
        # The scan does find them: in the gallery file (or its WAL) and in the saved graph.
        assert {"g.db", "g.db-wal"} & before.keys() and any(name.endswith(".hnsw") for name in before)
        gallery.remove_person("person 7")
        assert gallery.index.refresh().dead_share > 0  # type: ignore[attr-defined]  # tombstones remain
        assert files_found_in(folder, stored_forms(gone)) == {}
    assert files_found_in(folder, stored_forms(gone)) == {}  # and after closing
    kept = files_found_in(folder, stored_forms(people["person 8"][:1]))
    assert kept  # the others are still there
    with Gallery(folder / "g.db", index="hnsw", index_storage=storage) as gallery:
        _, found = gallery.search_templates(people["person 8"], 1)
        assert len(gallery.search_templates(gone, 1)[1]) == PER_PERSON and found.min() > 0


def test_remove_template_on_the_command_line_erases_its_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "gallery"
    with Gallery(folder / "g.db", index="hnsw") as gallery:
        people = fill(gallery)
        gallery.rebuild_index()
        template_id = gallery.templates("person 3")[1].id
    monkeypatch.setenv("FACEPRINT_INDEX", "hnsw")
    result = runner.invoke(app, ["people", "remove-template", str(template_id), "--db", str(folder / "g.db")])
    assert result.exit_code == 0, result.output
    assert files_found_in(folder, stored_forms(people["person 3"][1:2])) == {}
    assert files_found_in(folder, stored_forms(people["person 3"][2:3]))


def test_milvus_lite_keeps_a_removed_persons_vectors_in_its_segment_files(tmp_path: Path) -> None:
    """The documented limit (README, "Privacy"): Milvus marks deleted rows and drops them from searches, and only a
    compaction rewrites its segments; Milvus Lite accepts the request and keeps the vectors. Should this change, the
    README's statement must change with it."""
    folder = tmp_path / "g.milvus.db"
    with Gallery(folder) as gallery:
        dimension = EMBEDDING_MODELS[gallery.model_id].dimension
        vectors = np.random.default_rng(3).normal(size=(10, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        gallery.add_templates("Kit", [Template(v, gallery.model_id) for v in vectors[:5]])
        gallery.add_templates("Rose", [Template(v, gallery.model_id) for v in vectors[5:]])
        gallery.remove_person("Kit")  # asks for a compaction (erase_removed)
        assert {p.name for p in gallery.people()} == {"Rose"}
    assert files_found_in(folder, stored_forms(vectors[:5]))


# --- photo libraries (faceprint.library): faces and thumbnails follow the same rules ---------------------------


@pytest.fixture()
def library_copy(scanned_library: Path, tmp_path: Path) -> Path:
    """A copy of the scanned library alone in its folder (the folder every byte of which is scanned)."""
    folder = tmp_path / "gallery"
    folder.mkdir()
    shutil.copy(scanned_library, folder / "g.db")
    return folder / "g.db"


def fragments(forms: list[bytes], size: int = 32) -> list[bytes]:
    """Every ``size``-byte piece of each form: a library face's row is larger than a page's share, so SQLite splits
    it across overflow pages and a vector or a thumbnail may not lie in one piece."""
    return [form[i : i + size] for form in forms for i in range(0, len(form) - size + 1, size)]


def jpeg_fragments(thumbnails: list[bytes]) -> list[bytes]:
    """Pieces of each thumbnail's entropy-coded second half (their headers are alike: not telling)."""
    return fragments([t[len(t) // 2 : -16] for t in thumbnails])


def library_faces(gallery: Gallery, where: str = "1", params: tuple = ()) -> tuple[np.ndarray, list[bytes]]:
    """``(vectors, thumbnails)`` of the library faces ``where`` selects (opened as faceprint reads them)."""
    assert isinstance(gallery.store, SQLiteStore)
    rows = gallery.store.query(
        f"SELECT f.id, f.model_id, f.vector, f.thumbnail FROM face f JOIN photo p ON p.id = f.photo_id WHERE {where}"
        " ORDER BY f.id",
        params,
    )
    vectors = gallery.store.face_vectors(rows, gallery.options.model.dimension)
    return vectors, [gallery.store.face_thumbnail(r[0], r[1], r[3]) for r in rows]


def test_a_rescan_erases_the_faces_of_photos_deleted_from_the_folder(tmp_path: Path) -> None:
    photos, folder = tmp_path / "photos", tmp_path / "gallery"
    photos.mkdir()
    for photo in (KIT[0], KIT[1], ROSE[0]):
        shutil.copy(photo, photos / photo.name)
    with Gallery(folder / "g.db") as gallery:
        scan(gallery, photos, workers=1)
        gone, thumbnails = library_faces(gallery, "p.path LIKE ?", (f"%{KIT[1].name}",))
        kept, _ = library_faces(gallery, "p.path LIKE ?", (f"%{ROSE[0].name}",))
        removed = fragments(stored_forms(gone)) + jpeg_fragments(thumbnails)
        assert len(gone) == 1 and files_found_in(folder, removed)
        (photos / KIT[1].name).unlink()
        assert scan(gallery, photos, workers=1).deleted == 1
        assert files_found_in(folder, removed) == {}
    assert files_found_in(folder, removed) == {}
    assert files_found_in(folder, fragments(stored_forms(kept)))


def test_removing_a_person_named_from_a_cluster_erases_their_library_faces(library_copy: Path) -> None:
    with Gallery(library_copy) as gallery:
        clusters = Clusters(gallery)
        clusters.update()
        kit = next(c for c in clusters.all_clusters() if "Kit_Harington" in clusters.faces(c.id)[0].path)
        faces = [face.id for face in clusters.faces(kit.id)]
        marks = ",".join("?" * len(faces))
        vectors, thumbnails = library_faces(gallery, f"f.id IN ({marks})", tuple(faces))
        others, _ = library_faces(gallery, f"f.id NOT IN ({marks})", tuple(faces))
        clusters.name(kit.id, "Kit")
    result = runner.invoke(app, ["people", "remove", "Kit", "--db", str(library_copy)])
    assert result.exit_code == 0, result.output
    assert files_found_in(library_copy.parent, fragments(stored_forms(vectors)) + jpeg_fragments(thumbnails)) == {}
    assert files_found_in(library_copy.parent, fragments(stored_forms(others[:1])))
    with Gallery(library_copy) as gallery:
        assert kit.id not in {c.id for c in Clusters(gallery).all_clusters()}
        assert len(library_faces(gallery)[0]) == len(others)


def test_rekey_seals_the_faces_and_thumbnails_of_a_plain_library_and_leaves_no_clear_copy(library_copy: Path) -> None:
    key = new_key()
    with Gallery(library_copy) as gallery:
        vectors, thumbnails = library_faces(gallery)
        clear = fragments(stored_forms(vectors)) + jpeg_fragments(thumbnails)
        assert files_found_in(library_copy.parent, clear)
        gallery.rekey(key)
    assert files_found_in(library_copy.parent, clear) == {}
    with pytest.raises(KeyRequiredError):
        Gallery(library_copy)
    with Gallery(library_copy, key=key) as gallery:
        opened, opened_thumbnails = library_faces(gallery)
        np.testing.assert_array_equal(opened, vectors)
        assert opened_thumbnails == thumbnails
        clusters = Clusters(gallery)
        assert clusters.update().founded > 0
        sheet = contact_sheet(clusters, [c.id for c in clusters.all_clusters()])
        assert base64.b64encode(thumbnails[0]).decode() in sheet


def test_a_library_scanned_with_a_key_stores_no_face_or_thumbnail_in_the_clear(tmp_path: Path) -> None:
    photos, folder, key = tmp_path / "photos", tmp_path / "gallery", new_key()
    photos.mkdir()
    shutil.copy(MULTI, photos / MULTI.name)
    with Gallery(folder / "g.db", key=key) as gallery:
        scan(gallery, photos, workers=1)
        vectors, thumbnails = library_faces(gallery)
        expected = next(iter(process_files([MULTI], gallery.options, workers=1, thumbnail_side=THUMBNAIL_SIDE)))
    assert len(vectors) == len(expected.faces) == 2 and all(t.startswith(b"\xff\xd8") for t in thumbnails)
    np.testing.assert_allclose(vectors, np.stack([f.template.vector for f in expected.faces]), atol=1e-6)
    assert files_found_in(folder, fragments(stored_forms(vectors)) + jpeg_fragments(thumbnails)) == {}
    with sqlite3.connect(folder / "g.db") as db:  # a face's sealed vector moved onto the other face does not open
        db.execute("UPDATE face SET vector = (SELECT vector FROM face ORDER BY id LIMIT 1)")
    with Gallery(folder / "g.db", key=key) as gallery, pytest.raises(KeyRequiredError, match="face"):
        library_faces(gallery)


def test_video_faces_are_sealed_with_a_key_and_erased_when_the_video_goes(tmp_path: Path) -> None:
    from .video_clips import crossing_clip

    videos, folder, key = tmp_path / "videos", tmp_path / "gallery", new_key()
    videos.mkdir()
    clip = crossing_clip(frames=30).write(videos / "crossing.mp4")
    with Gallery(folder / "g.db", key=key) as gallery:
        summary = scan(gallery, videos, workers=1, videos=True, keyframe_every=0.4)
        vectors, thumbnails = library_faces(gallery)
        assert summary.faces == len(vectors) >= 2 and all(t.startswith(b"\xff\xd8") for t in thumbnails)
        clear = fragments(stored_forms(vectors)) + jpeg_fragments(thumbnails)
        assert files_found_in(folder, clear) == {}
    with Gallery(tmp_path / "plain" / "g.db") as gallery:  # the same faces unsealed are found: the scan can fail
        scan(gallery, videos, workers=1, videos=True, keyframe_every=0.4)
        plain = library_faces(gallery)[0]
        assert files_found_in(tmp_path / "plain", fragments(stored_forms(plain)))
        clip.unlink()
        assert scan(gallery, videos, workers=1, videos=True, keyframe_every=0.4).deleted == 1
    assert files_found_in(tmp_path / "plain", fragments(stored_forms(plain))) == {}
