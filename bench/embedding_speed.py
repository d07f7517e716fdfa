"""Embedding speed: dlib's ResNet in dlib-bin vs the same network on onnxruntime (``faceprint.resnet_onnx``).

    python bench/embedding_speed.py [--repeats 3] [--faces 16]

Chips are the faces found in the committed faces-hires photos. Batch-1 latency is the median
time of one-chip calls over ``--faces`` chips x ``--repeats``; batched throughput is faces per
second of the best of ``--repeats`` calls on 32 chips (the chips repeated to fill the batch).
dlib-bin has no BLAS and runs single-threaded, so it has one row; onnxruntime runs with 1 and 2
intra-op threads. The last column is the largest absolute difference from dlib's descriptors.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dlib
import numpy as np
import onnxruntime

from faceprint import align, models
from faceprint.detection import detect_boxes
from faceprint.image import load_image
from faceprint.resnet_onnx import OnnxResnet

HIRES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces-hires"
BATCH = 32
THREADS = (1, 2)
HEADER = (
    "| backend | threads | batch-1 latency (ms/face) | batch-32 throughput (faces/s) "
    "| speed-up vs dlib (batch 1 / 32) | max abs diff vs dlib |"
)

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]


def face_chips() -> list[np.ndarray]:
    """Aligned 150x150 chips of every face in the committed photos."""
    chips = []
    for path in sorted(HIRES.glob("*/*.jpg")):
        pixels = load_image(path).pixels
        chips += [align.face_chip(pixels, align.shape(pixels, d.box)) for d in detect_boxes(pixels)]
    return chips


def dlib_embed(chips: Sequence[np.ndarray]) -> np.ndarray:
    return np.array(models.dlib_embedder().compute_face_descriptor(list(chips)), dtype=np.float32)


def latency_ms(embed: Embed, chips: Sequence[np.ndarray], repeats: int) -> float:
    """Median milliseconds of a one-chip call."""
    times = []
    for _ in range(repeats):
        for chip in chips:
            start = time.perf_counter()
            embed([chip])
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def throughput(embed: Embed, batch: Sequence[np.ndarray], repeats: int) -> float:
    """Faces per second of the fastest of ``repeats`` batched calls (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embed(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--faces", type=int, default=16, help="chips timed one at a time")
    args = parser.parse_args()

    chips = face_chips()
    batch = (chips * (BATCH // len(chips) + 1))[:BATCH]
    reference = dlib_embed(chips)
    backends: list[tuple[str, int, Embed]] = [(f"dlib-bin {dlib.__version__}", 1, dlib_embed)]
    backends += [(f"onnxruntime {onnxruntime.__version__}", t, OnnxResnet(threads=t).embed) for t in THREADS]

    machine = platform.processor() or platform.machine()
    print(f"{len(chips)} face chips; {machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    print(HEADER)
    print("|---|---|---|---|---|---|")
    base: tuple[float, float] | None = None
    for name, threads, embed in backends:
        embed(chips[:1])  # warm-up: session creation, first-run allocations
        latency = latency_ms(embed, chips[: args.faces], args.repeats)
        rate = throughput(embed, batch, args.repeats)
        base = base or (latency, rate)
        difference = float(np.abs(embed(chips) - reference).max())
        print(
            f"| {name} | {threads} | {latency:.1f} | {rate:.1f} | "
            f"{base[0] / latency:.1f}x / {rate / base[1]:.1f}x | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
