"""Erasure that erases: after a removal, no file faceprint wrote holds the removed vectors, in any stored form."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.choices import Storage
from faceprint.cli import app
from faceprint.gallery import Gallery
from faceprint.models import EMBEDDING_MODELS
from faceprint.types import Template

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
