"""Every closed choice of faceprint, as a ``Literal`` type and the tuple of its values.

One source of truth: the library checks a choice against these, and Typer turns the same types
into the CLI's help and validation. No dependencies, so a front end imports it for free.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

#: Face detector: dlib's HOG, its CNN, ``auto`` (HOG, then the CNN where HOG finds none), or the
#: OpenCV Zoo's YuNet (with 5 landmarks of its own).
DetectorName = Literal["hog", "cnn", "auto", "yunet"]
DETECTORS: tuple[DetectorName, ...] = get_args(DetectorName)

#: What runs the ResNet embedding: faceprint's ONNX conversion, or dlib itself (the reference).
Backend = Literal["onnx", "dlib"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)

#: The precision dlib's ResNet runs at on onnxruntime: float, or its int8 graph (about twice as fast on a CPU,
#: templates of the same model; faceprint.int8).
Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

#: Which 5 points align a face for a model on the ArcFace template (SFace): the detector's own where it
#: gives them (YuNet), else dlib's 68-point fit reduced to 5; or always the latter.
AlignmentPoints = Literal["detector", "dlib68"]
ALIGNMENT_POINTS: tuple[AlignmentPoints, ...] = get_args(AlignmentPoints)

#: A pipeline profile (``faceprint.profiles``): ``accurate`` (YuNet, dlib's ResNet and SFace fused: the default),
#: ``fast`` (YuNet + dlib's ResNet, int8) or ``classic`` (HOG/CNN + dlib's ResNet: the former default, 128-d templates).
ProfileName = Literal["fast", "accurate", "classic"]
PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)

#: How much of a decision's evidence a result shows (``faceprint.match.disclose``): every score, each score only as
#: the calibration band it falls in, or the decision alone; from most to least detailed.
Disclosure = Literal["scores", "bands", "decisions"]
DISCLOSURES: tuple[Disclosure, ...] = get_args(Disclosure)

#: Face attributes that ``faceprint.analyze`` can estimate.
AttributeName = Literal["age", "gender", "expression", "pose"]
ATTRIBUTES: tuple[AttributeName, ...] = get_args(AttributeName)


def check_names(names: Iterable[str]) -> tuple[AttributeName, ...]:
    """The requested attribute names in canonical order; ValueError names any unknown one."""
    wanted = [name.strip().lower() for name in names]
    unknown = [name for name in wanted if name not in ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)}: choose from {', '.join(ATTRIBUTES)}")
    return tuple(name for name in ATTRIBUTES if name in wanted)


#: Which faces enrollment refuses for their quality: ``none``, ``auto`` (the pipeline's thresholds, the default)
#: or ``strict`` (``faceprint.quality.STRICT_THRESHOLDS``, for reference photos taken on purpose).
QualityFilter = Literal["none", "auto", "strict"]
QUALITY_FILTERS: tuple[QualityFilter, ...] = get_args(QualityFilter)

#: What an API key of the service may do: ``recognize`` (recognize, verify, detect, analyze), ``enroll`` (add
#: and remove people and faces), ``read`` (list and describe), ``admin`` (create and delete collections, audit).
Scope = Literal["recognize", "enroll", "read", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

#: How a gallery is searched: ``auto`` (exact below a size, HNSW from there on), ``exact`` or ``hnsw``.
Mode = Literal["auto", "exact", "hnsw"]
MODES: tuple[Mode, ...] = get_args(Mode)

#: How vectors are stored in an HNSW graph: float32 (exact scores), float16 (half the memory), int8 (a quarter).
Storage = Literal["f32", "f16", "i8"]
STORAGES: tuple[Storage, ...] = get_args(Storage)

#: How anonymization hides a face.
Method = Literal["blur", "pixelate", "mask"]
METHODS: tuple[Method, ...] = get_args(Method)

#: How a video is searched for faces to hide (faceprint.privacy.ANONYMIZERS).
AnonymizeMode = Literal["yunet", "thorough", "fast"]
ANONYMIZE_MODES: tuple[AnonymizeMode, ...] = get_args(AnonymizeMode)

#: What a liveness clip asks the person to do.
Challenge = Literal["blink", "turn-left", "turn-right"]
CHALLENGES: tuple[Challenge, ...] = get_args(Challenge)
