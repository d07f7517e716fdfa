"""Issue 17, tried and not kept: a sealed graph opened without faiss's read of its links.

A plain graph's memory-mapped open is nearly all faiss's own read, and most of that read is one loop that checks
every stored link (``BENCHMARKS.md``, "where the sealed index's open goes"). A sealed file's chunks are authenticated,
so that check guards nothing a sealed open does not already guarantee. This script measures what skipping it would
buy: the sealed int8 graph is written in *sections*, each starting on a chunk boundary: a small one (faiss's
serialisation of the graph with every array emptied, then node levels, link offsets and template ids), the links,
and the int8 vectors. Opening it reads the small section through faiss, has faiss allocate its own link and vector
arrays (``resize``: faiss's SWIG cannot make a view of memory it does not own, as the ``shared_ptr`` owner of a
``MaybeOwnedVector`` view cannot be made from Python), decrypts the chunks straight into them on every core, and sets
the counts. Search results are checked to equal the plain graph's.

Each open + one search runs in a fresh process, interleaved: the plain float32 and int8 graphs memory-mapped, the
library's sealed int8 open, and the sectioned one (with its two steps timed).

    python bench/sealed_sections.py --size 100000 --rounds 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

import common
from at_rest import unit_rows
from faceprint import protect
from faceprint.index import hnsw
from faceprint.index.hnsw import HNSWIndex
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.protect import CHUNK_BYTES, NONCE_BYTES, OVERHEAD, Sealer, new_key

HERE = Path(__file__).resolve().parent
CONTEXT = b"sections"


def _parts(index: faiss.IndexIDMap) -> tuple[faiss.IndexHNSW, faiss.IndexFlatCodes]:
    graph = cast(faiss.IndexHNSW, faiss.downcast_index(index.index))
    return graph, cast(faiss.IndexFlatCodes, faiss.downcast_index(graph.storage))


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % CHUNK_BYTES)


def save_sections(index: faiss.IndexIDMap, path: Path, sealer: Sealer) -> None:
    graph, storage = _parts(index)
    links = faiss.rev_swig_ptr(graph.hnsw.neighbors.data(), graph.hnsw.neighbors.size()).tobytes()
    codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size()).tobytes()
    small = {
        "levels": faiss.vector_to_array(graph.hnsw.levels).tobytes(),
        "offsets": faiss.vector_to_array(graph.hnsw.offsets).tobytes(),
        "ids": faiss.vector_to_array(index.id_map).tobytes(),
    }
    skeleton = faiss.clone_index(index)
    empty_graph, empty_storage = _parts(skeleton)
    for vector in (empty_graph.hnsw.levels, empty_graph.hnsw.offsets, empty_graph.hnsw.neighbors, skeleton.id_map):
        vector.clear()
    empty_graph.hnsw.offsets.push_back(0)
    empty_storage.codes.clear()
    empty_graph.hnsw.entry_point, empty_graph.hnsw.max_level = -1, -1
    empty_storage.ntotal = empty_graph.ntotal = skeleton.ntotal = 0
    small["skeleton"] = faiss.serialize_index(skeleton).tobytes()
    meta = {
        "sizes": {name: len(data) for name, data in small.items()},
        "links": len(links),
        "codes": len(codes),
        "count": int(index.ntotal),
        "entry_point": int(graph.hnsw.entry_point),
        "max_level": int(graph.hnsw.max_level),
    }
    header = json.dumps(meta).encode()
    with sealer.writing(path, CONTEXT) as write:
        write(_padded(len(header).to_bytes(8, "little") + header + b"".join(small.values())))
        write(_padded(links))
        write(codes)


def open_sections(path: Path, sealer: Sealer, timings: list[float]) -> HNSWIndex:
    """The graph ``save_sections`` wrote; ``timings`` gets the ms spent having faiss allocate its arrays and then
    decrypting into them."""
    chunks = list(protect._sealed_chunks(path, CONTEXT))
    first = sealer.open(*chunks[0])
    header_bytes = int.from_bytes(first[:8], "little")
    meta = json.loads(first[8 : 8 + header_bytes])
    small_chunks = -(-(8 + header_bytes + sum(meta["sizes"].values())) // CHUNK_BYTES)
    small = memoryview(first + b"".join(sealer.open(*chunk) for chunk in chunks[1:small_chunks]))[8 + header_bytes :]
    arrays: dict[str, memoryview] = {}
    for name, size in meta["sizes"].items():
        arrays[name], small = small[:size], small[size:]
    index = cast(faiss.IndexIDMap, faiss.deserialize_index(np.frombuffer(arrays["skeleton"], np.uint8)))
    graph, storage = _parts(index)
    started = time.perf_counter()
    graph.hnsw.neighbors.resize(meta["links"] // 4)
    storage.codes.resize(meta["codes"])
    allocated = time.perf_counter()
    targets = _chunk_targets(graph, storage, meta["links"], meta["codes"])
    _decrypt_into(sealer, chunks[small_chunks:], targets)
    timings += [1e3 * (allocated - started), 1e3 * (time.perf_counter() - allocated)]
    faiss.copy_array_to_vector(np.frombuffer(arrays["levels"], np.int32), graph.hnsw.levels)
    faiss.copy_array_to_vector(np.frombuffer(arrays["offsets"], np.uint64), graph.hnsw.offsets)
    faiss.copy_array_to_vector(np.frombuffer(arrays["ids"], np.int64), index.id_map)
    graph.hnsw.entry_point, graph.hnsw.max_level = meta["entry_point"], meta["max_level"]
    storage.ntotal = graph.ntotal = index.ntotal = meta["count"]
    return HNSWIndex(index)


def _chunk_targets(graph: Any, storage: Any, links: int, codes: int) -> list[memoryview]:
    """Where each chunk of the link and vector sections goes: a slice of faiss's own arrays."""
    link_bytes = np.asarray(faiss.rev_swig_ptr(graph.hnsw.neighbors.data(), links // 4)).view(np.uint8)
    code_bytes = np.asarray(faiss.rev_swig_ptr(storage.codes.data(), codes))
    return [
        array.data[start : start + CHUNK_BYTES]
        for array in (link_bytes, code_bytes)
        for start in range(0, len(array), CHUNK_BYTES)
    ]


def _decrypt_into(sealer: Sealer, chunks: list[tuple[memoryview, bytes, str]], targets: list[memoryview]) -> None:
    aead = sealer._aead

    def open_run(positions: range) -> None:
        for position in positions:
            (sealed, context, _), into = chunks[position], targets[position]
            nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
            if len(into) == len(sealed) - OVERHEAD:
                aead.decrypt_into(nonce, ciphertext, context, into)
            else:  # a section's last chunk, padded to a whole chunk
                into[:] = aead.decrypt(nonce, ciphertext, context)[: len(into)]

    protect._on_threads(open_run, len(targets), protect.OPENING_THREADS)


def _open(kind: str, folder: Path, sealer: Sealer, timings: list[float]) -> HNSWIndex:
    """The graph opened the ``kind`` way from the files ``prepare`` wrote in ``folder``."""
    if kind == "sectioned":
        return open_sections(folder / "sectioned_i8.hnsw", sealer, timings)
    if kind == "sealed_i8":
        return HNSWIndex.load(folder / "sealed_i8.hnsw", view=True, sealer=sealer, context=CONTEXT)
    return HNSWIndex.load(folder / f"{kind.removeprefix('mmap_')}.hnsw", view=True)


KINDS = ("mmap_plain", "mmap_plain_i8", "sealed_i8", "sectioned")


def open_once(kind: str, folder: Path) -> list[float]:
    """Milliseconds to open with ``kind`` and answer one search (then the sectioned open's two steps)."""
    query = unit_rows(1, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(1))
    sealer, timings = Sealer((folder / "key").read_bytes()), []  # outside the timing, as a key is read once
    started = time.perf_counter()
    _open(kind, folder, sealer, timings).search(query, 1)
    return [1e3 * (time.perf_counter() - started), *timings]


def prepare(size: int, folder: Path) -> None:
    """The graphs (quick efConstruction 16: opening does not depend on it), saved each way; the sectioned one is
    checked to answer as the plain one does."""
    vectors = unit_rows(size, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(size))
    hnsw.EXPANSION_ADD = 16
    key = new_key()
    (folder / "key").write_bytes(key)
    HNSWIndex.build([(np.arange(size), vectors)], vectors.shape[1], "f32").save(folder / "plain.hnsw")
    graph = HNSWIndex.build([(np.arange(size), vectors)], vectors.shape[1], "i8")
    graph.save(folder / "plain_i8.hnsw")
    graph.save(folder / "sealed_i8.hnsw", sealer=Sealer(key), context=CONTEXT)
    save_sections(graph._index, folder / "sectioned_i8.hnsw", Sealer(key))
    queries = unit_rows(200, vectors.shape[1], np.random.default_rng(2))
    sectioned = open_sections(folder / "sectioned_i8.hnsw", Sealer(key), [])
    for expected, got in zip(graph.search(queries, 10), sectioned.search(queries, 10), strict=True):
        assert np.array_equal(expected, got), "the sectioned graph answers differently"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=HERE / ".cache" if (HERE / ".cache").is_dir() else None) as name:
        folder = Path(name)
        prepare(args.size, folder)
        os.sync()  # the files' pages written back, as an index saved earlier would be
        calls = {kind: f"open_once({kind!r}, pathlib.Path({name!r}))" for kind in KINDS}
        runs = common.fresh_process_rounds("sealed_sections", calls, args.rounds)
    report: dict[str, Any] = {"templates": args.size, "rounds": args.rounds}
    for kind, rounds in runs.items():
        report[f"{kind}_open_and_1_search_ms"] = round(statistics.median(r[0] for r in rounds), 1)
    report["sectioned_allocate_ms"] = round(statistics.median(r[1] for r in runs["sectioned"]), 1)
    report["sectioned_decrypt_ms"] = round(statistics.median(r[2] for r in runs["sectioned"]), 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
