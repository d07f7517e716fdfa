"""Comparing templates: similarity, distance, and thresholds stated as false-match rates.

Scores are cosine similarities of L2-normalised templates (1 = identical); the Euclidean
distance between them is ``sqrt(2 - 2 * similarity)``. A threshold is never a bare number:
it is read from a calibration table that maps false-match rates (FMR), measured on real
impostor pairs, to similarity thresholds (see ``bench/calibrate.py`` and BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .errors import ModelError
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
            raise ModelError(
                f"FMR {fmr:g} is outside the range calibrated for {self.model_id} "
                f"({self.fmrs[-1]:g}..{self.fmrs[0]:g}; calibration: {self.source})"
            )
        # FMRs are stored decreasing, thresholds increasing: interpolate in log(FMR).
        return float(np.interp(-math.log10(fmr), [-math.log10(f) for f in self.fmrs], self.thresholds))

    def estimated_fmr(self, similarity: float) -> float:
        """Fraction of impostor pairs scoring at least ``similarity`` (clamped to the table's range)."""
        log_fmr = np.interp(similarity, self.thresholds, [math.log10(f) for f in self.fmrs])
        return float(10.0**log_fmr)

    def band(self, fmr: float) -> tuple[float, float]:
        """Similarities bounding the ``uncertain`` band around the operating point ``fmr``: the
        thresholds at ``fmr * UNCERTAIN_FACTOR`` and ``fmr / UNCERTAIN_FACTOR``, each clamped to the
        calibrated range (at the range's end the band is one-sided)."""
        loose = min(fmr * UNCERTAIN_FACTOR, self.fmrs[0])
        strict = max(fmr / UNCERTAIN_FACTOR, self.fmrs[-1])
        return self.threshold(loose), self.threshold(strict)

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


def compare(
    a: Template, b: Template, *, fmr: float | None = None, calibration: Calibration | None = None
) -> Verification:
    """Verify two templates at the operating point ``fmr`` of ``calibration`` (default: the shipped one).

    Without ``fmr``, the calibration's own operating point is used, else ``DEFAULT_FMR``.
    """
    score = similarity(a, b)
    calibration = calibration or load_calibration(a.model_id)
    check_same_model(a.model_id, calibration.model_id)
    fmr = operating_fmr(calibration, fmr)
    threshold = calibration.threshold(fmr)
    return Verification(
        distance=distance_from_similarity(score),
        similarity=score,
        match=score >= threshold,
        threshold=threshold,
        fmr=fmr,
        estimated_fmr=calibration.estimated_fmr(score),
        decision=calibration.decide(score, fmr),
    )


def operating_fmr(calibration: Calibration, fmr: float | None) -> float:
    """``fmr`` if given, else the calibration's operating point, else ``DEFAULT_FMR``."""
    if fmr is not None:
        return fmr
    return calibration.operating_fmr if calibration.operating_fmr is not None else DEFAULT_FMR
