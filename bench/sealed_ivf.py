"""Issue 17, a feasibility check: would a sealed inverted-file index (IVF, int8 codes) open within 2x of the plain
memory-mapped graph at 100k templates?

A sealed HNSW graph must decrypt its links (25.6 MB at 100k) as well as its vectors, into memory the process did
not have; an IVF index has no links: its file is the coarse centroids, the int8 codes and the ids. This script
writes one of each, seals the IVF file with the library's ``Sealer``, and times in fresh processes (interleaved):
the plain float32 graph memory-mapped (the library's plain open), the library's sealed int8 graph, and the sealed
IVF two ways: decrypted whole by ``Sealer.read_array`` and then read by faiss, which copies it into its lists; and
sealed list by list (``save_lists``), each list's messages decrypted straight into the list faiss allocated for it,
on both cores and on one (many small messages: two threads contend for the GIL between them). Each open is followed
by one search; the list-wise file is checked to answer as the index it was written from. Then, on the real
templates ``bench/index_scale.py`` uses (faces-dev's fused templates plus distractors fitted to them), top-1
agreement with exact search and one-search latency for several ``nprobe``.

    python bench/sealed_ivf.py --size 100000 --rounds 11

Tried, not kept (BENCHMARKS.md, "a sealed inverted-file index, tried"): it opens no faster than the sealed graph.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import common
from at_rest import unit_rows
from faceprint import protect
from faceprint.index import hnsw
from faceprint.index.hnsw import HNSWIndex
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.protect import NONCE_BYTES, OVERHEAD, Sealer, new_key

HERE = Path(__file__).resolve().parent
CONTEXT = b"ivf"
KINDS = ("mmap_plain", "sealed_i8", "sealed_ivf", "sealed_ivf_lists", "sealed_ivf_lists_one_thread")


def build_ivf(vectors: np.ndarray, lists: int) -> faiss.IndexIVFScalarQuantizer:
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, vectors.shape[1], lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.train(vectors)
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    return index


def save_lists(index: faiss.IndexIVFScalarQuantizer, path: Path, sealer: Sealer) -> None:
    """The index as a skeleton (centroids, empty lists) and its list sizes, sealed as one message, then each list's
    codes and ids sealed as messages of their own, so that opening decrypts each straight into the list faiss
    allocated for it (bench only: the library's format seals fixed-size chunks)."""
    skeleton = faiss.clone_index(index)
    skeleton.reset()
    lists = faiss.extract_index_ivf(index).invlists
    sizes = np.array([lists.list_size(number) for number in range(index.nlist)], np.int64)
    head = sizes.tobytes() + faiss.serialize_index(skeleton).tobytes()
    with path.open("wb") as file:
        file.write(len(head).to_bytes(8, "little") + index.nlist.to_bytes(8, "little"))
        file.write(sealer.seal(head, CONTEXT))
        for number, size in enumerate(sizes):
            codes = faiss.rev_swig_ptr(lists.get_codes(number), int(size) * lists.code_size).tobytes()
            ids = faiss.rev_swig_ptr(lists.get_ids(number), int(size)).tobytes()
            file.write(sealer.seal(codes, _list_context(b"c", number)))
            file.write(sealer.seal(ids, _list_context(b"i", number)))


def _list_context(part: bytes, number: int) -> bytes:
    return CONTEXT + part + number.to_bytes(4, "little")


def open_lists(path: Path, sealer: Sealer, threads: int = protect.OPENING_THREADS) -> faiss.IndexIVFScalarQuantizer:
    """The index ``save_lists`` wrote: faiss allocates each list (zero-filled) and its messages are decrypted into it,
    the lists shared between ``threads`` threads."""
    data = memoryview(np.memmap(path, np.uint8, mode="r"))
    head_bytes, nlist = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")
    head = sealer.open(data[16 : 16 + head_bytes + OVERHEAD], CONTEXT, "ivf head")
    sizes = np.frombuffer(head[: 8 * nlist], np.int64)
    index = faiss.deserialize_index(np.frombuffer(head[8 * nlist :], np.uint8))
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    code_size = lists.code_size
    starts = np.cumsum(np.concatenate([[16 + head_bytes + OVERHEAD], sizes * (code_size + 8) + 2 * OVERHEAD]))
    aead = sealer._aead

    def open_run(numbers: range) -> None:
        for number in numbers:
            size, at = int(sizes[number]), int(starts[number])
            lists.resize(number, size)
            if not size:
                continue
            codes = faiss.rev_swig_ptr(lists.get_codes(number), size * code_size)
            ids = faiss.rev_swig_ptr(lists.get_ids(number), size).view(np.uint8)
            middle = at + size * code_size + OVERHEAD
            for into, sealed, part in (
                (codes, data[at:middle], b"c"),
                (ids, data[middle : middle + size * 8 + OVERHEAD], b"i"),
            ):
                aead.decrypt_into(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _list_context(part, number), into)

    protect._on_threads(open_run, nlist, threads)
    index.ntotal = int(sizes.sum())
    return index


def open_once(kind: str, folder: Path, nprobe: int) -> list[float]:
    """Milliseconds to open with ``kind`` and answer one search (a list of one, as ``common.fresh_process_rounds``
    reads it)."""
    query = unit_rows(1, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(1))
    sealer = Sealer((folder / "key").read_bytes())  # outside the timing, as a key is read once
    started = time.perf_counter()
    if kind.startswith("sealed_ivf_lists"):
        index = open_lists(folder / "lists.ivf", sealer, 1 if kind.endswith("one_thread") else protect.OPENING_THREADS)
        index.nprobe = nprobe
        index.search(query, 1)
    elif kind == "sealed_ivf":
        index = faiss.deserialize_index(sealer.read_array(folder / "sealed.ivf", CONTEXT))
        index.nprobe = nprobe
        index.search(query, 1)
    elif kind == "sealed_i8":
        HNSWIndex.load(folder / "sealed_i8.hnsw", view=True, sealer=sealer, context=CONTEXT).search(query, 1)
    else:
        HNSWIndex.load(folder / "plain.hnsw", view=True).search(query, 1)
    return [1e3 * (time.perf_counter() - started)]


def prepare(size: int, lists: int, folder: Path) -> None:
    vectors = unit_rows(size, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(size))
    hnsw.EXPANSION_ADD = 16  # opening does not depend on the build's depth
    key = new_key()
    (folder / "key").write_bytes(key)
    HNSWIndex.build([(np.arange(size), vectors)], vectors.shape[1], "f32").save(folder / "plain.hnsw")
    graph = HNSWIndex.build([(np.arange(size), vectors)], vectors.shape[1], "i8")
    graph.save(folder / "sealed_i8.hnsw", sealer=Sealer(key), context=CONTEXT)
    ivf = build_ivf(vectors, lists)
    with Sealer(key).writing(folder / "sealed.ivf", CONTEXT) as write:
        write(faiss.serialize_index(ivf).tobytes())
    save_lists(ivf, folder / "lists.ivf", Sealer(key))
    queries = unit_rows(200, vectors.shape[1], np.random.default_rng(2))
    ivf.nprobe = 64
    reopened = open_lists(folder / "lists.ivf", Sealer(key))
    reopened.nprobe = 64
    for expected, got in zip(ivf.search(queries, 10), reopened.search(queries, 10), strict=True):
        assert np.array_equal(expected, got), "the list-wise sealed IVF answers differently"


def open_times(size: int, lists: int, nprobe: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=HERE / ".cache" if (HERE / ".cache").is_dir() else None) as name:
        folder = Path(name)
        prepare(size, lists, folder)
        os.sync()
        calls = {kind: f"open_once({kind!r}, pathlib.Path({name!r}), {nprobe})" for kind in KINDS}
        runs = common.fresh_process_rounds("sealed_ivf", calls, rounds)
        sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    report: dict[str, Any] = {"templates": size, "lists": lists, "rounds": rounds, "file_bytes": sizes}
    for kind, values in runs.items():
        report[f"{kind}_open_and_1_search_ms"] = round(statistics.median(value for (value,) in values), 1)
    for kind in KINDS[1:]:
        report[f"{kind}_against_mmap_plain"] = round(
            report[f"{kind}_open_and_1_search_ms"] / report["mmap_plain_open_and_1_search_ms"], 2
        )
    return report


def recall(size: int, lists: int, nprobes: list[int]) -> dict[str, Any]:
    """Top-1 agreement with exact search on index_scale's real + fitted templates, and one-search latency."""
    import index_scale

    data = index_scale.make_data(size)
    vectors, queries = data.vectors, data.queries
    exact = index_scale.exact_top1(vectors, queries) - 1
    started = time.perf_counter()
    index = build_ivf(vectors, lists)
    report: dict[str, Any] = {
        "templates": size,
        "queries": len(queries),
        "build_s": round(time.perf_counter() - started, 1),
    }
    faiss.omp_set_num_threads(1)
    for nprobe in nprobes:
        index.nprobe = nprobe
        found = np.array([index.search(q[None], 1)[1][0, 0] for q in queries])
        times = []
        for q in queries[:300]:
            started = time.perf_counter()
            index.search(q[None], 100)
            times.append(1e3 * (time.perf_counter() - started))
        report[f"nprobe_{nprobe}"] = {
            "top1_as_exact": round(float((found == exact).mean()), 4),
            "k100_search_ms_p50": round(statistics.median(times), 2),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--lists", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, nargs="*", default=[16, 32, 64, 128])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no-recall", action="store_true")
    args = parser.parse_args()
    print(json.dumps(open_times(args.size, args.lists, args.nprobe[0], args.rounds), indent=1), flush=True)
    if not args.no_recall:
        print(json.dumps(recall(args.size, args.lists, args.nprobe), indent=1))


if __name__ == "__main__":
    main()
