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


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, float]:
    """Least wall-clock and least CPU seconds of ``repeats`` runs (CPU time: less sensitive to a busy machine)."""
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(t[0] for t in times), min(t[1] for t in times)


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
    print("\nms per face, wall-clock (CPU time)\n")
    print("| attribute | onnxruntime threads | one image per call | one call for all faces |")
    print("| --- | --- | --- | --- |")
    for name in attributes.ATTRIBUTES:
        for threads in (1, 2) if name != "pose" else (1,):
            single = _time_attribute(name, images, faces, threads, args.repeats, per_image=True)
            batched = _time_attribute(name, images, faces, threads, args.repeats) if name != "pose" else None
            print(f"| {name} | {threads if name != 'pose' else '-'} | {_ms(single, count)} | {_ms(batched, count)} |")
    print("\n| analyze, one image per call | threads | detection + landmarks + quality | all four attributes added |")
    print("| --- | --- | --- | --- |")
    for threads in (1, 2):
        base = dataclasses.replace(options, threads=threads)
        full = dataclasses.replace(base, attributes=attributes.ATTRIBUTES)
        plain = best_of(args.repeats, lambda o=base: [find_faces([p], o, embed=False) for p in images])
        every = best_of(args.repeats, lambda o=full: [find_faces([p], o, embed=False) for p in images])
        added = (every[0] - plain[0], every[1] - plain[1])
        print(f"| ms per face | {threads} | {_ms(plain, count)} | {_ms(added, count)} |")


def _ms(timing: tuple[float, float] | None, count: int) -> str:
    return "-" if timing is None else f"{timing[0] / count * 1e3:.2f} ({timing[1] / count * 1e3:.2f})"


def _time_attribute(
    name: str, images: list[np.ndarray], faces: list[list[Face]], threads: int, repeats: int, per_image: bool = False
) -> tuple[float, float]:
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
