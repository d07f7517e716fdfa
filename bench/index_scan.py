"""How long an exhaustive scan of a gallery's HNSW graph takes for a batch of queries, both ways ``HNSWIndex.scan``
can take: faiss's per-query search of a compact (int8) copy, and matrix products block by block (BLAS, every core),
which ``scan`` uses from ``hnsw.BATCH_SCAN`` queries on. The gallery's measurement of itself scans in batches of 256
(its 20,000 searches at 1,000,000 templates are most of its time).

    python bench/open_set.py --sizes 1000000 --photos 3          # once: the cached gallery and its graph
    python bench/index_scan.py bench/.cache/open-set-v1-dlib-resnet-v1+sface-2021dec-1000000-3.db

The queries are the gallery's own templates (every n-th), ``--k`` the candidates a measurement's search keeps.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from faceprint import Gallery
from faceprint.index.hnsw import HNSWIndex

Scan = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def timed(scan: Scan, queries: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    start, cpu = time.perf_counter(), time.process_time()
    _, nodes = scan(queries, k)
    return time.perf_counter() - start, time.process_time() - cpu, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gallery")
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--k", type=int, default=103)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Gallery(args.gallery) as gallery:
        graph = gallery.index.refresh()  # type: ignore[attr-defined]
        if not isinstance(graph, HNSWIndex):
            raise SystemExit(f"{args.gallery} is searched exactly, not through an HNSW graph")
        step = max(len(graph) // args.queries, 1)
        _, queries = gallery.store.vectors(np.arange(1, args.queries + 1, dtype=np.int64) * step, gallery.model_id)
        queries = np.ascontiguousarray(queries, np.float32)
        timed(graph._scanned_in_blocks, queries, args.k)  # the vectors' pages read once, the int8 copy made once
        timed(graph._scanned_per_query, queries, args.k)
        rows = []
        for _ in range(args.rounds):
            for name, scan in (
                ("per query (faiss, int8 copy)", graph._scanned_per_query),
                ("blocks (BLAS)", graph._scanned_in_blocks),
            ):
                wall, cpu, nodes = timed(scan, queries, args.k)
                rows.append({"scan": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "best": nodes[:, 0]})
        same = np.mean(rows[0]["best"] == rows[1]["best"])
        for name in dict.fromkeys(r["scan"] for r in rows):
            walls = [r["wall_s"] for r in rows if r["scan"] == name]
            cpus = [r["cpu_s"] for r in rows if r["scan"] == name]
            print(
                json.dumps(
                    {
                        "templates": len(graph),
                        "storage": graph.storage,
                        "queries": len(queries),
                        "k": args.k,
                        "scan": name,
                        "wall_s": walls,
                        "cpu_s": cpus,
                        "same_best_share": round(float(same), 4),
                    }
                )
            )


if __name__ == "__main__":
    main()
