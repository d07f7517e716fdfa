"""Numerical identity of the ONNX port: dlib's and onnxruntime's descriptors on every faces-dev face.

    python bench/onnx_parity.py [--limit N]

For each image of faces-dev the largest face is aligned once (dlib's get_face_chip) and the
same chip is embedded by dlib-bin and by the ONNX graph; the script prints the largest absolute
difference per dimension over all faces (target: below 1e-4) and the smallest cosine similarity
between the two L2-normalised templates.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import faces_dev, progress_bar, read_images
from faceprint import align
from faceprint.detection import detect_boxes
from faceprint.embedding import descriptors, normalise
from faceprint.image import load_image


def chips_of(paths: list) -> list[np.ndarray]:
    chips = []
    with progress_bar(len(paths), "aligning") as advance:
        for path in paths:
            pixels = load_image(path).pixels
            found = detect_boxes(pixels, detector="hog")
            if found:
                chips.append(align.face_chip(pixels, align.shape(pixels, found[0].box)))
            advance(1)
    return chips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args()
    root = faces_dev()
    chips = chips_of([root / p for p in read_images(root)[0][: args.limit]])
    reference = descriptors(chips, backend="dlib")
    ported = descriptors(chips, backend="onnx")
    difference = np.abs(reference - ported)
    cosine = np.sum(normalise(reference) * normalise(ported), axis=1)
    print("| faces | max abs difference | mean abs difference | min cosine (dlib vs ONNX) |")
    print("| --- | --- | --- | --- |")
    print(f"| {len(chips)} | {difference.max():.2e} | {difference.mean():.2e} | {cosine.min():.9f} |")


if __name__ == "__main__":
    main()
