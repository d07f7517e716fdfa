"""What a worker process of ``process_files`` costs before its steady state, and a whole pool run, in CPU seconds.

    python bench/worker_start.py [--count 200] [--runs 3]

A worker's start, measured in fresh interpreters like the spawned ones (median of ``--runs``): the CPU of
the interpreter and the imports (this script's, as a spawned worker imports its caller's main module, which
imports faceprint's pipeline), and of its first chunk of 8 faces-dev images beyond a later chunk's (the models:
YuNet's and the embedding's onnxruntime sessions, dlib's 5-point shape predictor, the 68-point model for a turned
head, which the first chunk has). Then ``process_files`` over ``--count`` images with 2 workers (pool start-up
included, as ``bench/throughput.py`` runs it): wall time, and the CPU of this process and of its worker.
CPU figures hold up on a loaded machine where wall times do not.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from common import faces_dev, read_images

WORKERS = 2
CHUNK = 8
PROFILES = ("fast", "accurate")


def cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def fresh_start(profile: str) -> dict[str, float]:
    """In this (fresh) process: CPU of the start (the interpreter, this script and faceprint's pipeline, imported
    with ``common``, as a spawned worker imports its caller's main module) and of a first and a second chunk."""
    import dataclasses

    from faceprint.pipeline import process_chunk
    from faceprint.profiles import PROFILES as OPTIONS

    imported = cpu()
    root = faces_dev()
    paths = [root / p for p in read_images(root)[0][: 2 * CHUNK]]
    options = dataclasses.replace(OPTIONS[profile], threads=1)  # as process_files runs its workers
    before = cpu()
    process_chunk(paths[:CHUNK], options)
    first = cpu()
    process_chunk(paths[CHUNK:], options)
    return {"imports": imported, "first chunk": first - before, "second chunk": cpu() - first}


def pool_run(profile: str, count: int) -> dict[str, float]:
    from faceprint.pipeline import process_files
    from faceprint.profiles import PROFILES as OPTIONS

    root = faces_dev()
    paths = [root / p for p in read_images(root)[0][:count]]
    own, workers, wall = cpu(), cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    for _ in process_files(paths, OPTIONS[profile], workers=WORKERS):
        pass
    wall = time.perf_counter() - wall
    return {"wall": wall, "caller CPU": cpu() - own, "worker CPU": cpu(resource.RUSAGE_CHILDREN) - workers}


def in_fresh_process(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="faces-dev images of the pool run")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per figure (the median is shown)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, profile = args.child
        print(json.dumps(fresh_start(profile) if kind == "start" else pool_run(profile, args.count)))
        return
    print(
        "| profile | imports | first chunk | second chunk | start (imports + first - second) | pool run: "
        "images/s | caller CPU | worker CPU | CPU ms per image |\n" + "| --- " * 9 + "|"
    )
    for profile in PROFILES:
        starts = [in_fresh_process("--child", "start", profile) for _ in range(args.runs)]
        pools = [in_fresh_process("--count", str(args.count), "--child", "pool", profile) for _ in range(args.runs)]
        start = {key: statistics.median(run[key] for run in starts) for key in starts[0]}
        pool = {key: statistics.median(run[key] for run in pools) for key in pools[0]}
        setup = start["imports"] + start["first chunk"] - start["second chunk"]
        total = pool["caller CPU"] + pool["worker CPU"]
        print(
            f"| {profile} | {start['imports']:.3f} s | {start['first chunk']:.3f} s | {start['second chunk']:.3f} s "
            f"| **{setup:.2f} s** | {args.count / pool['wall']:.1f} | {pool['caller CPU']:.2f} s "
            f"| {pool['worker CPU']:.2f} s | {1000 * total / args.count:.1f} |"
        )


if __name__ == "__main__":
    main()
