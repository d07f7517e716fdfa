"""The pipeline on a Ray cluster on this machine: photos per second with 1 and 2 worker nodes, against local
worker processes, and whether the templates are the same.

    python bench/ray_speed.py --count 200

A local Ray cluster (``ray.cluster_utils.Cluster``): a head node with no CPU for tasks, then one worker node
of one CPU; measured; then a second worker node of one CPU; measured again. The same photos (the first
``count`` faces-dev images) go through ``process_files`` with 1 and 2 local worker processes, for the
overhead. Each figure is one run after a warm-up run of the same configuration (the actors start and load
their models in the warm-up). The machine has 2 cores, shared with other jobs: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import common
from faceprint.library.distributed import RayRunner
from faceprint.pipeline import ImageResult, process_files


def templates(results: list[ImageResult]) -> np.ndarray:
    return np.stack([f.template.vector for r in results for f in r.faces if f.template is not None])


def timed(run) -> tuple[float, list[ImageResult]]:
    start = time.perf_counter()
    results = list(run())
    return time.perf_counter() - start, results


def local(photos: list, figures: dict[str, float], when: str) -> np.ndarray:
    """Local worker processes (1 and 2) over ``photos``: figures added, the templates of the last run."""
    for workers in (1, 2):
        list(process_files(photos[:16], workers=workers))
        seconds, results = timed(lambda workers=workers: process_files(photos, workers=workers))
        figures[f"local, {workers} worker processes ({when})"] = len(photos) / seconds
        print(figures, flush=True)
    return templates(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    photos = sorted((common.faces_dev() / "deepfunneled").rglob("*.jpg"))[: args.count]
    figures: dict[str, float] = {}
    reference = local(photos, figures, "before")

    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    differences = {}
    try:
        for nodes in (1, 2):
            cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
            cluster.wait_for_nodes()
            runner = RayRunner(cluster.address)
            list(runner(photos[:16], workers=nodes))
            seconds, results = timed(lambda nodes=nodes, runner=runner: runner(photos, workers=nodes))
            figures[f"Ray, {nodes} worker nodes"] = args.count / seconds
            differences[nodes] = float(np.abs(templates(results) - reference).max())
            print(figures, differences, flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    local(photos, figures, "after")  # the load of a shared machine moves: local runs on both sides of Ray
    print(json.dumps({"photos": args.count, "photos_per_second": figures, "max_abs_difference": differences}, indent=2))


if __name__ == "__main__":
    main()
