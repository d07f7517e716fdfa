"""What encryption at rest costs (issue 17): index open time and identification throughput, plain vs encrypted.

Random unit templates of the default model's dimension (5 per person); medians of ``--rounds`` interleaved rounds,
wall and CPU seconds (CPU: the process's own, user + system).
``open_times``: a saved HNSW graph (float32 vectors, or int8: ``_i8``) opened memory-mapped, read whole, or sealed:
decrypted into an array that the graph is a view of (what an encrypted gallery does: vectors and id map first,
searched by scan until a thread has decrypted the links), into an anonymous
memory file that faiss memory-maps (the alternative), or into faiss as it reads (the fallback for a faiss without
zero-copy reading); with ``--cold``, the memory-mapped and sealed opens again after the file's pages were dropped
from the page cache (``posix_fadvise(DONTNEED)``: the first open after a reboot, or once memory pressure evicted it);
with ``--parts``, where the sealed int8 open's time goes (``open_parts``).
``gallery_open_times``: a ``Gallery`` opened and searched once in a fresh process, plain and encrypted (its saved
graph included; by default an encrypted gallery's graph is int8, ``encrypted_f32`` forces float32), then its
searches per second, top 1 and recall@10 against exact search (scores checked to be exact).
``throughput``: ``rank_people`` on a plain and an encrypted gallery of the same templates.

    python bench/at_rest.py --open-sizes 100000 1000000 --throughput-sizes 20000
    python bench/at_rest.py --open-sizes 100000 --gallery-open-sizes --throughput-sizes --parts --rounds 7
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import mmap
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import faiss
import numpy as np

from faceprint import protect
from faceprint.gallery import Gallery
from faceprint.gallery.records import NewTemplate
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.index import hnsw
from faceprint.index.hnsw import HNSWIndex
from faceprint.index.synced import ANN_THRESHOLD
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.protect import Sealer, new_key, read_key_file

PER_PERSON = 5
HERE = Path(__file__).resolve().parent


def write(path: Path, vectors: np.ndarray, key: bytes | None) -> None:
    """A gallery of ``vectors``, ``PER_PERSON`` templates per person."""
    people = (
        (f"person {first // PER_PERSON}", vectors[first : first + PER_PERSON])
        for first in range(0, len(vectors), PER_PERSON)
    )
    write_people(path, people, key)


def write_people(path: Path, people: Iterable[tuple[str, np.ndarray]], key: bytes | None) -> None:
    model = DEFAULT_OPTIONS.model.model_id
    store = SQLiteStore(path, key=key)
    batches = iter(people)
    while batch := list(itertools.islice(batches, 10_000)):
        with store.transaction() as db:
            for name, rows in batch:
                person = store.ensure_person(db, name, None, None)
                store.add_templates(db, person, [NewTemplate(v, model) for v in rows])
    store.close()


def unit_rows(count: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.normal(size=(count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def memory_file_view(path: Path, sealer: Sealer, context: bytes) -> HNSWIndex:
    """The alternative not taken: the sealed file decrypted into an anonymous in-memory file (``memfd_create``,
    Linux) that faiss memory-maps by its ``/proc/self/fd`` name. Filling the file's shared-memory pages costs more
    than filling an array (no huge pages for them here), so the library decrypts into an array instead."""
    memory_file = os.memfd_create("faceprint-index", os.MFD_CLOEXEC)
    try:
        for chunk in sealer.chunks(path, context):
            os.write(memory_file, chunk)
        return HNSWIndex(faiss.read_index(f"/proc/self/fd/{memory_file}", faiss.IO_FLAG_MMAP_IFC), read_only=True)
    finally:
        os.close(memory_file)


#: How ``open_times`` opens a saved graph, by name (``folder``: where the files are; the sealed one's key is in
#: ``folder/key``).
LOADERS: dict[str, Callable[[Path, Sealer], HNSWIndex]] = {
    "mmap": lambda folder, sealer: HNSWIndex.load(folder / "plain.hnsw", view=True),
    "read": lambda folder, sealer: HNSWIndex.load(folder / "plain.hnsw", view=False),
    "sealed": lambda folder, sealer: HNSWIndex.load(folder / "sealed.hnsw", view=True, sealer=sealer, context=b"b"),
    "mmap_i8": lambda folder, sealer: HNSWIndex.load(folder / "plain_i8.hnsw", view=True),
    "sealed_i8": lambda folder, sealer: HNSWIndex.load(
        folder / "sealed_i8.hnsw", view=True, sealer=sealer, context=b"b"
    ),
    "sealed_memfd": lambda folder, sealer: memory_file_view(folder / "sealed.hnsw", sealer, b"b"),
    "sealed_streamed": lambda folder, sealer: HNSWIndex.load(
        folder / "sealed.hnsw", view=False, sealer=sealer, context=b"b"
    ),
}
#: The loaders ``--cold`` also times from a dropped page cache, and the file each reads.
COLD_FILES = {"mmap": "plain.hnsw", "sealed": "sealed.hnsw", "mmap_i8": "plain_i8.hnsw", "sealed_i8": "sealed_i8.hnsw"}


def drop_cached(path: Path) -> None:
    """Evict ``path``'s pages from the page cache (clean pages of an unmapped file: Linux drops them)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def open_once(loader: str, folder: Path, cold: bool = False) -> tuple[float, float, float, float]:
    """Seconds (wall, CPU) to open the graph with ``loader`` and answer one search, then 100 more (run in a fresh
    process); ``cold``: the file's pages dropped from the page cache first."""
    queries = unit_rows(101, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(1))
    sealer = Sealer((folder / "key").read_bytes())
    if cold:
        drop_cached(folder / COLD_FILES[loader])
    started, cpu = time.perf_counter(), cpu_seconds()
    index = LOADERS[loader](folder, sealer)
    index.search(queries[:1], 1)
    first, first_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    for query in queries[1:]:
        index.search(query[None], 1)
    return first, first_cpu, time.perf_counter() - started, cpu_seconds() - cpu


#: ``open_parts``'s figures, in its order.
PARTS = (
    "fill_4k_pages",
    "fill_2m_pages",
    "decrypt_one_thread",
    "read_array",
    "faiss_read_decrypted",
    "faiss_read_mmap",
    "search",
    "library_open_vectors",
    "library_open_links",
)


def open_parts(folder: Path) -> list[float]:
    """Milliseconds of each part of opening the sealed int8 graph (in a fresh process): as many fresh pages as its
    plaintext filled (4 KiB pages, then 2 MiB ones, which the library does not use), its chunks decrypted on one
    thread into memory already filled, the library's whole decryption (``Sealer.read_array``: every core fills and
    decrypts its part), faiss reading the decrypted bytes (zero copy), faiss reading the plain int8 file
    memory-mapped (all a plain open does before its search), one search; then the library's own open: until its
    vectors and id map can be searched (``HNSWIndex.load`` returns), and until its links are in too, counted from
    the same start."""
    path, sealer, timings = folder / "sealed_i8.hnsw", Sealer((folder / "key").read_bytes()), []
    chunks = list(protect._sealed_chunks(path, b"b"))
    ends = np.cumsum([len(sealed) - protect.OVERHEAD for sealed, _, _ in chunks]).tolist()

    def timed(work: Callable[[], object]) -> object:
        started = time.perf_counter()
        done = work()
        timings.append(1e3 * (time.perf_counter() - started))
        return done

    memory = protect._fresh_memory(ends[-1])
    timed(lambda: protect._fill(memory, 0, ends[-1]))
    huge = mmap.mmap(-1, ends[-1], flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    huge.madvise(mmap.MADV_HUGEPAGE)
    timed(lambda: protect._fill(np.frombuffer(huge, np.uint8), 0, ends[-1]))

    def decrypt_on_one_thread() -> None:
        for (sealed, context, _), start, end in zip(chunks, [0, *ends[:-1]], ends):
            nonce, ciphertext = sealed[: protect.NONCE_BYTES], sealed[protect.NONCE_BYTES :]
            sealer._aead.decrypt_into(nonce, ciphertext, context, memory.data[start:end])

    timed(decrypt_on_one_thread)
    plaintext = cast(np.ndarray, timed(lambda: sealer.read_array(path, b"b")))
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(plaintext), len(plaintext))  # type: ignore[attr-defined]
    graph = cast(faiss.IndexIDMap, timed(lambda: faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)))
    index = HNSWIndex(graph, read_only=True)
    timed(lambda: faiss.read_index(str(folder / "plain_i8.hnsw"), faiss.IO_FLAG_MMAP_IFC))
    query = unit_rows(1, DEFAULT_OPTIONS.model.dimension, np.random.default_rng(1))
    timed(lambda: index.search(query, 1))
    started = time.perf_counter()
    opened = timed(lambda: HNSWIndex.load(path, view=True, sealer=sealer, context=b"b"))
    cast(HNSWIndex, opened).finish_opening()
    timings.append(1e3 * (time.perf_counter() - started))
    return timings


def open_times(size: int, rounds: int, cold: bool, parts: bool, folder: Path) -> dict:
    """Opening a saved graph of ``size`` templates and answering one search, then 100 more, each time in a fresh
    process (timed inside it): memory-mapped, read whole, and sealed (decrypted into an array, or a memory file, or
    into faiss as it reads), float32 and int8; ``cold``: also from a dropped page cache. The graphs are built with
    efConstruction 16 (quick; opening does not depend on it); rebuilding in memory instead is measured by
    ``throughput``'s galleries at their real settings."""
    rng = np.random.default_rng(size)
    dimension = DEFAULT_OPTIONS.model.dimension
    vectors = unit_rows(size, dimension, rng)
    hnsw.EXPANSION_ADD = 16
    key = new_key()
    (folder / "key").write_bytes(key)
    report: dict = {"templates": size}
    for suffix, storage in (("", "f32"), ("_i8", "i8")):
        started = time.perf_counter()
        graph = HNSWIndex.build([(np.arange(size), vectors)], dimension, storage)  # type: ignore[arg-type]
        report[f"quick_build{suffix}_s"] = time.perf_counter() - started
        graph.save(folder / f"plain{suffix}.hnsw")
        graph.save(folder / f"sealed{suffix}.hnsw", sealer=Sealer(key), context=b"b")
        report[f"file{suffix}_bytes"] = (folder / f"plain{suffix}.hnsw").stat().st_size
        del graph
    runs = [(name, False) for name in LOADERS] + [(name, True) for name in COLD_FILES if cold]
    times: dict[str, list[tuple[float, float, float, float]]] = {}
    part_times: list[list[float]] = []
    for _ in range(rounds):  # interleaved: the machine's load changes over a run
        for name, from_disk in runs:
            call = f"open_once({name!r}, __import__('pathlib').Path({str(folder)!r}), {from_disk})"
            code = f"import at_rest; print(*at_rest.{call})"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE)
            times.setdefault(name + ("_cold" if from_disk else ""), []).append(tuple(map(float, done.stdout.split())))
        if parts:
            code = f"import at_rest; print(*at_rest.open_parts(__import__('pathlib').Path({str(folder)!r})))"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE)
            part_times.append([float(part) for part in done.stdout.split()])
    for name, milliseconds in zip(PARTS, zip(*part_times)):
        report[f"sealed_i8_part_{name}_ms"] = statistics.median(milliseconds)
    for name, runs_of in times.items():
        report[f"{name}_open_and_1_search_s"] = statistics.median(t[0] for t in runs_of)
        report[f"{name}_open_and_1_search_cpu_s"] = statistics.median(t[1] for t in runs_of)
        report[f"{name}_open_and_101_searches_s"] = statistics.median(t[2] for t in runs_of)
        report[f"{name}_open_and_101_searches_cpu_s"] = statistics.median(t[3] for t in runs_of)
        report[f"{name}_open_and_1_search_rounds"] = [round(t[0], 3) for t in runs_of]
    return report


#: Run in a fresh process per open (a command, or a service starting, opens a gallery once): memory the process
#: has never had costs page faults that repeated opens in one process would not pay.
_OPEN_ONCE = """
import resource, sys, time
import numpy as np
from faceprint.gallery import Gallery
from faceprint.protect import read_key_file
path, key_file, storage = sys.argv[1], sys.argv[2], sys.argv[4] or None
probe = np.ones((1, int(sys.argv[3])), np.float32) / np.sqrt(int(sys.argv[3]))
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
started, cpu_started = time.perf_counter(), cpu()
with Gallery(path, key=read_key_file(key_file) if key_file else None, index="hnsw", index_storage=storage) as gallery:
    gallery.search_templates(probe, 1)
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
    assert gallery.index_stats()["rebuilt"] is None, "rebuilt, not opened"
print(seconds, cpu_seconds)
"""
#: ``gallery_open_times``'s galleries: (master key or not, index storage: None for the gallery's default).
GALLERIES: dict[str, tuple[bool, str | None]] = {
    "plain": (False, None),
    "encrypted": (True, None),
    "encrypted_f32": (True, "f32"),
}


def gallery_open_times(size: int, rounds: int, folder: Path) -> dict:
    """What a user waits for: a ``Gallery`` of ``size`` templates opened (its saved graph included) and searched
    once, plain and encrypted, each time in a fresh process (timed inside it), interleaved; then each gallery's
    one-at-a-time searches per second (k 10, in this process, warm), how often its top 1 is exact search's and its
    recall@10.
    Graphs built with efConstruction 16 (quick)."""
    from faceprint.protect import write_key_file

    rng = np.random.default_rng(size)
    dimension = DEFAULT_OPTIONS.model.dimension
    vectors = unit_rows(size, dimension, rng)
    probes = vectors[rng.choice(size, 500, replace=False)] + unit_rows(500, dimension, rng) / 4
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact_ids = np.argsort(-(probes @ vectors.T), axis=1)[:, :10] + 1  # template ids count from 1
    key_file = str(write_key_file(folder / "master.key"))
    for name in ("plain", "encrypted"):
        write(folder / f"{name}.db", vectors, read_key_file(key_file) if name == "encrypted" else None)
    report: dict = {"templates": size}
    for name, (encrypted, storage) in GALLERIES.items():
        key = read_key_file(key_file) if encrypted else None
        db = folder / ("encrypted.db" if encrypted else "plain.db")
        with Gallery(db, key=key, index="hnsw", index_storage=storage) as gallery:  # type: ignore[arg-type]
            gallery.rebuild_index()
            report[f"{name}_storage"] = gallery.index_stats()["storage"]
            report.update(search_figures(name, gallery, probes, exact_ids))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in GALLERIES}
    for _ in range(rounds):
        for name, (encrypted, storage) in GALLERIES.items():
            db = folder / ("encrypted.db" if encrypted else "plain.db")
            command = [sys.executable, "-c", _OPEN_ONCE, str(db), key_file if encrypted else "", str(dimension)]
            done = subprocess.run([*command, storage or ""], capture_output=True, text=True, check=True)
            times[name].append(tuple(map(float, done.stdout.split())))  # type: ignore[arg-type]
    for name, pairs in times.items():
        report[f"{name}_gallery_open_and_1_search_s"] = statistics.median(p[0] for p in pairs)
        report[f"{name}_gallery_open_and_1_search_cpu_s"] = statistics.median(p[1] for p in pairs)
        report[f"{name}_gallery_open_and_1_search_rounds"] = [round(p[0], 3) for p in pairs]
    return report


def search_figures(name: str, gallery: Gallery, probes: np.ndarray, exact_ids: np.ndarray) -> dict:
    """One-at-a-time searches (k 10) per second, the share of probes whose top 1 is exact search's, and recall@10
    (the scores are checked to be the exact similarities of the ids returned)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    found = [gallery.search_templates(probe[None], 10) for probe in probes]
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    ids = np.concatenate([f[1] for f in found])
    scores = np.concatenate([f[0] for f in found])
    _, stored = gallery.store.vectors(np.unique(ids), gallery.model_id)
    exact_scores = np.einsum("qd,qkd->qk", probes, stored[np.searchsorted(np.unique(ids), ids)])
    if not np.allclose(scores, exact_scores, atol=1e-5):
        raise SystemExit(f"{name}: search scores are not the exact similarities")
    return {
        f"{name}_searches_per_s": len(probes) / wall,
        f"{name}_search_cpu_ms": 1000 * used / len(probes),
        f"{name}_top1_as_exact": float(np.mean(ids[:, 0] == exact_ids[:, 0])),
        f"{name}_recall_at_10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])),
    }


def throughput(size: int, rounds: int, queries: int, folder: Path) -> dict:
    """``rank_people`` (search, person scores by centroid) per second, plain and encrypted galleries of the same
    templates searched exactly, in interleaved rounds: in fresh ``Gallery`` objects (cold: every centroid
    decrypted), and again (warm); and the in-memory rebuild of the graph (keeping no index file)."""
    rng = np.random.default_rng(size)
    vectors = unit_rows(size, DEFAULT_OPTIONS.model.dimension, rng)
    probes = vectors[rng.choice(size, queries, replace=False)] + 0.05 * unit_rows(queries, vectors.shape[1], rng)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    keys = {"plain": None, "encrypted": new_key()}
    for name, key in keys.items():
        write(folder / f"{name}-{size}.db", vectors, key)
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in keys}
    for _ in range(rounds):
        for name, key in keys.items():
            with Gallery(folder / f"{name}-{size}.db", key=key, index="exact") as gallery:
                gallery.search_templates(probes[:1], 1)
                started = time.perf_counter()
                gallery.rank_people(probes, 5)
                cold = queries / (time.perf_counter() - started)
                started = time.perf_counter()
                gallery.rank_people(probes, 5)
                rates[name].append((cold, queries / (time.perf_counter() - started)))
    report: dict = {"templates": size}
    for name, pairs in rates.items():
        report[f"{name}_cold_qps"] = statistics.median(p[0] for p in pairs)
        report[f"{name}_warm_qps"] = statistics.median(p[1] for p in pairs)
    return report


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def prepare_graph(path: Path, key: bytes | None) -> None:
    """The HNSW graph a gallery of ``ANN_THRESHOLD`` templates or more is searched with (each gallery's default
    storage: int8 when encrypted), built beforehand with efConstruction 64 (quicker than the real 256, which
    ``faceprint identify`` would otherwise spend minutes on in its first round)."""
    with Gallery(path, key=key) as gallery:
        if gallery.template_count() >= ANN_THRESHOLD:
            hnsw.EXPANSION_ADD = 64
            gallery.rebuild_index()


def identify_throughput(photos: int, rounds: int, distractors: int, folder: Path) -> dict:
    """``faceprint identify`` (fresh processes, the default model) over ``photos`` faces-dev probe photos against
    the same gallery plain and encrypted, in interleaved rounds: wall and CPU seconds (the process and its
    workers) per photo. The gallery: faces-dev's identification gallery (609 people, their templates from the
    cached embedding run) and ``distractors`` random templates of the model, ``PER_PERSON`` a person."""
    from common import embed_faceprint, faces_dev, read_images
    from faceprint.protect import KEY_FILE_VARIABLE, write_key_file

    root = faces_dev()
    paths, _ = read_images(root)
    embeddings = embed_faceprint(root, paths, DEFAULT_OPTIONS, label="faces-dev")
    row_of = {path: row for row, path in enumerate(paths)}
    gallery, probe_rows = (read_csv(root / f"identify_{part}.csv") for part in ("gallery", "probes"))
    probes = [root / r["path"] for r in probe_rows][:photos]
    enrolled: dict[str, list[np.ndarray]] = {}
    for row in gallery:
        vector = embeddings.vectors[row_of[row["path"]]]
        if not np.isnan(vector).any():
            enrolled.setdefault(row["identity"].replace("_", " "), []).append(vector)
    rng = np.random.default_rng(distractors)
    noise = unit_rows(distractors, DEFAULT_OPTIONS.model.dimension, rng)
    people = [*((name, np.stack(rows)) for name, rows in enrolled.items())]
    people += [(f"distractor {i}", noise[i : i + PER_PERSON]) for i in range(0, distractors, PER_PERSON)]
    key_file = write_key_file(folder / "master.key")
    environments = {"plain": dict(os.environ), "encrypted": {**os.environ, KEY_FILE_VARIABLE: str(key_file)}}
    for name in environments:
        key = read_key_file(key_file) if name == "encrypted" else None
        write_people(folder / f"{name}.db", people, key)
        prepare_graph(folder / f"{name}.db", key)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in environments}
    answers: dict[str, list[str]] = {}
    for _ in range(rounds):
        for name, environment in environments.items():
            command = [
                sys.executable,
                "-m",
                "faceprint",
                "identify",
                *map(str, probes),
                "--db",
                str(folder / f"{name}.db"),
            ]
            before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            done = subprocess.run(
                [*command, "--workers", "2", "--json"], env=environment, capture_output=True, text=True
            )
            wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            times[name].append((wall / len(probes), cpu / len(probes)))
            answers[name] = [face["name"] for photo in json.loads(done.stdout) for face in photo["faces"]]
    if answers["plain"] != answers["encrypted"]:
        raise SystemExit("plain and encrypted galleries named the faces differently")
    report: dict = {"photos": len(probes), "templates": sum(len(rows) for _, rows in people)}
    for name, pairs in times.items():
        report[f"{name}_wall_ms_per_photo"] = 1000 * statistics.median(p[0] for p in pairs)
        report[f"{name}_cpu_ms_per_photo"] = 1000 * statistics.median(p[1] for p in pairs)
        report[f"{name}_cpu_ms_per_photo_rounds"] = [round(1000 * p[1], 2) for p in pairs]
    report["named_faces"] = sum(n != "unknown" for n in answers["plain"])
    report["search"] = "hnsw" if report["templates"] >= ANN_THRESHOLD else "exact"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--gallery-open-sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--throughput-sizes", type=int, nargs="*", default=[20_000])
    parser.add_argument("--identify-photos", type=int, default=0, help="faceprint identify over this many photos")
    parser.add_argument("--distractors", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="open_times also from a dropped page cache")
    parser.add_argument("--parts", action="store_true", help="open_times also times the sealed int8 open's parts")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    runs = [(open_times, size, (args.rounds, args.cold, args.parts)) for size in args.open_sizes]
    runs += [(gallery_open_times, size, (args.rounds,)) for size in args.gallery_open_sizes]
    runs += [(throughput, size, (args.rounds, args.queries)) for size in args.throughput_sizes]
    if args.identify_photos:
        runs.append((identify_throughput, args.identify_photos, (args.rounds, args.distractors)))
    for measure, size, extra in runs:
        with tempfile.TemporaryDirectory() as folder:
            report = measure(size, *extra, Path(folder))  # type: ignore[operator]
        json.dump({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}, sys.stdout)
        print(flush=True)


if __name__ == "__main__":
    main()
