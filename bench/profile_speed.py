"""Throughput of the speed profiles: detect + embed every face of the first faces-dev images.

Each pipeline runs ``process_files`` over the same images in 2 worker processes (pool start-up and
model loading included, as ``bench/throughput.py`` counts them; this process is one of the 2, so from its second
round on it has its models loaded, as any long-lived caller has), in turn, ``--rounds`` times; the
table gives each one's best round (the least disturbed by other work on the machine) and its median,
and the CPU time per image of its best round (this process and its workers: the cost, whatever else
shares the machine), each also as a ratio to the default's and, when it runs, to the classic profile's (the
former default) in the same run.

    python bench/profile_speed.py [--count 200] [--rounds 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import cpu_seconds, faces_dev, read_images
from faceprint.models import DLIB_RESNET, FUSED, SFACE
from faceprint.pipeline import DEFAULT_OPTIONS, PipelineOptions, process_files

CLASSIC = "auto + dlib's ResNet (classic)"
#: Spelled out (as bench/accuracy.py's variants), so that a change of the profiles does not change the benchmark.
PIPELINES: dict[str, PipelineOptions] = {
    "default (accurate profile)": DEFAULT_OPTIONS,
    CLASSIC: PipelineOptions(detector="auto", model=DLIB_RESNET),
    "yunet + dlib's ResNet (fast)": PipelineOptions(detector="yunet", model=DLIB_RESNET),
    "yunet + dlib's ResNet int8 (fast now)": PipelineOptions(detector="yunet", model=DLIB_RESNET, precision="int8"),
    "auto + fused": PipelineOptions(detector="auto", model=FUSED, unflipped=()),
    "yunet + fused": PipelineOptions(detector="yunet", model=FUSED, unflipped=()),
    "yunet + fused, no flip": PipelineOptions(detector="yunet", model=FUSED, flip=False),
    "yunet + fused, SFace without flip": PipelineOptions(detector="yunet", model=FUSED, unflipped=(SFACE.model_id,)),
    "yunet + fused, SFace without flip, dlib int8": PipelineOptions(
        detector="yunet", model=FUSED, unflipped=(SFACE.model_id,), precision="int8"
    ),
    "yunet + dlib's ResNet, no flip": PipelineOptions(detector="yunet", model=DLIB_RESNET, flip=False),
}
WORKERS = 2


def seconds(paths: list[Path], options: PipelineOptions) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    faces = sum(len(result.faces) for result in process_files(paths, options, workers=WORKERS))
    assert faces >= len(paths)  # every image gives its faces
    return time.perf_counter() - start, cpu_seconds() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="faces-dev images to use")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(PIPELINES)[1:], help="the default and these pipelines")
    args = parser.parse_args()
    root = faces_dev()
    paths = [root / p for p in read_images(root)[0][: args.count]]
    names = [next(iter(PIPELINES)), *(args.only or list(PIPELINES)[1:])]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            runs[name].append(seconds(paths, PIPELINES[name]))
    print(f"{len(paths)} faces-dev images, {WORKERS} worker processes, {args.rounds} rounds\n")
    # Each pipeline against the default and against the classic profile (the former default) of the same run.
    bases = {"default": min(runs[names[0]])} | ({"classic": min(runs[CLASSIC])} if CLASSIC in runs else {})
    ratios = [f"vs {base} ({kind})" for base in bases for kind in ("best", "CPU")]
    columns = ["pipeline", "images/s (best round)", "images/s (median)", "CPU ms per image", *ratios]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for name, spent in runs.items():
        (best, cpu), median = min(spent), float(np.median([wall for wall, _ in spent]))
        cells = [f"{len(paths) / best:.1f}", f"{len(paths) / median:.1f}", f"{1000 * cpu / len(paths):.1f}"]
        cells += [f"{ratio:.2f}x" for wall, base_cpu in bases.values() for ratio in (wall / best, base_cpu / cpu)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
