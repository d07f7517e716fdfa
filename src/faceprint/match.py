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

import numpy as np

from .errors import ModelError
from .types import Template, Verification

#: Default operating point: one false match in a thousand impostor comparisons.
DEFAULT_FMR = 1e-3


@dataclass(frozen=True)
class Calibration:
    """Similarity thresholds for a range of false-match rates, measured for one model."""

    model_id: str
    fmrs: tuple[float, ...]
    thresholds: tuple[float, ...]
    source: str

    def threshold(self, fmr: float) -> float:
        """Similarity above which two faces are declared a match at the given FMR."""
        if not self.fmrs[-1] <= fmr <= self.fmrs[0]:
            raise ValueError(f"FMR {fmr:g} is outside the calibrated range {self.fmrs[-1]:g}..{self.fmrs[0]:g}")
        # FMRs are stored decreasing, thresholds increasing: interpolate in log(FMR).
        return float(np.interp(-math.log10(fmr), [-math.log10(f) for f in self.fmrs], self.thresholds))

    def estimated_fmr(self, similarity: float) -> float:
        """Fraction of impostor pairs scoring at least ``similarity`` (clamped to the table's range)."""
        log_fmr = np.interp(similarity, self.thresholds, [math.log10(f) for f in self.fmrs])
        return float(10.0**log_fmr)


@functools.cache
def load_calibration(model_id: str) -> Calibration:
    """The calibration shipped for ``model_id``."""
    try:
        text = resources.files("faceprint.data").joinpath(f"calibration-{model_id}.json").read_text()
    except FileNotFoundError:
        raise ModelError(f"no calibration shipped for model {model_id!r}") from None
    data = json.loads(text)
    points = sorted(data["points"], key=lambda p: -p["fmr"])
    return Calibration(
        model_id=data["model_id"],
        fmrs=tuple(p["fmr"] for p in points),
        thresholds=tuple(p["threshold"] for p in points),
        source=data["source"],
    )


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


def compare(a: Template, b: Template, *, fmr: float = DEFAULT_FMR) -> Verification:
    """Verify two templates at the operating point ``fmr``."""
    score = similarity(a, b)
    calibration = load_calibration(a.model_id)
    threshold = calibration.threshold(fmr)
    return Verification(
        distance=distance_from_similarity(score),
        similarity=score,
        match=score >= threshold,
        threshold=threshold,
        fmr=fmr,
        estimated_fmr=calibration.estimated_fmr(score),
    )
