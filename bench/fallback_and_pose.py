"""Two changes of issue 15 on every faces-dev photo: the bounded CNN fallback (on the photos where HOG
finds no face, does it still find the one the unbounded fallback found?) and the pose the quality gate
uses (how many main faces the 5-point yaw estimate puts over the limit, and how many the 68-point pose).

    python bench/fallback_and_pose.py
"""

from __future__ import annotations

import time

from common import faces_dev, read_images
from faceprint import align
from faceprint.detection import _fallback_cnn, _run_cnn, _run_hog, detect_boxes
from faceprint.image import load_image
from faceprint.pose import head_pose
from faceprint.quality import DEFAULT_THRESHOLDS

LIMIT = DEFAULT_THRESHOLDS.max_abs_yaw


def main() -> None:
    root = faces_dev()
    paths, _ = read_images(root)
    misses, over5, over68 = [], 0, 0
    for path in paths:
        pixels = load_image(root / path).pixels
        if not _run_hog(pixels, 1):  # what "auto" runs first on a 250x250 photo
            misses.append(pixels)
            continue
        box = detect_boxes(pixels, detector="hog")[0].box
        size = (pixels.shape[1], pixels.shape[0])
        if abs(head_pose(align.points_array(align.shape(pixels, box, 5)), size).yaw) > LIMIT:
            over5 += 1
            over68 += abs(head_pose(align.points_array(align.shape(pixels, box, 68)), size).yaw) > LIMIT
    print(f"{len(paths)} photos; HOG finds a face in {len(paths) - len(misses)}")
    print(f"main face over the yaw limit ({LIMIT:.0f} deg): {over5} by the 5-point estimate, {over68} by the 68 points")
    for name, fallback in (
        ("unbounded (upsample 1)", lambda p: _run_cnn(p, 1)),
        ("bounded", lambda p: _fallback_cnn(p, 1)),
    ):
        started = time.perf_counter()
        found = sum(bool(fallback(pixels)) for pixels in misses)
        seconds = (time.perf_counter() - started) / max(len(misses), 1)
        print(f"CNN fallback, {name}: a face in {found} of the {len(misses)} photos HOG missed, {seconds:.2f} s each")


if __name__ == "__main__":
    main()
