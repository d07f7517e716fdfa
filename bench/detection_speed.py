"""Detection speed and misses: dlib's HOG, today's ``auto`` (HOG, then the CNN where HOG finds none) and YuNet.

    python bench/detection_speed.py [--count N]

Runs ``faceprint.detection.detect_boxes`` (the library's detection step, with its default working
copy and upsampling) on the faces-dev images (LFW, 250x250), one process and one thread: for
each image every detector in turn, so that all of them see the same load. Reports the mean and
median milliseconds per image and the images in which a detector found no face, then the same
for the committed 720p photo (tests/data/faces-hires/resolution), repeated. ``--batches`` times YuNet's
network on batches of equal-size LFW images in one NCHW run against one image a run (same thread).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import common
from faceprint.choices import DetectorName
from faceprint.detection import detect_boxes
from faceprint.image import load_image

DETECTORS: tuple[DetectorName, ...] = ("hog", "auto", "yunet")
PHOTO_720P = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "faces-hires" / "resolution" / "Barack_Obama_720p.jpg"
)
REPEATS_720P = 10


def timed(pixels: np.ndarray, detector: DetectorName) -> tuple[float, int]:
    start = time.perf_counter()
    found = detect_boxes(pixels, detector=detector)
    return (time.perf_counter() - start) * 1000, len(found)


def batched_yunet(images: list[np.ndarray], sizes: list[int], rounds: int = 5) -> None:
    """Milliseconds per image of YuNet's network with ``size`` images a run; the outputs must not change."""
    from faceprint import yunet

    session = yunet.session(1).get()
    blobs = np.concatenate([yunet.blob(pixels) for pixels in images])
    alone = [session.run(None, {"input": blobs[i : i + 1]}) for i in range(len(blobs))]
    print("| images per run | ms per image (best of rounds) |\n| --- | --- |")
    for size in sizes:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            outputs = [session.run(None, {"input": blobs[i : i + size]}) for i in range(0, len(blobs), size)]
            best = min(best, (time.perf_counter() - start) * 1000 / len(blobs))
        # The graph's Reshapes fold the batch into its cells: image k's cells follow image k-1's.
        for first, batch in zip(range(0, len(blobs), size), outputs):
            for k in range(len(batch[0][0]) // len(alone[0][0][0])):
                for part, single in zip(batch, alone[first + k]):
                    cells = single.shape[1]
                    assert np.allclose(part[0, k * cells : (k + 1) * cells], single[0], atol=1e-3)
        print(f"| {size} | {best:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=None, help="first N faces-dev images (default: all)")
    parser.add_argument("--batches", type=int, nargs="+", help="only time YuNet with this many images a run")
    args = parser.parse_args()
    root = common.faces_dev()
    paths, _ = common.read_images(root)
    paths = paths[: args.count]
    if args.batches:
        batched_yunet([load_image(root / path).pixels for path in paths], args.batches)
        return
    for detector in DETECTORS:  # load every model before timing
        timed(load_image(root / paths[0]).pixels, detector)
    times: dict[str, list[float]] = {d: [] for d in DETECTORS}
    missed: dict[str, list[str]] = {d: [] for d in DETECTORS}
    with common.progress_bar(len(paths), "detection") as advance:
        for path in paths:
            pixels = load_image(root / path).pixels
            for detector in DETECTORS:
                ms, faces = timed(pixels, detector)
                times[detector].append(ms)
                if not faces:
                    missed[detector].append(path)
            advance(1)
    photo = load_image(PHOTO_720P).pixels
    photo_ms = {d: statistics.median(timed(photo, d)[0] for _ in range(REPEATS_720P)) for d in DETECTORS}
    print(f"| detector | ms per LFW image, mean (median) | vs auto | no face (of {len(paths):,}) | ms per 720p photo |")
    print("| --- | --- | --- | --- | --- |")
    auto = statistics.mean(times["auto"])
    for detector in DETECTORS:
        mean = statistics.mean(times[detector])
        print(
            f"| {detector} | {mean:.1f} ({statistics.median(times[detector]):.1f}) | {auto / mean:.1f}x "
            f"| {len(missed[detector])} | {photo_ms[detector]:.0f} |"
        )
    for detector in DETECTORS:
        print(f"no face, {detector}: {', '.join(Path(p).name for p in missed[detector]) or 'none'}")


if __name__ == "__main__":
    main()
