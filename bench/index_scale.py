"""1:N search at scale: faceprint's gallery index (HNSW) against numpy brute force and faiss IndexFlatIP.

    python bench/index_scale.py --sizes 10000 100000           # the small table (minutes, cached after)
    python bench/index_scale.py --sizes 1000000 --prepare      # write the 1M gallery (~2 min, cached)
    python bench/index_scale.py --sizes 1000000                # build (~10 min once, cached) and measure
    python bench/index_scale.py --sizes 1000000 --storage f16  # the same with a float16 graph
    python bench/index_scale.py --compare-libraries            # usearch vs faiss HNSW at 100k
    python bench/index_scale.py --faiss-hnsw --sizes 1000000 --ef-construction 256 --ef 192 224 256
    python bench/index_scale.py --tombstones 0.1 0.25 --sizes 100000  # recall with removed templates

Data: the 1,783 real faces-dev templates and synthetic distractors fitted to them (see
``bench/distractors.py``). The 483 ``identify_probes.csv`` images are the real queries, the other
1,300 real images are enrolled under their identities, and distractor people (2 templates each)
fill the gallery up to the size; 1,517 more queries are fresh templates of distractor people, so
2,000 queries in all. Recall@1 is the share of queries whose best template is the exact search's.

The gallery is a real faceprint SQLite gallery (bench/.cache/index-scale-*.db) and the HNSW rows
time ``Gallery.search_templates`` (the search step of identify: change-log check, graph search,
re-ranking when quantised) with k = 100 (top 5 people x 20 templates, as identify asks).
Baselines search the same vectors in memory, in the same run. Single queries run one at a time
(one thread: faiss gets ``omp_set_num_threads(1)``, which is faster than 2 for one query);
batches use both cores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import common
import distractors
from faceprint import Gallery, Template
from faceprint.cli.common import open_gallery
from faceprint.index import ExactIndex
from faceprint.index import hnsw as hnsw_params
from faceprint.pipeline import DEFAULT_OPTIONS

K = 100
QUERIES = 2000
PER_PERSON = 2
SEED = 0
MODEL = DEFAULT_OPTIONS.model.model_id
DATA_VERSION = 1


@dataclass(frozen=True)
class Data:
    """Gallery vectors (ids 1..N in insertion order), their people, and the queries."""

    vectors: np.ndarray
    people: np.ndarray
    names: list[str]
    queries: np.ndarray
    real_queries: int


def make_data(size: int) -> Data:
    real = distractors.real_templates()
    generator = distractors.Generator.fit(real)
    with open(common.faces_dev() / "identify_probes.csv", newline="", encoding="utf-8") as f:
        probe_paths = {r["path"] for r in csv.DictReader(f)}
    is_probe = np.array([p in probe_paths for p in real.paths])
    rng = np.random.default_rng(SEED)
    enrolled = real.vectors[~is_probe]
    synthetic_people = (size - len(enrolled)) // PER_PERSON
    synthetic, person = generator.sample(synthetic_people, PER_PERSON + 1, rng)
    third = np.arange(len(synthetic)) % (PER_PERSON + 1) == PER_PERSON
    vectors = np.concatenate([enrolled, synthetic[~third]])
    identity_names = [f"real-{c}" for c in real.identities[~is_probe]]
    people_codes = np.concatenate([real.identities[~is_probe], real.identities.max() + 1 + person[~third]])
    names = identity_names + [f"synthetic-{p}" for p in person[~third]]
    queries = np.concatenate([real.vectors[is_probe], synthetic[third][: QUERIES - int(is_probe.sum())]])
    return Data(vectors.astype(np.float32), people_codes, names, queries.astype(np.float32), int(is_probe.sum()))


def cache_key(size: int) -> str:
    """Changes with whatever shapes the data (edit ``make_data``? bump ``DATA_VERSION``)."""
    generator = Path(distractors.__file__).read_bytes()
    return hashlib.sha256(repr((size, SEED, PER_PERSON, QUERIES, DATA_VERSION, generator)).encode()).hexdigest()[:12]


def gallery_path(size: int) -> Path:
    return common.CACHE_DIR / f"index-scale-{size}-{cache_key(size)}.db"


def write_gallery(path: Path, data: Data) -> None:
    """All templates through the store, in one transaction per 50k (the change log fills as in real use)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with Gallery(partial, index="exact") as gallery:
        store = gallery.store
        order = np.argsort(data.people, kind="stable")
        start = 0
        while start < len(order):
            end = min(start + 50_000, len(order))
            while end < len(order) and data.people[order[end]] == data.people[order[end - 1]]:
                end += 1
            with store.transaction() as db:
                for n in _person_runs(data.people[order[start:end]]):
                    rows = order[start + n[0] : start + n[1]]
                    person_id = store.ensure_person(db, data.names[rows[0]], None, None)
                    db.executemany(
                        "INSERT INTO template (id, person_id, model_id, vector, created_at) VALUES (?, ?, ?, ?, '')",
                        [(int(r) + 1, person_id, MODEL, data.vectors[r].astype("<f4").tobytes()) for r in rows],
                    )
            start = end
    os.replace(partial, path)


def _person_runs(people: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(people)) + 1
    bounds = np.concatenate([[0], edges, [len(people)]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def exact_top1(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Template id (row + 1) of the best template per query, by exact search in blocks."""
    best = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), 200):
        best[start : start + 200] = np.argmax(queries[start : start + 200] @ vectors.T, axis=1) + 1
    return best


def latencies(search: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    times = np.empty(len(queries))
    for n, query in enumerate(queries):
        start = time.perf_counter()
        search(query)
        times[n] = time.perf_counter() - start
    return times


def row(name: str, times: np.ndarray, recall: float, qps: float, build: float | None, bytes_per: float) -> dict:
    return {
        "method": name,
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "recall_at_1": recall,
        "batch_qps": qps,
        "build_s": build,
        "bytes_per_template": bytes_per,
    }


def batch_qps(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    start = time.perf_counter()
    for part in range(0, len(queries), 500):
        search(queries[part : part + 500])
    return len(queries) / (time.perf_counter() - start)


def measure_baselines(data: Data, truth: np.ndarray, sample: int) -> list[dict]:
    import faiss

    ids = np.arange(1, len(data.vectors) + 1)
    exact = ExactIndex(ids, data.vectors)
    single = data.queries[:sample]
    rows = []
    times = latencies(lambda q: exact.search(q, K), single)
    recall = float(np.mean(exact.search(data.queries, 1)[1][:, 0] == truth))
    rows.append(
        row("numpy brute force", times, recall, batch_qps(lambda q: exact.search(q, K), data.queries), 0.0, 520)
    )
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(data.vectors.shape[1])
    flat.add(data.vectors)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    times = latencies(lambda q: flat.search(q[None], K), single)
    faiss.omp_set_num_threads(2)
    qps = batch_qps(lambda q: flat.search(q, K), data.queries)
    recall = float(np.mean(flat.search(data.queries, 1)[1][:, 0] + 1 == truth))
    rows.append(row("faiss IndexFlatIP", times, recall, qps, build, 512))
    return rows


def measure_gallery(path: Path, data: Data, truth: np.ndarray, storage: str, efs: list[int]) -> tuple[list[dict], dict]:
    extra: dict = {}
    with open_gallery(path, index="hnsw", index_storage=storage) as gallery:  # with the build's progress bar
        index = gallery.index
        assert index is not None
        start = time.perf_counter()
        graph = index.refresh()
        extra["open_or_build_s"] = time.perf_counter() - start
        extra["built"] = index.rebuild_reason
        extra["file_bytes"] = index.path.stat().st_size
        rows = []
        for ef in efs:
            graph.expansion_search = ef
            gallery.search_templates(data.queries[:10], K)  # warm the page cache and the code paths
            times = latencies(lambda q: gallery.search_templates(q, K), data.queries)
            found = gallery.search_templates(data.queries, K)[1][:, 0]
            qps = batch_qps(lambda q: gallery.search_templates(q, K), data.queries)
            recall = float(np.mean(found == truth))
            recall_real = float(np.mean(found[: data.real_queries] == truth[: data.real_queries]))
            build = extra["open_or_build_s"] if extra["built"] else None
            name = f"faceprint HNSW {storage} (M={hnsw_params.CONNECTIVITY}, ef={ef})"
            measured = row(name, times, recall, qps, build, graph.memory_bytes() / len(graph))
            file_per_template = extra["file_bytes"] / len(graph)
            rows.append({**measured, "recall_real": recall_real, "file_bytes_per_template": file_per_template})
        graph.expansion_search = None  # back to the size's own depth
        extra["incremental"] = measure_incremental(gallery, data)
    return rows, extra


def build_index(path: Path, storage: str) -> dict:
    """Open the gallery's saved index, or build and save it (the first time), timed."""
    with Gallery(path, index="hnsw", index_storage=storage) as gallery:
        assert gallery.index is not None
        start = time.perf_counter()
        graph = gallery.index.refresh()
        seconds = time.perf_counter() - start
        return {"templates": len(graph), "storage": storage, "seconds": seconds, "built": gallery.index.rebuild_reason}


def measure_incremental(gallery: Gallery, data: Data) -> dict:
    """Enroll then remove 100 new templates one at a time; each change is followed by a search (which
    brings the index up to date). The first change after opening copies the memory-mapped graph."""
    rng = np.random.default_rng(1)
    fresh = data.queries[rng.choice(len(data.queries), 101)]
    probe = data.queries[0]
    start = time.perf_counter()
    first = gallery.add_templates("incremental-0", [Template(fresh[0], MODEL)])
    gallery.search_templates(probe, K)
    first_change = time.perf_counter() - start
    adds, removes, commits = [], [], []
    added = list(first)
    for n in range(1, 101):
        start = time.perf_counter()
        added += gallery.add_templates(f"incremental-{n}", [Template(fresh[n], MODEL)])
        commits.append(time.perf_counter() - start)
        gallery.search_templates(probe, K)
        adds.append(time.perf_counter() - start)
    for template_id in added:
        start = time.perf_counter()
        gallery.remove_template(template_id)
        gallery.search_templates(probe, K)
        removes.append(time.perf_counter() - start)
    for n in range(101):
        gallery.remove_person(f"incremental-{n}")
    gallery.search_templates(probe, K)
    assert gallery.index is not None
    gallery.index.save()  # keep the cached file in step with the gallery for the next run
    return {
        "first_change_s": first_change,
        "add_ms_p50": float(np.median(adds) * 1e3),
        "add_commit_ms_p50": float(np.median(commits) * 1e3),
        "remove_ms_p50": float(np.median(removes) * 1e3),
    }


COLD_OPEN = """
import sys, time
start = time.perf_counter()
from faceprint import Gallery
import numpy as np
imported = time.perf_counter()
with Gallery(sys.argv[1], index="hnsw", index_storage=sys.argv[2]) as g:
    dimension = int(sys.argv[3])
    g.search_templates(np.full(dimension, dimension ** -0.5, np.float32), 100)
    print(imported - start, time.perf_counter() - imported, g.index.rebuild_reason)
"""


def cold_open(path: Path, storage: str, dimension: int) -> dict:
    """A new process opening the gallery and answering one search (the OS page cache stays warm)."""
    command = [sys.executable, "-c", COLD_OPEN, str(path), storage, str(dimension)]
    out = subprocess.run(command, capture_output=True, text=True)
    imported, opened, reason = out.stdout.split(maxsplit=2)
    return {"import_s": float(imported), "open_and_first_search_s": float(opened), "rebuilt": reason.strip()}


def compare_libraries(size: int) -> None:
    """usearch vs faiss HNSW at the same M / efConstruction 128 / ef 128 on the same data, k = 100."""
    data = make_data(size)
    truth = exact_top1(data.vectors, data.queries)
    for connectivity in (16, 32):
        for library, build in (("usearch", _usearch_hnsw), ("faiss", _faiss_hnsw)):
            start = time.perf_counter()
            search = build(data.vectors, connectivity)
            seconds = time.perf_counter() - start
            times = latencies(lambda q, search=search: search(q[None], 1), data.queries)
            recall = float(np.mean(search(data.queries, 2)[:, 0] == truth))
            print(json.dumps({"library": library, "M": connectivity, **row("", times, recall, 0, seconds, 0)}))


def _usearch_hnsw(vectors: np.ndarray, connectivity: int) -> Callable[[np.ndarray, int], np.ndarray]:
    from usearch.index import Index

    index = Index(
        ndim=128, metric="ip", dtype="f32", connectivity=connectivity, expansion_add=128, expansion_search=128
    )
    index.add(np.arange(1, len(vectors) + 1), vectors, threads=2)
    return lambda q, threads: np.atleast_2d(index.search(q, K, threads=threads).keys)


def _faiss_hnsw(vectors: np.ndarray, connectivity: int) -> Callable[[np.ndarray, int], np.ndarray]:
    import faiss

    index = _faiss_hnsw_built(vectors, connectivity, construction=128)
    index.hnsw.efSearch = 128

    def search(q: np.ndarray, threads: int) -> np.ndarray:
        faiss.omp_set_num_threads(threads)
        return index.search(q, K)[1] + 1

    return search


def _faiss_hnsw_built(vectors: np.ndarray, connectivity: int, construction: int):  # -> faiss.IndexHNSWFlat
    import faiss

    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(vectors.shape[1], connectivity, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = construction
    index.add(vectors)
    return index


def faiss_at_scale(size: int, construction: int, efs: list[int]) -> None:
    """faiss's HNSW (M 32) at ``size`` templates: single-query latency and recall@1 per search depth.

    The bare library on the same data, without the gallery around it (change-log check, id map,
    tombstone filter): how the HNSW parameters trade speed for recall. Three passes over the queries
    per depth, interleaved; the p50 of each pass.
    """
    import faiss

    data = make_data(size)
    truth = exact_top1(data.vectors, data.queries) - 1
    path = common.CACHE_DIR / f"faiss-hnsw-{size}-M32-efc{construction}-{cache_key(size)}.index"
    if path.is_file():
        index = faiss.read_index(str(path))
    else:
        start = time.perf_counter()
        index = _faiss_hnsw_built(data.vectors, 32, construction)
        print(f"built in {time.perf_counter() - start:.0f} s on 2 threads", flush=True)
        faiss.write_index(index, str(path))
    faiss.omp_set_num_threads(1)
    passes: dict[int, list[np.ndarray]] = {ef: [] for ef in efs}
    for _ in range(3):
        for ef in efs:
            index.hnsw.efSearch = ef
            passes[ef].append(latencies(lambda q: index.search(q[None], K), data.queries))
    for ef in efs:
        index.hnsw.efSearch = ef
        found = index.search(data.queries, K)[1]
        missed = found[:, 0] != truth
        in_top_k = np.mean([t in f for t, f in zip(truth[missed], found[missed])]) if missed.any() else 1.0
        p50s = [float(np.median(t) * 1e3) for t in passes[ef]]
        p99s = [float(np.percentile(t, 99) * 1e3) for t in passes[ef]]
        print(
            json.dumps(
                {
                    "efConstruction": construction,
                    "ef": ef,
                    "p50_ms": p50s,
                    "p99_ms": p99s,
                    "recall_at_1": float(1 - missed.mean()),
                    "misses_with_truth_in_top_k": float(in_top_k),
                }
            )
        )


def tombstone_recall(size: int, shares: list[float]) -> None:
    """Recall@1 and latency of the gallery's saved graph after removing a random share of its templates
    (they stay as tombstones until the graph is rebuilt at ``synced.COMPACT_SHARE``)."""
    data = make_data(size)
    with Gallery(gallery_path(size), index="hnsw") as gallery:
        assert gallery.index is not None
        saved = gallery.index.refresh()
    for share in shares:
        graph = saved.copy()
        removed = np.random.default_rng(SEED).random(len(data.vectors)) < share
        graph.remove(np.flatnonzero(removed) + 1)
        kept = np.flatnonzero(~removed)
        truth = kept[exact_top1(data.vectors[kept], data.queries) - 1] + 1
        times = latencies(lambda q, graph=graph: graph.search(q, K), data.queries)
        recall = float(np.mean(graph.search(data.queries, K)[1][:, 0] == truth))
        print(json.dumps({"templates": size, "tombstones": graph.dead_share, **row("", times, recall, 0, None, 0)}))


def distribution_check() -> None:
    real = distractors.real_templates()
    found = distractors.check(real, distractors.Generator.fit(real), np.random.default_rng(SEED))
    print("| scores | " + " | ".join(f"q{q:g}" for q in found.pop("quantiles")) + " |")
    print("| --- |" + " --- |" * 6)
    for name, values in found.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--storage", choices=["f32", "f16", "i8"], default="f32")
    parser.add_argument("--ef", type=int, nargs="+", help="search depths to measure (default: the size's own)")
    parser.add_argument("--prepare", action="store_true", help="only write the galleries")
    parser.add_argument("--build", action="store_true", help="only build (or open) the gallery's index, timed")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--compare-libraries", action="store_true")
    parser.add_argument("--distribution", action="store_true", help="real vs synthetic score quantiles")
    parser.add_argument("--faiss-hnsw", action="store_true", help="faiss's HNSW at --sizes, --ef, --ef-construction")
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--tombstones", type=float, nargs="+", help="shares of templates to remove (with --sizes)")
    args = parser.parse_args()
    if args.distribution:
        distribution_check()
        return
    if args.compare_libraries:
        compare_libraries(100_000)
        return
    if args.tombstones:
        for size in args.sizes:
            tombstone_recall(size, [0.0, *args.tombstones])
        return
    if args.faiss_hnsw:
        for size in args.sizes:
            faiss_at_scale(size, args.ef_construction, args.ef or [128])
        return
    for size in args.sizes:
        data = make_data(size)
        path = gallery_path(size)
        if not path.is_file():
            start = time.perf_counter()
            write_gallery(path, data)
            print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
        if args.prepare:
            continue
        if args.build:
            print(json.dumps(build_index(path, args.storage)), flush=True)
            continue
        truth = exact_top1(data.vectors, data.queries)
        efs = args.ef or [hnsw_params.search_depth(len(data.vectors))]
        rows, extra = measure_gallery(path, data, truth, args.storage, efs)
        extra["cold_open"] = cold_open(path, args.storage, data.vectors.shape[1])
        if not args.no_baselines:
            rows += measure_baselines(data, truth, sample=QUERIES if size <= 100_000 else 300)
        report = {"templates": len(data.vectors), "queries": len(data.queries), "rows": rows, **extra}
        print(json.dumps(report, indent=1), flush=True)
        out = Path(__file__).resolve().parent / "out"
        out.mkdir(exist_ok=True)
        (out / f"index_scale-{size}-{args.storage}.json").write_text(json.dumps(report, indent=1))
        print_table(report)


def print_table(report: dict) -> None:
    print(f"\n{report['templates']:,} templates, {report['queries']} queries")
    print("| method | p50 | p99 | recall@1 | batch q/s | build | bytes/template |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in report["rows"]:
        build = "-" if r["build_s"] is None else f"{r['build_s']:.1f} s"
        print(
            f"| {r['method']} | {r['p50_ms']:.3f} ms | {r['p99_ms']:.3f} ms | {r['recall_at_1'] * 100:.2f} % | "
            f"{r['batch_qps']:,.0f} | {build} | {r['bytes_per_template']:.0f} |"
        )


if __name__ == "__main__":
    main()
