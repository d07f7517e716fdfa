"""faceprint.compat.face_recognition against the real face_recognition, in the same run.

    python bench/compat.py --real-python /tmp/frvenv/bin/python [--count 200] [--rounds 2]

``--real-python`` is an interpreter with the real face_recognition (face-recognition-ng, see
tools/face_recognition_fixtures.py for the throw-away environment). Each side runs this file's
worker in its own process, on the first ``--count`` faces-dev photos, with the same calls a user
makes per photo: ``face_locations(image)`` (HOG, upsampled once, the default), then
``face_encodings(image, known_face_locations=locations)``. One untimed call loads the models
first. The rounds alternate the two sides; each figure is the best round's. The workers'
results are compared too: locations identical, largest encoding difference.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COMPAT = "faceprint.compat.face_recognition"
REAL = "face_recognition"


def worker(module_name: str, photos: list[str], output: Path) -> None:
    """Time both calls per photo with ``module_name``; write the times, locations and encodings."""
    face_recognition = importlib.import_module(module_name)
    images = [face_recognition.load_image_file(photo) for photo in photos]
    face_recognition.face_encodings(images[0])  # loads every model
    located = encoded = 0.0
    locations, encodings = [], []
    for image in images:
        start = time.perf_counter()
        found = face_recognition.face_locations(image)
        middle = time.perf_counter()
        vectors = face_recognition.face_encodings(image, known_face_locations=found)
        located += middle - start
        encoded += time.perf_counter() - middle
        locations.append(found)
        encodings += vectors
    np.savez(output, encodings=np.array(encodings).reshape(-1, 128), times=np.array([located, encoded]))
    output.with_suffix(".json").write_text(json.dumps([[list(box) for box in found] for found in locations]))


def faces_dev_photos(count: int) -> list[str]:
    root = Path(os.environ.get("FACEPRINT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    images = root / "faces-dev" / "images.csv"
    if not images.is_file():
        raise SystemExit(f"faces-dev not found at {images.parent}; set FACEPRINT_SHARED_DATA")
    with open(images, newline="", encoding="utf-8") as f:
        return [str(images.parent / row["path"]) for row in list(csv.DictReader(f))[:count]]


def run_side(python: str, module_name: str, photos: list[str], folder: Path) -> dict:
    output = folder / f"{module_name}.npz"
    listing = folder / "photos.txt"
    listing.write_text("\n".join(photos))
    command = [python, __file__, "--worker", module_name, "--photos", str(listing), "--output", str(output)]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    with np.load(output) as arrays:
        located, encoded = arrays["times"]
        return {
            "located": located,
            "encoded": encoded,
            "encodings": arrays["encodings"],
            "locations": json.loads(output.with_suffix(".json").read_text()),
        }


def compare(photos: list[str], python: str, rounds: int) -> None:
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for module_name, interpreter in ((REAL, python), (COMPAT, sys.executable)):
                side = run_side(interpreter, module_name, photos, Path(folder))
                kept = best.setdefault(module_name, side)
                for key in ("located", "encoded"):
                    kept[key] = min(kept[key], side[key])
    real, compat = best[REAL], best[COMPAT]
    faces = len(real["encodings"])
    same_locations = real["locations"] == compat["locations"]
    difference = np.abs(real["encodings"] - compat["encodings"]).max() if same_locations else float("nan")
    print(
        f"{len(photos)} photos, {faces} faces; locations identical: {same_locations}; "
        f"largest encoding difference: {difference:.1e}"
    )
    print("| | face_locations (ms/photo) | face_encodings, locations given (ms/face) | end to end (ms/photo) |")
    print("| --- | --- | --- | --- |")
    for name, side in (("face_recognition 1.4 (dlib)", real), ("faceprint.compat (ONNX)", compat)):
        print(
            f"| {name} | {1000 * side['located'] / len(photos):.1f} | {1000 * side['encoded'] / faces:.1f} "
            f"| {1000 * (side['located'] + side['encoded']) / len(photos):.1f} |"
        )
    print(
        f"| speed-up | {real['located'] / compat['located']:.2f}x | **{real['encoded'] / compat['encoded']:.1f}x** "
        f"| {(real['located'] + real['encoded']) / (compat['located'] + compat['encoded']):.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-python", help="an interpreter with the real face_recognition installed")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--photos", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.photos.read_text().splitlines(), args.output)
    elif not args.real_python:
        parser.error("--real-python is required")
    else:
        compare(faces_dev_photos(args.count), args.real_python, args.rounds)


if __name__ == "__main__":
    main()
