"""Throughput of "detect + embed every face in a folder": faceprint vs the face_recognition library.

    pip install --no-deps face-recognition-ng   # the face_recognition library, for comparison only
    python bench/throughput.py [--count 200]

Both libraries run on the same images in the same run: the first ``--count`` faces-dev
(LFW 250x250) images and the 20 committed faces-hires photos (374 to 2333 px). faceprint's classic
profile is face_recognition's pipeline (HOG/CNN, dlib's 5 points and ResNet; the embedding on onnxruntime): it
runs single-process and with its worker processes, and, as the "before" figure, with dlib's own embedding code
(``backend="dlib"``); faceprint's default (accurate: YuNet + the fused model) and fast (YuNet + dlib's ResNet
int8) profiles run with their worker processes in the same run. face_recognition runs its documented pipeline
(HOG with 1 upsample, 5-point landmarks, one ResNet embedding per face), single-process and in a 2-process
pool. Per-stage times (classic profile and face_recognition) come from single-process runs that time each stage
separately.
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
from faceprint.pipeline import PipelineOptions, process_files
from faceprint.profiles import ACCURATE, CLASSIC, FAST

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
            embed_chips(
                chips,
                flip=options.flip,
                jitter=options.jitter,
                backend=options.backend,
                model=options.model,
                precision=options.precision,
            )
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
    before = dataclasses.replace(CLASSIC, backend="dlib")
    ours, ours_dlib = faceprint_stages(paths, CLASSIC), faceprint_stages(paths, before)
    theirs = face_recognition_stages(paths)
    (ours_pool, faces), (dlib_pool, _) = faceprint_pool(paths, CLASSIC), faceprint_pool(paths, before)
    (accurate_pool, _), (fast_pool, _) = faceprint_pool(paths, ACCURATE), faceprint_pool(paths, FAST)
    theirs_pool = face_recognition_pool(paths)
    print(f"\n### {name}: {n} images, {faces} faces found by faceprint's classic profile\n")
    print("| pipeline | processes | images/s | ms/image |")
    print("| --- | --- | --- | --- |")
    for label, procs, seconds in (
        ("faceprint default (accurate: YuNet + fused)", WORKERS, accurate_pool),
        ("faceprint fast (YuNet + dlib's ResNet int8)", WORKERS, fast_pool),
        ("faceprint classic (onnxruntime embedding)", 1, sum(ours.values())),
        ("faceprint classic (onnxruntime embedding)", WORKERS, ours_pool),
        ("faceprint classic with dlib embedding (before)", 1, sum(ours_dlib.values())),
        ("faceprint classic with dlib embedding (before)", WORKERS, dlib_pool),
        ("face_recognition (HOG, upsample 1)", 1, sum(theirs.values())),
        ("face_recognition (HOG, upsample 1)", WORKERS, theirs_pool),
    ):
        print(f"| {label} | {procs} | {n / seconds:.1f} | {1000 * seconds / n:.0f} |")
    print(
        f"\nfaceprint classic ({WORKERS} processes) vs face_recognition: {sum(theirs.values()) / ours_pool:.2f}x its "
        f"single-process throughput, {theirs_pool / ours_pool:.2f}x with {WORKERS} processes each; "
        f"against the classic profile: fast {ours_pool / fast_pool:.2f}x, accurate {ours_pool / accurate_pool:.2f}x\n"
    )
    print("| stage (ms/image, 1 process) | faceprint classic | faceprint classic, dlib embedding | face_recognition |")
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
        f"classic profile: {CLASSIC.detector} detector, upsample {CLASSIC.upsample or 'auto'}, "
        f"flip {'on' if CLASSIC.flip else 'off'}, jitter {CLASSIC.jitter}"
    )
    report("faces-dev (LFW, 250x250)", lfw)
    report("faces-hires (374-2333 px)", iter_image_files(HIRES))


if __name__ == "__main__":
    main()
