"""Comparing templates: similarity, distance, and thresholds stated as false-match rates.

Scores are cosine similarities of L2-normalised templates (1 = identical); the Euclidean
distance between them is ``sqrt(2 - 2 * similarity)``. A threshold is never a bare number:
it is read from a calibration table that maps false-match rates (FMR), measured on real
impostor pairs, to similarity thresholds (see ``bench/calibrate.py`` and BENCHMARKS.md).

``operating_point`` is the one decision rule every front end uses (``verify``, ``Gallery.identify``,
video, evaluation, later the HTTP service): which calibration decides, and at which FMR.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .errors import ModelError, UnsupportedFMRError
from .types import Decision, Template, Verification

#: Default operating point: one false match in a thousand impostor comparisons.
DEFAULT_FMR = 1e-3
#: Width of the ``uncertain`` band, as a factor on the FMR either side of the operating point.
UNCERTAIN_FACTOR = 10.0


@dataclass(frozen=True)
class Calibration:
    """Similarity thresholds for a range of false-match rates, measured for one model.

    ``operating_fmr`` is the FMR chosen when the table was measured (``faceprint calibrate
    --fmr``); it is the default operating point wherever this calibration is active.
    """

    model_id: str
    fmrs: tuple[float, ...]
    thresholds: tuple[float, ...]
    source: str
    operating_fmr: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """From the JSON document written by ``bench/calibrate.py`` or ``faceprint calibrate``."""
        try:
            points = sorted(data["points"], key=lambda p: -p["fmr"])
            calibration = cls(
                model_id=data["model_id"],
                fmrs=tuple(float(p["fmr"]) for p in points),
                thresholds=tuple(float(p["threshold"]) for p in points),
                source=data["source"],
                operating_fmr=data.get("operating_fmr"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed calibration ({type(exc).__name__}: {exc})") from None
        if not points:
            raise ModelError(f"calibration from {calibration.source!r} has no operating points")
        return calibration

    def threshold(self, fmr: float) -> float:
        """Similarity above which two faces are declared a match at the given FMR."""
        if not self.fmrs[-1] <= fmr <= self.fmrs[0]:
            raise UnsupportedFMRError(
                f"FMR {fmr:g} is outside the range calibrated for {self.model_id}: "
                f"choose one from {self.fmrs[-1]:g} to {self.fmrs[0]:g}"
            )
        # FMRs are stored decreasing, thresholds increasing: interpolate in log(FMR).
        return float(np.interp(-math.log10(fmr), [-math.log10(f) for f in self.fmrs], self.thresholds))

    def clamped_threshold(self, fmr: float) -> float:
        """``threshold`` at ``fmr`` moved into the calibrated range (for thresholds derived from the operating one)."""
        return self.threshold(min(max(fmr, self.fmrs[-1]), self.fmrs[0]))

    def estimated_fmr(self, similarity: float) -> float:
        """Fraction of impostor pairs scoring at least ``similarity`` (clamped to the table's range)."""
        log_fmr = np.interp(similarity, self.thresholds, [math.log10(f) for f in self.fmrs])
        return float(10.0**log_fmr)

    def band(self, fmr: float) -> tuple[float, float]:
        """Similarities bounding the ``uncertain`` band around the operating point ``fmr``: the
        thresholds at ``fmr * UNCERTAIN_FACTOR`` and ``fmr / UNCERTAIN_FACTOR``, each clamped to the
        calibrated range (at the range's end the band is one-sided)."""
        return self.clamped_threshold(fmr * UNCERTAIN_FACTOR), self.clamped_threshold(fmr / UNCERTAIN_FACTOR)

    def decide(self, similarity: float, fmr: float) -> Decision:
        """``match`` when even the FMR-÷10 threshold is passed, ``no_match`` below the FMR-×10 one,
        ``uncertain`` between (the decision at ``fmr`` itself could go either way on other data)."""
        low, high = self.band(fmr)
        if similarity >= high:
            return "match"
        return "no_match" if similarity < low else "uncertain"


def parse_calibration(text: str, origin: str) -> Calibration:
    """A calibration from its JSON text; ``origin`` (a file or gallery) names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{origin}: calibration is not valid JSON ({exc})") from None
    try:
        return Calibration.from_dict(data)
    except ModelError as exc:
        raise ModelError(f"{origin}: {exc}") from None


@functools.cache
def load_calibration(model_id: str) -> Calibration:
    """The calibration shipped for ``model_id``."""
    try:
        text = resources.files("faceprint.data").joinpath(f"calibration-{model_id}.json").read_text()
    except FileNotFoundError:
        raise ModelError(f"no calibration shipped for model {model_id!r}") from None
    return parse_calibration(text, f"calibration-{model_id}.json")


def similarity(a: Template, b: Template) -> float:
    """Cosine similarity of two templates of the same model."""
    check_same_model(a.model_id, b.model_id)
    return float(np.dot(a.vector, b.vector))


def distance_from_similarity(similarity: float) -> float:
    """Euclidean distance between unit vectors with the given cosine similarity."""
    return math.sqrt(max(2.0 - 2.0 * similarity, 0.0))


def check_same_model(a: str, b: str) -> None:
    if a != b:
        raise ModelError(f"cannot compare templates of different models ({a!r} vs {b!r}); re-embed one side")


@dataclass(frozen=True)
class OperatingPoint:
    """A calibration and the false-match rate it decides at: what every decision is made with."""

    calibration: Calibration
    fmr: float
    #: Similarity from which two faces match at ``fmr``.
    threshold: float

    def decide(self, similarity: float) -> Decision:
        """``match``, ``uncertain`` or ``no_match`` (see ``Calibration.decide``)."""
        return self.calibration.decide(similarity, self.fmr)

    def estimated_fmr(self, similarity: float) -> float:
        return self.calibration.estimated_fmr(similarity)

    def threshold_at(self, factor: float) -> float:
        """The threshold at ``factor`` times this FMR (clamped to the calibrated range): stricter below 1."""
        return self.calibration.clamped_threshold(self.fmr * factor)


def operating_point(model_id: str, *, fmr: float | None = None, stored: Calibration | None = None) -> OperatingPoint:
    """The one decision rule: the calibration ``stored`` in a gallery (``faceprint calibrate``), else the one
    shipped for ``model_id``; decided at ``fmr`` if given, else at the calibration's own operating FMR, else
    at ``DEFAULT_FMR``. An FMR outside the calibrated range raises ``UnsupportedFMRError`` naming the range.

    >>> point = operating_point("dlib-resnet-v1")
    >>> point.fmr, round(point.threshold, 4)
    (0.001, 0.9256)
    """
    calibration = stored or load_calibration(model_id)
    check_same_model(model_id, calibration.model_id)
    if fmr is None:
        fmr = calibration.operating_fmr if calibration.operating_fmr is not None else DEFAULT_FMR
    return OperatingPoint(calibration, fmr, calibration.threshold(fmr))


def compare(
    a: Template, b: Template, *, fmr: float | None = None, calibration: Calibration | None = None
) -> Verification:
    """Verify two templates at the operating point given by ``fmr`` and ``calibration`` (see ``operating_point``)."""
    score = similarity(a, b)
    point = operating_point(a.model_id, fmr=fmr, stored=calibration)
    return Verification(
        distance=distance_from_similarity(score),
        similarity=score,
        match=score >= point.threshold,
        threshold=point.threshold,
        fmr=point.fmr,
        estimated_fmr=point.estimated_fmr(score),
        decision=point.decide(score),
    )
