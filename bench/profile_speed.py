"""Throughput of the speed profiles: detect + embed every face of the first faces-dev images.

Each pipeline runs ``process_files`` over the same images in 2 worker processes (pool start-up and
model loading included, as ``bench/throughput.py`` counts them), in turn, ``--rounds`` times; the
table gives each one's best round (the least disturbed by other work on the machine) and its median.

    python bench/profile_speed.py [--count 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import faces_dev, read_images
from faceprint.models import FUSED
from faceprint.pipeline import DEFAULT_OPTIONS, PipelineOptions, process_files

#: Spelled out (as bench/accuracy.py's variants), so that a change of the profiles does not change the benchmark.
PIPELINES: dict[str, PipelineOptions] = {
    "auto + dlib's ResNet (default)": DEFAULT_OPTIONS,
    "yunet + dlib's ResNet": PipelineOptions(detector="yunet"),
    "auto + fused": PipelineOptions(model=FUSED),
    "yunet + fused": PipelineOptions(detector="yunet", model=FUSED),
    "yunet + fused, no flip": PipelineOptions(detector="yunet", model=FUSED, flip=False),
}
WORKERS = 2


def seconds(paths: list[Path], options: PipelineOptions) -> float:
    start = time.perf_counter()
    faces = sum(len(result.faces) for result in process_files(paths, options, workers=WORKERS))
    assert faces >= len(paths)  # every image gives its faces
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="faces-dev images to use")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = faces_dev()
    paths = [root / p for p in read_images(root)[0][: args.count]]
    times: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for _ in range(args.rounds):
        for name, options in PIPELINES.items():
            times[name].append(seconds(paths, options))
    default = min(times[next(iter(PIPELINES))])
    print(f"{len(paths)} faces-dev images, {WORKERS} worker processes, {args.rounds} rounds\n")
    print("| pipeline | images/s (best round) | images/s (median) | vs default (best) |")
    print("| --- | --- | --- | --- |")
    for name, spent in times.items():
        best, median = min(spent), float(np.median(spent))
        print(f"| {name} | {len(paths) / best:.1f} | {len(paths) / median:.1f} | {default / best:.2f}x |")


if __name__ == "__main__":
    main()
