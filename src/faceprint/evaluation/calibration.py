"""Measuring a calibration: the similarity threshold for each false-match rate, from real pairs.

The document written here is the format of ``faceprint/data/calibration-*.json`` and of the
table ``faceprint calibrate`` stores in a gallery (``faceprint.match.Calibration`` reads both).
"""

from __future__ import annotations

import datetime
from importlib import metadata
from typing import Any

import numpy as np

from .metrics import MIN_ERRORS

#: The grid of FMRs a calibration tries to cover; each is kept only where the data supports it.
TARGET_FMRS = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6])
THRESHOLD_RULE = (
    "match when similarity >= threshold; threshold midway between the k-th and (k+1)-th highest impostor score, "
    "k = largest count within fmr of all impostor pairs"
)
_BOOTSTRAPS = 200
_SEED = 20240613


def all_pairs(vectors: np.ndarray, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair of faces: (scores, same-identity flags, index a, index b)."""
    a, b = np.triu_indices(len(vectors), k=1)
    scores = (vectors.astype(np.float64) @ vectors.T.astype(np.float64))[a, b]
    return scores, identity[a] == identity[b], a, b


def supported_fmrs(impostor_pairs: int, min_false_matches: int = MIN_ERRORS) -> np.ndarray:
    """The grid FMRs at which at least ``min_false_matches`` impostor pairs are expected above the threshold."""
    return TARGET_FMRS[TARGET_FMRS * impostor_pairs >= min_false_matches]


def thresholds_at(descending: np.ndarray, weights: np.ndarray, fmrs: np.ndarray) -> np.ndarray:
    """Threshold for each FMR: the weighted share of impostors scoring at or above it stays within the FMR."""
    share = np.cumsum(weights) / weights.sum()
    within = np.maximum(np.searchsorted(share, fmrs, side="right"), 1)
    return (descending[within - 1] + descending[np.minimum(within, len(descending) - 1)]) / 2


def fnmr_at(descending: np.ndarray, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Weighted share of genuine pairs scoring below each threshold."""
    above = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    accepted = np.searchsorted(-descending, -thresholds, side="right")
    return np.maximum(1.0 - above[accepted], 0.0)


def round_up(thresholds: np.ndarray) -> np.ndarray:
    """Thresholds stored with 6 decimals, rounded up so a stored threshold never lets more impostors through."""
    return np.ceil(thresholds * 1e6) / 1e6


def calibration_points(impostors: np.ndarray, genuines: np.ndarray, fmrs: np.ndarray) -> list[dict[str, Any]]:
    """Threshold, false-match count and FNMR at each FMR, with 90% bootstrap intervals over pairs."""
    impostors, genuines = np.sort(impostors)[::-1], np.sort(genuines)[::-1]
    thresholds = round_up(thresholds_at(impostors, np.ones(len(impostors)), fmrs))
    fnmr = fnmr_at(genuines, np.ones(len(genuines)), thresholds)
    false_matches = np.searchsorted(-impostors, -thresholds, side="right")
    rng = np.random.default_rng(_SEED)
    # A resample of pairs is a multinomial count per pair: the same sorted arrays, other weights.
    drawn = [
        thresholds_at(impostors, rng.multinomial(len(impostors), np.full(len(impostors), 1 / len(impostors))), fmrs)
        for _ in range(_BOOTSTRAPS)
    ]
    drawn_fnmr = [
        fnmr_at(genuines, rng.multinomial(len(genuines), np.full(len(genuines), 1 / len(genuines))), t) for t in drawn
    ]
    threshold_ci, fnmr_ci = np.percentile(drawn, [5, 95], axis=0), np.percentile(drawn_fnmr, [5, 95], axis=0)
    return [
        {
            "fmr": float(fmr),
            "threshold": _round(thresholds[i]),
            "false_matches": int(false_matches[i]),
            "threshold_90ci": [_round(v) for v in threshold_ci[:, i]],
            "fnmr": _round(fnmr[i]),
            "fnmr_90ci": [_round(v) for v in fnmr_ci[:, i]],
        }
        for i, fmr in enumerate(fmrs)
    ]


def _round(value: float) -> float:
    return round(float(value), 6)


def calibration_document(
    impostors: np.ndarray,
    genuines: np.ndarray,
    *,
    model_id: str,
    source: str,
    pipeline: str,
    operating_fmr: float | None,
    min_false_matches: int = MIN_ERRORS,
) -> dict[str, Any]:
    """A calibration JSON document from genuine and impostor similarity scores (finite ones only)."""
    fmrs = supported_fmrs(len(impostors), min_false_matches)
    return {
        "model_id": model_id,
        "source": source,
        "created": datetime.date.today().isoformat(),
        "faceprint_version": metadata.version("faceprint"),
        "pipeline": pipeline,
        "pairs": {"impostor": len(impostors), "genuine": len(genuines)},
        "threshold_rule": THRESHOLD_RULE,
        "min_false_matches": min_false_matches,
        "operating_fmr": operating_fmr,
        "points": calibration_points(impostors, genuines, fmrs) if len(fmrs) else [],
    }
