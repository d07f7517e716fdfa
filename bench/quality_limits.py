"""How the enrollment quality limits fall on real photos: percentiles of each measure on
faces-dev (every third image) and how many faces each limit refuses.

    python bench/quality_limits.py
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from common import faces_dev, read_images
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, find_faces

MEASURES = ("face_size", "sharpness", "brightness", "contrast", "yaw")


def main() -> None:
    root = faces_dev()
    paths = read_images(root)[0][::3]
    options = dataclasses.replace(DEFAULT_OPTIONS, detector="hog")
    values, refused = [], Counter()
    for path in paths:
        faces = find_faces([load_image(root / path).pixels], options, embed=False)[0]
        if faces:
            quality = faces[0].quality
            values.append([getattr(quality, m) for m in MEASURES])
            refused.update(problem.split(" (")[0] for problem in quality.problems)
    table = np.array(values)
    print(f"{len(table)} faces from {len(paths)} faces-dev images (every third), HOG detector\n")
    print("| measure | 1% | 5% | 50% | 95% | 99% |")
    print("| --- | --- | --- | --- | --- | --- |")
    for column, measure in enumerate(MEASURES):
        cells = " | ".join(f"{v:.1f}" for v in np.percentile(table[:, column], [1, 5, 50, 95, 99]))
        print(f"| {measure} | {cells} |")
    print("\n| refused as | faces | share |\n| --- | --- | --- |")
    for reason, count in refused.most_common():
        print(f"| {reason} | {count} | {count / len(table):.1%} |")


if __name__ == "__main__":
    main()
