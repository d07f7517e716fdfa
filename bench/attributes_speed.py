"""Per-face cost of face attributes, on top of detection.

    flock /tmp/faceprint-bench.lock python bench/attributes_speed.py [--images 150] [--repeats 3]

Faces: the first face of ``--images`` faces-dev photos (250x250 LFW; falls back to the committed
faces-hires photos without ../shared). Each attribute alone is timed over every face, one image
(one call) at a time, as ``faceprint analyze`` runs it; "pose" includes the 68-landmark fit it
needs. ``analyze`` overall is the time of the whole pipeline with all attributes minus the same
pipeline without any (detection, 5 landmarks, quality), per face. Batched rows time one call over
all the faces at once (networks only). Best of ``--repeats`` runs; onnxruntime with 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common import faces_dev, read_images
from faceprint import align, attributes
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, find_faces
from faceprint.types import Face

HIRES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces-hires"


def photos(count: int) -> list[np.ndarray]:
    try:
        root = faces_dev()
        paths = [root / p for p in read_images(root)[0][:: max(1, 1784 // count)][:count]]
    except SystemExit:
        paths = sorted(p for p in HIRES.rglob("*") if p.suffix in (".jpg", ".png"))
    return [load_image(p).pixels for p in paths]


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images = photos(args.images)
    options = dataclasses.replace(DEFAULT_OPTIONS, detector="hog")
    located = [(pixels, faces[:1]) for pixels, faces in zip(images, find_faces(images, options, embed=False)) if faces]
    images, faces = [p for p, _ in located], [f for _, f in located]
    count = len(images)
    print(
        f"{count} faces from {args.images} images; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("\n| attribute | threads | per face, one image per call (ms) | per face, one batch of all (ms) |")
    print("| --- | --- | --- | --- |")
    for threads in (1, 2):
        for name in attributes.ATTRIBUTES:
            single = _time_attribute(name, images, faces, threads, args.repeats, per_image=True)
            batched = (
                "-"
                if name == "pose"
                else f"{_time_attribute(name, images, faces, threads, args.repeats) / count * 1e3:.2f}"
            )
            print(f"| {name} | {threads} | {single / count * 1e3:.2f} | {batched} |")
    for threads in (1, 2):
        base = dataclasses.replace(options, threads=threads)
        full = dataclasses.replace(base, attributes=attributes.ATTRIBUTES)
        plain = best_of(args.repeats, lambda o=base: [find_faces([p], o, embed=False) for p in images])
        every = best_of(args.repeats, lambda o=full: [find_faces([p], o, embed=False) for p in images])
        print(
            f"\nanalyze, {threads} thread(s): {every / count * 1e3:.1f} ms/face in all, "
            f"of which detection+landmarks+quality {plain / count * 1e3:.1f} ms, "
            f"all four attributes {(every - plain) / count * 1e3:.1f} ms/face"
        )


def _time_attribute(
    name: str, images: list[np.ndarray], faces: list[list[Face]], threads: int, repeats: int, per_image: bool = False
) -> float:
    if name == "pose":
        # What the pipeline adds for pose: the 68-point fit, then solvePnP.
        def run() -> None:
            for pixels, image_faces in zip(images, faces):
                with68 = [
                    dataclasses.replace(f, landmarks68=align.points_array(align.shape(pixels, f.box, 68)))
                    for f in image_faces
                ]
                attributes.compute([pixels], [with68], ("pose",))

        return best_of(repeats, run)
    attributes.compute(images[:1], faces[:1], (name,), threads=threads)  # load the model outside the timing
    if per_image:
        return best_of(
            repeats, lambda: [attributes.compute([p], [f], (name,), threads=threads) for p, f in zip(images, faces)]
        )
    return best_of(repeats, lambda: attributes.compute(images, faces, (name,), threads=threads))


if __name__ == "__main__":
    main()
