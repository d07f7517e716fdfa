"""Throughput of "detect + embed every face in a folder": faceprint vs the face_recognition library.

    pip install --no-deps face-recognition-ng   # the face_recognition library, for comparison only
    python bench/throughput.py [--count 200]

Both libraries run on the same images in the same run: the first ``--count`` faces-dev
(LFW 250x250) images and the 20 committed faces-hires photos (374 to 2333 px). faceprint runs
with its defaults (``PipelineOptions()``: embedding on onnxruntime) and, as the "before"
figure, with dlib's own embedding code (``backend="dlib"``), single-process and with its
worker processes;
face_recognition runs its documented pipeline (HOG with 1 upsample, 5-point landmarks, one
ResNet embedding per face), single-process and in a 2-process pool. Per-stage times come from
single-process runs that time each stage separately.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common import faces_dev, read_images
from faceprint import align, quality
from faceprint.detection import detect_boxes
from faceprint.embedding import embed_chips
from faceprint.image import iter_image_files, load_image
from faceprint.pipeline import DEFAULT_OPTIONS, PipelineOptions, process_files

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT / "tests" / "data" / "faces-hires"
WORKERS = 2


class Stopwatch:
    """Adds up wall time per named stage: ``with clock("detect"): ...``."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.spent[stage] += time.perf_counter() - start


def faceprint_stages(paths: Sequence[Path], options: PipelineOptions) -> dict[str, float]:
    """Seconds spent in each faceprint stage over ``paths``, in this one process."""
    clock = Stopwatch()
    for path in paths:
        with clock("decode"):
            pixels = load_image(path).pixels
        with clock("detect"):
            detections = detect_boxes(pixels, detector=options.detector, upsample=options.upsample)
        with clock("landmarks"):
            fits = [align.shape(pixels, d.box) for d in detections]
        with clock("align + quality"):
            chips = [_chip_and_quality(pixels, d, fit) for d, fit in zip(detections, fits)]
        with clock("embed"):
            embed_chips(chips, flip=options.flip, jitter=options.jitter, backend=options.backend)
    return dict(clock.spent)


def _chip_and_quality(pixels, detection, fit):
    chip = align.face_chip(pixels, fit)
    quality.assess(chip, align.points_array(fit), detection.box)
    return chip


def face_recognition_stages(paths: Sequence[Path]) -> dict[str, float]:
    import face_recognition

    clock = Stopwatch()
    for path in paths:
        with clock("decode"):
            image = face_recognition.load_image_file(str(path))
        with clock("detect"):
            boxes = face_recognition.face_locations(image)
        with clock("landmarks + embed"):
            face_recognition.face_encodings(image, known_face_locations=boxes)
    return dict(clock.spent)


def _face_recognition_one(path: str) -> int:
    import face_recognition

    image = face_recognition.load_image_file(path)
    return len(face_recognition.face_encodings(image, known_face_locations=face_recognition.face_locations(image)))


def face_recognition_pool(paths: Sequence[Path]) -> float:
    """Wall seconds for face_recognition over ``paths`` in a 2-process pool (pool start included)."""
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        pool.map(_face_recognition_one, [str(p) for p in paths], chunksize=8)
    return time.perf_counter() - start


def faceprint_pool(paths: Sequence[Path], options: PipelineOptions) -> tuple[float, int]:
    """Wall seconds (pool start included) and faces found for faceprint over ``paths`` in worker processes."""
    start = time.perf_counter()
    faces = sum(len(r.faces) for r in process_files(paths, options, workers=WORKERS))
    return time.perf_counter() - start, faces


def report(name: str, paths: Sequence[Path]) -> None:
    n = len(paths)
    before = dataclasses.replace(DEFAULT_OPTIONS, backend="dlib")
    ours, ours_dlib = faceprint_stages(paths, DEFAULT_OPTIONS), faceprint_stages(paths, before)
    theirs = face_recognition_stages(paths)
    (ours_pool, faces), (dlib_pool, _) = faceprint_pool(paths, DEFAULT_OPTIONS), faceprint_pool(paths, before)
    theirs_pool = face_recognition_pool(paths)
    print(f"\n### {name}: {n} images, {faces} faces found by faceprint\n")
    print("| pipeline | processes | images/s | ms/image |")
    print("| --- | --- | --- | --- |")
    for label, procs, seconds in (
        ("faceprint defaults (onnxruntime embedding)", 1, sum(ours.values())),
        ("faceprint defaults (onnxruntime embedding)", WORKERS, ours_pool),
        ("faceprint with dlib embedding (before)", 1, sum(ours_dlib.values())),
        ("faceprint with dlib embedding (before)", WORKERS, dlib_pool),
        ("face_recognition (HOG, upsample 1)", 1, sum(theirs.values())),
        ("face_recognition (HOG, upsample 1)", WORKERS, theirs_pool),
    ):
        print(f"| {label} | {procs} | {n / seconds:.1f} | {1000 * seconds / n:.0f} |")
    print(
        f"\nfaceprint ({WORKERS} processes) vs face_recognition: {sum(theirs.values()) / ours_pool:.2f}x its "
        f"single-process throughput, {theirs_pool / ours_pool:.2f}x with {WORKERS} processes each\n"
    )
    print("| stage (ms/image, 1 process) | faceprint | faceprint, dlib embedding | face_recognition |")
    print("| --- | --- | --- | --- |")
    for stage in ("decode", "detect", "landmarks", "align + quality", "embed", "landmarks + embed"):
        cells = [f"{1000 * s[stage] / n:.1f}" if stage in s else "-" for s in (ours, ours_dlib, theirs)]
        print(f"| {stage} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="faces-dev images to use")
    args = parser.parse_args()
    root = faces_dev()
    lfw = [root / p for p in read_images(root)[0][: args.count]]
    print(
        f"defaults: {DEFAULT_OPTIONS.detector} detector, upsample {DEFAULT_OPTIONS.upsample or 'auto'}, "
        f"flip {'on' if DEFAULT_OPTIONS.flip else 'off'}, jitter {DEFAULT_OPTIONS.jitter}"
    )
    report("faces-dev (LFW, 250x250)", lfw)
    report("faces-hires (374-2333 px)", iter_image_files(HIRES))


if __name__ == "__main__":
    main()
