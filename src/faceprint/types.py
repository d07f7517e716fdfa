"""Small immutable result types shared by every stage of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

#: A graded decision: ``match`` and ``no_match`` are clear of the operating threshold by a
#: factor 10 in false-match rate either way; ``uncertain`` lies between (see ``faceprint.match``).
Decision = Literal["match", "uncertain", "no_match"]


@dataclass(frozen=True)
class Box:
    """A face box in image pixels: ``left``/``top`` inclusive, ``right``/``bottom`` exclusive."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def scaled(self, factor: float) -> Box:
        return Box(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def as_tuple(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)``."""
        return (self.left, self.top, self.right, self.bottom)

    def iou(self, other: Box) -> float:
        """Intersection over union with another box."""
        inter = Box(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )
        if inter.width <= 0 or inter.height <= 0:
            return 0.0
        return inter.area / (self.area + other.area - inter.area)


@dataclass(frozen=True)
class Quality:
    """How usable a face is for recognition; see ``faceprint.quality`` for the thresholds.

    ``face_size`` is the box width in source pixels, ``sharpness`` the variance of the
    Laplacian of the aligned grey chip, ``brightness``/``contrast`` the mean/std of its grey
    levels (0-255), ``yaw``/``roll`` head angles in degrees estimated from the landmarks
    (positive yaw: the face turns towards the image's right), ``score`` an overall 0-1 figure.
    """

    face_size: float
    sharpness: float
    brightness: float
    contrast: float
    yaw: float
    roll: float
    score: float
    problems: tuple[str, ...] = ()

    @property
    def acceptable(self) -> bool:
        """True when no threshold is violated (good enough to enroll)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_size": round(self.face_size, 1),
            "sharpness": round(self.sharpness, 1),
            "brightness": round(self.brightness, 1),
            "contrast": round(self.contrast, 1),
            "yaw": round(self.yaw, 1),
            "roll": round(self.roll, 1),
            "score": round(self.score, 3),
            "problems": list(self.problems),
        }


# --- Face attributes (computed by faceprint.attributes and faceprint.pose) ---------------------


@dataclass(frozen=True)
class HeadPose:
    """Head angles in degrees (signs: see ``faceprint.pose``); ``pitch`` is None from 5 points."""

    yaw: float
    pitch: float | None
    roll: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "yaw": round(self.yaw, 1),
            "pitch": None if self.pitch is None else round(self.pitch, 1),
            "roll": round(self.roll, 1),
        }


@dataclass(frozen=True)
class Age:
    """Apparent age in years; ``low``-``high`` holds 80% of the model's belief (10th-90th percentile);
    ``confidence`` is its probability of the age being within 5 years of ``years``."""

    years: float
    confidence: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "years": round(self.years, 1),
            "confidence": round(self.confidence, 3),
            "low": round(self.low, 1),
            "high": round(self.high, 1),
        }


@dataclass(frozen=True)
class Gender:
    """Apparent gender (``female`` or ``male``, the model's only classes) and its probability."""

    label: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": round(self.confidence, 3)}


@dataclass(frozen=True)
class Expression:
    """The most likely of fer's 7 expressions, its probability, and every class's probability."""

    label: str
    confidence: float
    scores: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 3),
            "scores": {k: round(v, 3) for k, v in self.scores.items()},
        }


@dataclass(frozen=True)
class Attributes:
    """What was asked of one face; attributes not requested are None.

    The fields follow ``faceprint.attributes.ATTRIBUTES``, whose order ``to_dict`` keeps.
    """

    age: Age | None = None
    gender: Gender | None = None
    expression: Expression | None = None
    pose: HeadPose | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: value.to_dict() for f in fields(self) if (value := getattr(self, f.name)) is not None}

    def summary(self) -> str:
        """A short label such as ``male, 34 y, happy``."""
        parts = []
        if self.gender:
            parts.append(self.gender.label)
        if self.age:
            parts.append(f"{self.age.years:.0f} y")
        if self.expression:
            parts.append(self.expression.label)
        if self.pose:
            parts.append(f"yaw {self.pose.yaw:+.0f}")
        return ", ".join(parts)


@dataclass(frozen=True, eq=False)
class Template:
    """An L2-normalised face embedding, tagged with the model that produced it."""

    vector: np.ndarray
    model_id: str


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face with everything the pipeline knows about it.

    ``landmarks`` are the 5 dlib points (x, y) in source pixels: two corners of each eye,
    then the base of the nose. ``landmarks68`` is set only when 68 points were requested.
    ``confidence`` is the detector's own score (HOG margin or CNN confidence).
    ``attributes`` (age, gender, expression, pose) is set only when attributes were requested.
    """

    box: Box
    confidence: float
    detector: str
    landmarks: np.ndarray
    quality: Quality
    template: Template | None = None
    landmarks68: np.ndarray | None = field(default=None, repr=False)
    attributes: Attributes | None = None

    def to_dict(self) -> dict[str, Any]:
        result = {
            "box": [round(v, 1) for v in self.box.as_tuple()],
            "confidence": round(self.confidence, 3),
            "detector": self.detector,
            "landmarks": np.round(self.landmarks, 1).tolist(),
            "quality": self.quality.to_dict(),
        }
        if self.attributes is not None:
            result["attributes"] = self.attributes.to_dict()
        return result


@dataclass(frozen=True)
class Verification:
    """The answer to "are these two faces the same person?".

    ``match`` is the yes/no answer at the operating point ``fmr``; ``decision`` grades it:
    ``uncertain`` when the similarity is within a factor 10 of FMR of the threshold.
    """

    distance: float
    similarity: float
    match: bool
    threshold: float
    fmr: float
    estimated_fmr: float
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "decision": self.decision,
            "similarity": round(self.similarity, 4),
            "distance": round(self.distance, 4),
            "threshold": round(self.threshold, 4),
            "operating_fmr": self.fmr,
            "estimated_fmr": self.estimated_fmr,
        }


@dataclass(frozen=True)
class Candidate:
    """One gallery person ranked for a probe face; ``decision`` grades its ``score`` at the gallery's
    identification point (None where no calibration was applied). The score is the similarity plus the search's
    ``offset`` (``faceprint.match.IdentificationPoint.offset``: the cohort's, 0 where the point has none)."""

    person_id: int
    name: str
    similarity: float
    estimated_fmr: float
    decision: Decision | None = None
    offset: float = 0.0

    @property
    def score(self) -> float:
        """What the identification point's thresholds apply to."""
        return self.similarity + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "similarity": round(self.similarity, 4),
            "score": round(self.score, 4),
            "estimated_fmr": self.estimated_fmr,
            "decision": self.decision,
        }


UNKNOWN = "unknown"


@dataclass(frozen=True)
class TemplateIdentification:
    """The decision for one template searched without its face (``Gallery.identify_templates``); see
    ``Identification`` for what the fields mean."""

    candidates: tuple[Candidate, ...]
    match: Candidate | None
    threshold: float | None
    decision: Decision
    fpir: float
    #: Why the face is not named, or named only with doubt (None for a plain match).
    reason: str | None = None
    #: What ``threshold`` was read from (``IdentificationPoint.basis``): the gallery's own measurement, or the bound
    #: for its size while that measurement is missing or stale (and whether it is being measured anew).
    basis: str | None = None

    @property
    def name(self) -> str:
        return self.match.name if self.match else UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decision": self.decision,
            "reason": self.reason,
            "person_id": self.match.person_id if self.match else None,
            "similarity": round(self.match.similarity, 4) if self.match else None,
            "score": round(self.match.score, 4) if self.match else None,
            "fpir": self.fpir,
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "basis": self.basis,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True, eq=False, kw_only=True)
class Identification(TemplateIdentification):
    """The decision for one face of a probe image, made at a false-positive identification rate (FPIR:
    the chance that a person who is not enrolled is given an enrolled name, at this gallery's size).

    ``decision``: ``match`` (named, and the score passes even the threshold at ``fpir`` / 10), ``uncertain``
    (the score lies between the thresholds at ``fpir`` x 10 and ``fpir`` / 10: named when it passes the one
    at ``fpir``; or the face is not named for a ``reason`` although its best candidate passes, e.g. low
    quality, or the target FPIR cannot be promised at this gallery's size), ``no_match`` (unknown: below the
    threshold at ``fpir`` x 10, or refused). ``threshold`` is what ``fpir`` implied (None: unsupported); it applies
    to a candidate's ``score`` (``Candidate.score``: the similarity moved by the search's cohort offset).
    """

    face: Face

    def to_dict(self) -> dict[str, Any]:
        decided = super().to_dict()
        candidates = decided.pop("candidates")
        return {**decided, "face": self.face.to_dict(), "candidates": candidates}
