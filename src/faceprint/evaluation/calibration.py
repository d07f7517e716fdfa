"""Measuring a calibration: the similarity threshold for each false-match rate, from real pairs.

The document written here is the format of ``faceprint/data/calibration-*.json`` and of the
table ``faceprint calibrate`` stores in a gallery (``faceprint.match.Calibration`` reads both).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ScoredPairs:
    """Similarities of pairs of one kind (genuine or impostor), with the identity code of each side
    where the people are known (a folder per person), so that intervals can resample people."""

    scores: np.ndarray
    identity_a: np.ndarray | None = None
    identity_b: np.ndarray | None = None

    def sorted(self) -> ScoredPairs:
        """Highest score first."""
        order = np.argsort(-self.scores, kind="stable")
        if self.identity_a is None or self.identity_b is None:
            return ScoredPairs(self.scores[order])
        return ScoredPairs(self.scores[order], self.identity_a[order], self.identity_b[order])

    def resampled_weights(self, rng: np.random.Generator, drawn: np.ndarray | None) -> np.ndarray:
        """Weight of each pair in a bootstrap resample: its identities' draw counts multiplied (an identity
        drawn m times counts m times), or a multinomial count per pair when identities are unknown."""
        if drawn is None or self.identity_a is None or self.identity_b is None:
            return rng.multinomial(len(self.scores), np.full(len(self.scores), 1 / len(self.scores))).astype(float)
        same = self.identity_a == self.identity_b
        return np.where(same, drawn[self.identity_a], drawn[self.identity_a] * drawn[self.identity_b])


def calibration_points(impostors: ScoredPairs, genuines: ScoredPairs, fmrs: np.ndarray) -> list[dict[str, Any]]:
    """Threshold, false-match count and FNMR at each FMR, with 90% bootstrap intervals.

    Pairs that share people are not independent: where identities are known the bootstrap resamples
    people (the honest interval), otherwise pairs (narrower than the truth).
    """
    impostors, genuines = impostors.sorted(), genuines.sorted()
    thresholds = round_up(thresholds_at(impostors.scores, np.ones(len(impostors.scores)), fmrs))
    fnmr = fnmr_at(genuines.scores, np.ones(len(genuines.scores)), thresholds)
    false_matches = np.searchsorted(-impostors.scores, -thresholds, side="right")
    rng = np.random.default_rng(_SEED)
    people = _identity_count(impostors, genuines)
    drawn_thresholds, drawn_fnmr = [], []
    for _ in range(_BOOTSTRAPS):
        drawn = rng.multinomial(people, np.full(people, 1 / people)).astype(float) if people else None
        found = thresholds_at(impostors.scores, impostors.resampled_weights(rng, drawn), fmrs)
        drawn_thresholds.append(found)
        drawn_fnmr.append(fnmr_at(genuines.scores, genuines.resampled_weights(rng, drawn), found))
    threshold_ci = np.percentile(drawn_thresholds, [5, 95], axis=0)
    fnmr_ci = np.percentile(drawn_fnmr, [5, 95], axis=0)
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


def _identity_count(*kinds: ScoredPairs) -> int:
    """Number of identity codes used (0 when any kind lacks them)."""
    if any(k.identity_a is None or k.identity_b is None for k in kinds):
        return 0
    return int(max(max(k.identity_a.max(initial=0), k.identity_b.max(initial=0)) for k in kinds)) + 1


def _round(value: float) -> float:
    return round(float(value), 6)


def calibration_document(
    impostors: ScoredPairs,
    genuines: ScoredPairs,
    *,
    model_id: str,
    source: str,
    pipeline: str,
    operating_fmr: float | None,
    min_false_matches: int = MIN_ERRORS,
) -> dict[str, Any]:
    """A calibration JSON document from genuine and impostor similarity scores (finite ones only)."""
    fmrs = supported_fmrs(len(impostors.scores), min_false_matches)
    return {
        "model_id": model_id,
        "source": source,
        "created": datetime.date.today().isoformat(),
        "faceprint_version": metadata.version("faceprint"),
        "pipeline": pipeline,
        "pairs": {"impostor": len(impostors.scores), "genuine": len(genuines.scores)},
        "interval_resampling": "identities" if _identity_count(impostors, genuines) else "pairs",
        "threshold_rule": THRESHOLD_RULE,
        "min_false_matches": min_false_matches,
        "operating_fmr": operating_fmr,
        "points": calibration_points(impostors, genuines, fmrs) if len(fmrs) else [],
    }
