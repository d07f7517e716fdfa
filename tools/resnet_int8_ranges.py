"""Record the activation ranges that quantize dlib's ResNet to int8 (src/faceprint/data/dlib-resnet-int8-ranges.json).

Runs the float graph (``faceprint.resnet_onnx``) on the dlib chip of every faces-dev image's main face, as the
fast profile finds it (YuNet, dlib's 5 points), and on its mirror image (the pipeline embeds both), and keeps
each tensor's smallest and largest value (``faceprint.int8.record_ranges``). The table holds numbers only: a
user's machine builds the int8 graph from it offline. Re-run it when ``resnet_onnx.GRAPH_VERSION`` or
``INT8_RECIPE`` changes (``resnet_int8_bytes`` refuses a table recorded for another graph):

    python tools/resnet_int8_ranges.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from faceprint import int8, models, resnet_onnx
from faceprint.detection import detect_boxes
from faceprint.image import load_image
from faceprint.pipeline import locate_face
from faceprint.profiles import FAST

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src" / "faceprint" / "data" / resnet_onnx.INT8_RANGES
BATCH = 32


def main_face_chips(faces_dev: Path) -> Iterator[np.ndarray]:
    """The fast profile's dlib chip of each image's main face (images without a face are skipped)."""
    with open(faces_dev / "images.csv", newline="", encoding="utf-8") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    for path in paths:
        pixels = load_image(faces_dev / path).pixels
        found = detect_boxes(pixels, detector=FAST.detector, upsample=FAST.upsample, max_side=FAST.max_side)
        if found:
            yield np.asarray(locate_face(pixels, found[0], FAST).chip)


def with_mirrors(chips: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    views = chips + [np.ascontiguousarray(chip[:, ::-1]) for chip in chips]
    for start in range(0, len(views), BATCH):
        yield {resnet_onnx.INPUT_NAME: np.stack(views[start : start + BATCH])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    chips = list(main_face_chips(args.shared / "faces-dev"))
    dat = models.model_path(models.DLIB_RESNET.file)
    ranges = int8.record_ranges(resnet_onnx.resnet_onnx_bytes(dat), with_mirrors(chips))
    table = {
        "source_sha256": resnet_onnx.file_sha256(dat),
        "graph_version": resnet_onnx.GRAPH_VERSION,
        "recipe": resnet_onnx.INT8_RECIPE,
        "calibration": f"faces-dev (LFW): the fast profile's dlib chips of {len(chips)} main faces and their mirrors",
        "ranges": {name: [low, high] for name, (low, high) in sorted(ranges.items())},
    }
    OUTPUT.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{len(ranges)} tensors from {len(chips)} faces -> {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
