"""What encryption at rest costs (issue 17): index open time and identification throughput, plain vs encrypted.

For each size, two galleries of the same random unit templates of the default model's dimension (5 per person):
one plain, one opened with a master key. Measured, each in a fresh ``Gallery`` and the median of ``--rounds``:

- opening the saved HNSW index and answering one search: the plain file is memory-mapped, the encrypted one is
  read, decrypted and deserialised;
- keeping no index file at all: rebuilding the graph in memory from the (decrypted) gallery;
- ``rank_people`` (search, then person scores by centroid) over ``--queries`` queries, cold and warm.

    python bench/at_rest.py --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from faceprint.gallery import Gallery
from faceprint.gallery.records import NewTemplate
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.protect import new_key

PER_PERSON = 5


def write(path: Path, vectors: np.ndarray, key: bytes | None) -> None:
    model = DEFAULT_OPTIONS.model.model_id
    store = SQLiteStore(path, key=key)
    for start in range(0, len(vectors), 50_000):
        with store.transaction() as db:
            for first in range(start, min(start + 50_000, len(vectors)), PER_PERSON):
                person = store.ensure_person(db, f"person {first // PER_PERSON}", None, None)
                rows = vectors[first : first + PER_PERSON]
                store.add_templates(db, person, [NewTemplate(v, model) for v in rows])
    store.close()


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(size: int, rounds: int, queries: int, folder: Path) -> dict:
    rng = np.random.default_rng(size)
    dimension = DEFAULT_OPTIONS.model.dimension
    vectors = rng.normal(size=(size, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probes = vectors[rng.choice(size, queries, replace=False)] + 0.05 * rng.normal(size=(queries, dimension))
    probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
    key = new_key()
    report: dict = {"templates": size, "dimension": dimension}
    for name, master in (("plain", None), ("encrypted", key)):
        path = folder / f"{name}-{size}.db"
        write(path, vectors, master)
        with Gallery(path, key=master, index="hnsw") as gallery:
            started = time.perf_counter()
            gallery.rebuild_index()
            report[f"{name}_build_s"] = time.perf_counter() - started
            report[f"{name}_index_file_bytes"] = gallery.index.path.stat().st_size  # type: ignore[attr-defined]

        def open_and_search(path: Path = path, master: bytes | None = master) -> None:
            with Gallery(path, key=master, index="hnsw") as gallery:
                gallery.search_templates(probes[:1], 1)

        def rank(warm: bool, path: Path = path, master: bytes | None = master) -> float:
            with Gallery(path, key=master, index="hnsw") as gallery:
                gallery.search_templates(probes[:1], 1)
                if warm:
                    gallery.rank_people(probes, 5)
                started = time.perf_counter()
                gallery.rank_people(probes, 5)
                return queries / (time.perf_counter() - started)

        report[f"{name}_open_s"] = median_seconds(open_and_search, rounds)
        report[f"{name}_cold_qps"] = statistics.median(rank(False) for _ in range(rounds))
        report[f"{name}_warm_qps"] = statistics.median(rank(True) for _ in range(rounds))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            report = measure(size, args.rounds, args.queries, Path(folder))
            json.dump({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}, sys.stdout)
            print(flush=True)


if __name__ == "__main__":
    main()
