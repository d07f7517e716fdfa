"""Encryption at rest (faceprint.protect): sealed vectors, wrapped data keys, rekey, sealed index files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import protect
from faceprint.cli import app
from faceprint.cli.common import exit_code_for
from faceprint.errors import KeyRequiredError
from faceprint.gallery import Gallery
from faceprint.index import synced
from faceprint.models import EMBEDDING_MODELS
from faceprint.protect import KEY_FILE_VARIABLE, OVERHEAD, Sealer, new_key, read_key_file, write_key_file
from faceprint.types import Template

runner = CliRunner()


def random_templates(gallery: Gallery, count: int, seed: int) -> list[Template]:
    """Unit vectors of the gallery's own model and dimension."""
    dimension = EMBEDDING_MODELS[gallery.model_id].dimension
    vectors = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return [Template(v / np.linalg.norm(v), gallery.model_id) for v in vectors]


def stored_blobs(path: Path) -> dict[int, bytes]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT id, vector FROM template").fetchall())


@pytest.fixture()
def key() -> bytes:
    return new_key()


def test_an_encrypted_gallery_stores_no_vector_in_the_clear_and_searches_like_a_plain_one(
    tmp_path: Path, key: bytes
) -> None:
    with Gallery(tmp_path / "plain.db") as plain, Gallery(tmp_path / "sealed.db", key=key) as sealed:
        templates = random_templates(plain, 20, seed=1)
        for i in range(0, 20, 2):
            plain.add_templates(f"p{i}", templates[i : i + 2])
            sealed.add_templates(f"p{i}", templates[i : i + 2])
        queries = np.stack([t.vector for t in templates[::3]])
        np.testing.assert_array_equal(plain.search_templates(queries, 3)[1], sealed.search_templates(queries, 3)[1])
    blobs = stored_blobs(tmp_path / "sealed.db")
    raw = stored_blobs(tmp_path / "plain.db")
    assert set(blobs) == set(raw)
    for template_id, blob in blobs.items():
        assert raw[template_id] not in blob  # sealed: the float32 bytes appear nowhere
        assert len(blob) == len(raw[template_id]) + 28  # nonce and tag
    with Gallery(tmp_path / "sealed.db", key=key) as reopened:
        assert reopened.template_count() == 20


def test_opening_an_encrypted_gallery_without_or_with_another_key_is_refused_and_changes_nothing(
    tmp_path: Path, key: bytes
) -> None:
    path = tmp_path / "g.db"
    with Gallery(path, key=key) as gallery:
        gallery.add_templates("Kit", random_templates(gallery, 2, seed=2))
    before = path.read_bytes()
    with pytest.raises(KeyRequiredError, match="encrypted"):
        Gallery(path)
    with pytest.raises(KeyRequiredError, match="does not open with this key"):
        Gallery(path, key=new_key())
    assert path.read_bytes() == before
    assert exit_code_for(KeyRequiredError("x")) == 5


def test_a_row_swapped_into_another_row_is_refused(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "g.db"
    with Gallery(path, key=key) as gallery:
        ids = gallery.add_templates("Kit", random_templates(gallery, 2, seed=3))
    with sqlite3.connect(path) as db:
        first = db.execute("SELECT vector FROM template WHERE id = ?", (ids[0],)).fetchone()[0]
        db.execute("UPDATE template SET vector = ? WHERE id = ?", (first, ids[1]))
    with Gallery(path, key=key) as gallery, pytest.raises(KeyRequiredError, match=f"template {ids[1]}"):
        gallery.search_templates(np.zeros((1, EMBEDDING_MODELS[gallery.model_id].dimension), np.float32), 2)


def test_a_plain_gallery_opened_with_a_key_is_encrypted_and_keeps_its_templates(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "g.db"
    with Gallery(path) as gallery:
        templates = random_templates(gallery, 4, seed=4)
        gallery.add_templates("Kit", templates)
    with Gallery(path, key=key) as gallery:
        _, found = gallery.search_templates(templates[0].vector[None], 1)
    assert found[0, 0] == 1
    for blob in stored_blobs(path).values():
        assert all(t.vector.astype("<f4").tobytes() not in blob for t in templates)
    with pytest.raises(KeyRequiredError):
        Gallery(path)


def test_rekey_rewraps_the_data_key_without_touching_the_rows(tmp_path: Path, key: bytes) -> None:
    path, new = tmp_path / "g.db", new_key()
    with Gallery(path, key=key) as gallery:
        gallery.add_templates("Kit", random_templates(gallery, 3, seed=5))
    rows = stored_blobs(path)
    with Gallery(path, key=key) as gallery:
        gallery.rekey(new)
    assert stored_blobs(path) == rows
    with pytest.raises(KeyRequiredError):
        Gallery(path, key=key)
    with Gallery(path, key=new) as gallery:
        assert gallery.template_count() == 3


def test_the_saved_search_index_of_an_encrypted_gallery_is_sealed(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "g.db"
    with Gallery(path, key=key, index="hnsw") as gallery:
        templates = random_templates(gallery, 50, seed=6)
        gallery.add_templates("Kit", templates)
        gallery.rebuild_index()
        index_file = gallery.index.path  # type: ignore[attr-defined]
    data = index_file.read_bytes()
    assert not any(t.vector.astype("<f4").tobytes() in data for t in templates)
    with Gallery(path, key=key, index="hnsw") as gallery:
        _, found = gallery.search_templates(templates[7].vector[None], 1)
        assert gallery.index.rebuild_reason is None  # type: ignore[attr-defined]  # opened, not rebuilt
        # decrypted into memory that the graph's vectors are a read-only view of, as a plain file's are of the disk
        assert gallery.index.stats()["memory_mapped"]  # type: ignore[attr-defined]
        new = random_templates(gallery, 1, seed=60)
        added = gallery.add_templates("Lou", new)
        _, after = gallery.search_templates(np.stack([templates[7].vector, new[0].vector]), 1)
    assert found[0, 0] == 8 and after[:, 0].tolist() == [8, added[0]]


def int8_codes(vectors: np.ndarray) -> list[bytes]:
    """Each vector as an int8 graph stores it (faiss's 8-bit codes over [-1, 1])."""
    quantiser = faiss.ScalarQuantizer(vectors.shape[1], faiss.ScalarQuantizer.QT_8bit_uniform)
    quantiser.train(np.stack([-np.ones(vectors.shape[1]), np.ones(vectors.shape[1])]).astype(np.float32))
    return [code.tobytes() for code in quantiser.compute_codes(np.ascontiguousarray(vectors, np.float32))]


def test_an_encrypted_gallery_seals_an_int8_graph_and_answers_with_the_plain_galleries_exact_scores(
    tmp_path: Path, key: bytes
) -> None:
    """A sealed graph is decrypted whole at every open, so by default it holds int8 vectors (41 % of the float32
    file's bytes) and its candidates are re-ranked with the gallery's own float32 templates."""
    with Gallery(tmp_path / "plain.db", index="hnsw") as plain, Gallery(tmp_path / "s.db", key=key, index="hnsw") as s:
        templates = random_templates(plain, 600, seed=62)
        for i in range(0, len(templates), 3):
            plain.add_templates(f"p{i}", templates[i : i + 3])
            s.add_templates(f"p{i}", templates[i : i + 3])
        vectors = np.stack([t.vector for t in templates])
        noise = np.random.default_rng(63).normal(size=(40, vectors.shape[1])).astype(np.float32) / 30
        queries = vectors[::15] + noise
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        answers = {name: g.search_templates(queries, 5) for name, g in (("plain", plain), ("sealed", s))}
        storages = {name: g.index_stats()["storage"] for name, g in (("plain", plain), ("sealed", s))}
        index_file = s.index.path  # type: ignore[attr-defined]
    assert storages == {"plain": "f32", "sealed": synced.SEALED_STORAGE}
    exact = queries @ vectors.T
    scores, ids = answers["sealed"]
    np.testing.assert_allclose(scores, np.take_along_axis(exact, ids - 1, axis=1), atol=1e-6)  # exact scores
    np.testing.assert_array_equal(ids, answers["plain"][1])
    np.testing.assert_array_equal(ids[:, 0], np.arange(0, len(templates), 15) + 1)
    data = index_file.read_bytes()
    assert not any(code in data for code in int8_codes(vectors))  # sealed: no vector's codes in the clear
    with Gallery(tmp_path / "s.db", key=key, index="hnsw", index_storage="f32") as chosen:
        assert chosen.index_stats()["storage"] == "f32"  # a storage the user chooses is kept


def test_the_index_commands_use_an_encrypted_gallerys_own_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_FILE_VARIABLE, str(write_key_file(tmp_path / "master.key")))
    path = tmp_path / "g.db"
    with Gallery(path, index="hnsw") as gallery:
        gallery.add_templates("Kit", random_templates(gallery, 30, seed=64))
        gallery.rebuild_index()
    for command in (["index", "rebuild"], ["index", "stats", "--index", "hnsw"]):
        result = runner.invoke(app, [*command, "--db", str(path), "--json"])
        assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["storage"] == synced.SEALED_STORAGE and stats["rebuilt"] is None  # opened what rebuild saved


def test_a_sealed_index_opens_with_a_faiss_that_cannot_read_from_memory_without_a_copy(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceprint.index import hnsw

    path = tmp_path / "g.db"
    with Gallery(path, key=key, index="hnsw") as gallery:
        templates = random_templates(gallery, 50, seed=61)
        gallery.add_templates("Kit", templates)
        gallery.rebuild_index()
    monkeypatch.delattr(hnsw.faiss, "ZeroCopyIOReader")  # as in faiss versions without it
    with Gallery(path, key=key, index="hnsw") as gallery:
        _, found = gallery.search_templates(np.stack([t.vector for t in templates[:5]]), 1)
        stats = gallery.index.stats()  # type: ignore[attr-defined]
    assert stats["rebuilt"] is None and not stats["memory_mapped"]
    assert found[:, 0].tolist() == [1, 2, 3, 4, 5]


def test_a_file_sealed_in_chunks_refuses_chunks_cut_moved_added_or_taken_from_another_file(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protect, "CHUNK_BYTES", 64)
    sealer, context = Sealer(key), b"the index of gallery 1"
    data = np.random.default_rng(62).bytes(64 * 4 + 10)  # five chunks, the last one short
    first, second = tmp_path / "first", tmp_path / "second"
    for path in (first, second):
        with sealer.writing(path, context) as write:
            write(data[:100])
            write(data[100:])
    assert b"".join(sealer.chunks(first, context)) == data
    assert sealer.read_array(first, context).tobytes() == data
    header, body = _header_and_chunks(first)
    other_header, other_body = _header_and_chunks(second)
    altered = {
        "cut at a chunk boundary": header + b"".join(body[:3]),
        "cut inside a chunk": header + b"".join(body)[:-5],
        "cut to the header": header,
        "two chunks swapped": header + body[1] + body[0] + b"".join(body[2:]),
        "a chunk dropped": header + b"".join(body[1:]),
        "a chunk repeated": header + body[0] + b"".join(body),
        "a chunk added after the last": header + b"".join(body) + body[2],
        "a chunk from another file": header + other_body[0] + b"".join(body[1:]),
        "another file's header": other_header + b"".join(body),
    }
    for name, content in altered.items():
        first.write_bytes(content)
        with pytest.raises(KeyRequiredError, match="does not open"):
            b"".join(sealer.chunks(first, context))
            pytest.fail(f"{name}: opened chunk by chunk")
        with pytest.raises(KeyRequiredError, match="does not open"):
            sealer.read_array(first, context)
            pytest.fail(f"{name}: opened into an array")
    with pytest.raises(KeyRequiredError):
        b"".join(sealer.chunks(second, b"the index of gallery 2"))
    with pytest.raises(KeyRequiredError):
        b"".join(Sealer(new_key()).chunks(second, context))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_sealed_file_opens_into_one_array_on_any_number_of_threads(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    monkeypatch.setattr(protect, "OPENING_THREADS", threads)
    sealer, context, path = Sealer(key), b"the index of gallery 1", tmp_path / "sealed"
    data = np.random.default_rng(63).bytes(3 * protect.CHUNK_BYTES + 12345)  # four chunks, the last one short
    with sealer.writing(path, context) as write:
        write(data)
    assert sealer.read_array(path, context).tobytes() == data
    header, body = _header_and_chunks(path)
    flipped = [bytearray(chunk) for chunk in body]
    for altered in (1, 3):  # the second chunk and the last: other threads' where there are several
        flipped[altered][-1] ^= 1
    path.write_bytes(header + b"".join(flipped))
    with pytest.raises(KeyRequiredError, match=r"\(chunk 1\) does not open"):  # the first, whichever thread met it
        sealer.read_array(path, context)


def _header_and_chunks(path: Path) -> tuple[bytes, list[bytes]]:
    raw = path.read_bytes()
    header, body, size = raw[: protect._HEADER_BYTES], raw[protect._HEADER_BYTES :], protect.CHUNK_BYTES + OVERHEAD
    return header, [body[i : i + size] for i in range(0, len(body), size)]


def test_rekey_on_the_command_line_makes_a_new_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, old, new = tmp_path / "g.db", tmp_path / "old.key", tmp_path / "new.key"
    write_key_file(old)
    assert old.stat().st_mode & 0o777 == 0o600
    with Gallery(path, key=read_key_file(old)) as gallery:
        gallery.add_templates("Kit", random_templates(gallery, 2, seed=7))
    monkeypatch.setenv(KEY_FILE_VARIABLE, str(old))
    assert runner.invoke(app, ["rekey", str(new), "--db", str(path)]).exit_code == 0
    refused = runner.invoke(app, ["people", "list", "--db", str(path)])
    assert refused.exit_code == 5 and "does not open with this key" in refused.output
    monkeypatch.setenv(KEY_FILE_VARIABLE, str(new))
    assert runner.invoke(app, ["people", "list", "--db", str(path)]).exit_code == 0


def test_an_altered_sealed_index_is_rebuilt_not_used(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "g.db"
    with Gallery(path, key=key, index="hnsw") as gallery:
        templates = random_templates(gallery, 50, seed=8)
        gallery.add_templates("Kit", templates)
        gallery.rebuild_index()
        index_file = gallery.index.path  # type: ignore[attr-defined]
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 1
    index_file.write_bytes(bytes(data))
    with Gallery(path, key=key, index="hnsw") as gallery:
        _, found = gallery.search_templates(templates[3].vector[None], 1)
        assert "does not open with this key" in (gallery.index.rebuild_reason or "")  # type: ignore[attr-defined]
    assert found[0, 0] == 4


def test_the_evaluation_cache_follows_the_same_rule(tmp_path: Path, key: bytes) -> None:
    from faceprint.evaluation.cache import EmbeddingCache

    vector = np.random.default_rng(9).normal(size=64).astype(np.float32).tobytes()
    row = ("ab" * 32, "options", "hog", vector, "{}", None)
    plain = EmbeddingCache(tmp_path / "cache.db")
    plain.put([row])
    plain.close()
    sealed = EmbeddingCache(tmp_path / "cache.db", key=key)
    assert sealed.get([row[0]], "options") == {}  # the rows in the clear were dropped, to be computed anew
    sealed.put([row])
    assert sealed.get([row[0]], "options")[row[0]][1] == vector
    sealed.close()
    assert vector not in (tmp_path / "cache.db").read_bytes()
    with pytest.raises(KeyRequiredError, match="--no-cache"):
        EmbeddingCache(tmp_path / "cache.db")
    with pytest.raises(KeyRequiredError, match="does not open with this key"):
        EmbeddingCache(tmp_path / "cache.db", key=new_key())


def test_rekey_encrypts_a_plain_gallery_and_leaves_no_vector_in_the_clear(tmp_path: Path, key: bytes) -> None:
    folder = tmp_path / "gallery"
    with Gallery(folder / "g.db", index="hnsw") as gallery:
        templates = random_templates(gallery, 60, seed=10)
        gallery.add_templates("Kit", templates)
        gallery.rebuild_index()  # a saved graph in the clear
        gallery.rekey(key)
        _, found = gallery.search_templates(templates[5].vector[None], 1)
    assert found[0, 0] == 6
    files = [p for p in folder.iterdir() if p.is_file()]
    assert any(p.name.endswith(".hnsw") for p in files)  # saved again, sealed
    for path in files:
        data = path.read_bytes()
        assert not any(t.vector.astype("<f4").tobytes() in data for t in templates), path.name
    with pytest.raises(KeyRequiredError):
        Gallery(folder / "g.db")


def test_a_float32_sealed_graph_saved_before_the_int8_default_is_converted_not_rebuilt(
    tmp_path: Path, key: bytes
) -> None:
    path = tmp_path / "g.db"
    with Gallery(path, key=key, index="hnsw", index_storage="f32") as gallery:  # as encrypted galleries saved it
        templates = random_templates(gallery, 300, seed=65)
        gallery.add_templates("Kit", templates[:299])
        gallery.rebuild_index()
        gallery.remove_template(3)  # a tombstone, and a change the saved file does not hold
        gallery.add_templates("Lou", templates[299:])
    with Gallery(path, key=key, index="hnsw") as gallery:
        scores, found = gallery.search_templates(np.stack([t.vector for t in templates]), 1)
        stats = gallery.index_stats()
    assert stats["storage"] == synced.SEALED_STORAGE
    assert str(stats["rebuilt"]).endswith(f"converted from {path}.hnsw")
    expected = [i + 1 for i in range(300) if i != 2]
    assert sorted(set(found[:, 0].tolist())) == expected and 3 not in found
    np.testing.assert_allclose(scores[[i for i in range(300) if i != 2], 0], 1, atol=1e-5)  # exact scores
    with Gallery(path, key=key, index="hnsw") as gallery:
        gallery.search_templates(templates[0].vector[None], 1)
        assert gallery.index_stats()["rebuilt"] is None  # the converted graph was saved


def sealed_graph(tmp_path: Path, key: bytes, count: int, dead: int = 0) -> tuple[np.ndarray, Path]:
    """``count`` random unit templates (ids 1..count, the first ``dead`` removed) in an int8 graph sealed in 4 KiB
    chunks, so that its links and its vectors lie in different chunks."""
    from faceprint.index.hnsw import HNSWIndex

    vectors = np.random.default_rng(count).normal(size=(count, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    graph = HNSWIndex.build([(np.arange(1, count + 1), vectors)], 64, "i8")
    graph.remove(np.arange(1, dead + 1))
    path = tmp_path / "sealed.hnsw"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(protect, "CHUNK_BYTES", 4096)
        graph.save(path, sealer=Sealer(key), context=b"g")
    return vectors, path


def test_a_sealed_graph_answers_by_scanning_its_vectors_until_its_links_are_decrypted(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from faceprint.index import hnsw

    vectors, path = sealed_graph(tmp_path, key, 400, dead=10)
    links_read = threading.Event()
    checked = hnsw._checked
    monkeypatch.setattr(hnsw, "_checked", lambda index, at: links_read.wait(10) and checked(index, at))
    index = hnsw.HNSWIndex.load(path, view=True, sealer=Sealer(key), context=b"g")
    queries = vectors[::20] + np.random.default_rng(1).normal(size=(20, 64)).astype(np.float32) / 20
    exact = np.argsort(-(queries @ vectors[10:].T), axis=1)[:, :5] + 11  # the live templates' ids, best first
    assert len(index) == 390 and index.storage == "i8" and index.dimension == 64
    scanned = index.search(queries, 5)[1]  # the graph is not there yet: every live vector compared
    assert not links_read.is_set() and index.opening_failure() is None
    assert (scanned[:, 0] == exact[:, 0]).all() and not np.isin(scanned, np.arange(1, 11)).any()
    links_read.set()
    index.finish_opening()
    searched = index.search(queries, 5)[1]
    assert (searched[:, 0] == exact[:, 0]).all() and index.memory_bytes() > 400 * 64


def test_a_sealed_graph_whose_links_do_not_open_answers_by_scan_and_is_rebuilt(tmp_path: Path, key: bytes) -> None:
    from faceprint.index.hnsw import HNSWIndex

    path = tmp_path / "g.db"
    with pytest.MonkeyPatch.context() as patch, Gallery(path, key=key, index="hnsw") as gallery:
        patch.setattr(protect, "CHUNK_BYTES", 4096)
        templates = random_templates(gallery, 300, seed=9)
        gallery.add_templates("Kit", templates)
        gallery.rebuild_index()
        index_file = gallery.index.path  # type: ignore[attr-defined]
    data = bytearray(index_file.read_bytes())
    data[protect._HEADER_BYTES + 100] ^= 1  # the first chunk: faiss's header and the first links
    index_file.write_bytes(bytes(data))
    with Gallery(path, key=key, index="hnsw") as gallery:
        _, found = gallery.search_templates(templates[3].vector[None], 1)
        assert gallery.index.rebuild_reason is None  # type: ignore[attr-defined]  # its vectors opened
        context = gallery.index._context()  # type: ignore[attr-defined]
        reopened = HNSWIndex.load(index_file, view=True, sealer=gallery.store.sealer, context=context)
        with pytest.raises(KeyRequiredError, match=r"\(chunk 0\) does not open"):
            reopened.finish_opening()
        stats = gallery.index_stats()  # the graph whole: its links do not open, so it is rebuilt
        _, again = gallery.search_templates(templates[5].vector[None], 1)
    assert found[0, 0] == 4 and again[0, 0] == 6
    assert "(chunk 0) does not open with this key" in str(stats["rebuilt"])


def test_a_sealed_graph_saved_without_the_vectors_trailer_still_opens(tmp_path: Path, key: bytes) -> None:
    from faceprint.index import hnsw

    vectors, path = sealed_graph(tmp_path, key, 200)
    graph = hnsw.HNSWIndex.load(path, view=True, sealer=Sealer(key), context=b"g")
    graph.finish_opening()
    with Sealer(key).writing(path, b"g") as write:  # as saved before the trailer
        faiss.write_index(graph._index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]
    reopened = hnsw.HNSWIndex.load(path, view=True, sealer=Sealer(key), context=b"g")
    assert reopened.opening_failure(wait=True) is None
    np.testing.assert_array_equal(reopened.search(vectors[:30], 1)[1][:, 0], np.arange(1, 31))
