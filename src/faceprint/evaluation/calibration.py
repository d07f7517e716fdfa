"""Measuring a calibration: the similarity threshold for each false-match rate, from real pairs.

The document written here is the format of ``faceprint/data/calibration-*.json`` and of the
table ``faceprint calibrate`` stores in a gallery (``faceprint.match.Calibration`` reads both).
``read_calibration_source`` and ``calibrate`` are what ``faceprint calibrate`` runs;
``bench/calibrate.py`` builds the shipped table from ``every_pair`` and ``calibration_points``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, OutputError, UnsupportedFMRError
from ..image import iter_image_files
from ..match import DEFAULT_FMR
from ..pipeline import DEFAULT_OPTIONS, PipelineOptions
from .cache import EmbeddedImages, EmbeddingCache, embed_images
from .evaluate import score_pairs
from .metrics import MIN_ERRORS
from .protocols import Pairs, identity_of, read_pairs

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
    #: What each pair counts for (default 1), e.g. 1 / its identity's genuine pairs so that every
    #: identity weighs the same; a bootstrap resample multiplies it by the pair's draw count.
    weights: np.ndarray | None = None

    @property
    def identities(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The identity codes of both sides, where known."""
        if self.identity_a is None or self.identity_b is None:
            return None
        return self.identity_a, self.identity_b

    def base_weights(self) -> np.ndarray:
        """What each pair counts for outside any resample."""
        return np.ones(len(self.scores)) if self.weights is None else self.weights

    def sorted(self) -> ScoredPairs:
        """Highest score first."""
        order = np.argsort(-self.scores, kind="stable")
        identities = self.identities
        return ScoredPairs(
            self.scores[order],
            None if identities is None else identities[0][order],
            None if identities is None else identities[1][order],
            None if self.weights is None else self.weights[order],
        )

    def resampled_weights(self, rng: np.random.Generator, drawn: np.ndarray | None) -> np.ndarray:
        """Weight of each pair in a bootstrap resample: its identities' draw counts multiplied (an identity
        drawn m times counts m times), or a multinomial count per pair when identities are unknown;
        times the pair's own weight."""
        identities = self.identities
        if drawn is None or identities is None:
            n = len(self.scores)
            counts = rng.multinomial(n, np.full(n, 1 / n)).astype(float)
        else:
            a, b = identities
            counts = np.where(a == b, drawn[a], drawn[a] * drawn[b])
        return counts if self.weights is None else counts * self.weights


def every_pair(vectors: np.ndarray, identity: np.ndarray) -> tuple[ScoredPairs, ScoredPairs]:
    """Every unordered pair of faces with their identity codes, as (impostor pairs, genuine pairs)."""
    scores, same, a, b = all_pairs(vectors, identity)
    impostors, genuines = (ScoredPairs(scores[m], identity[a[m]], identity[b[m]]) for m in (~same, same))
    return impostors, genuines


def calibration_points(impostors: ScoredPairs, genuines: ScoredPairs, fmrs: np.ndarray) -> list[dict[str, Any]]:
    """Threshold, false-match count and FNMR at each FMR, with 90% bootstrap intervals.

    Pairs that share people are not independent: where identities are known the bootstrap resamples
    people (the honest interval), otherwise pairs (narrower than the truth).
    """
    impostors, genuines = impostors.sorted(), genuines.sorted()
    thresholds = round_up(thresholds_at(impostors.scores, impostors.base_weights(), fmrs))
    fnmr = fnmr_at(genuines.scores, genuines.base_weights(), thresholds)
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
    sides = [k.identities for k in kinds]
    if any(s is None for s in sides):
        return 0
    return int(max(codes.max(initial=0) for pair in sides if pair is not None for codes in pair)) + 1


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


@dataclass(frozen=True)
class CalibrationSource:
    """What a calibration is measured on: a pairs file's pairs, or (``pairs`` None) every pair of a
    folder-per-person dataset, where the people are known."""

    path: Path
    images: list[Path]
    pairs: Pairs | None


def read_calibration_source(path: Path, images_root: Path | None = None) -> CalibrationSource:
    """A folder-per-person dataset (a folder), or a pairs file (CSV or LFW pairs.txt) whose image paths
    are relative to ``images_root`` (default: its own folder)."""
    if not path.is_dir():
        pairs = read_pairs(path, images_root)
        return CalibrationSource(path, pairs.images(), pairs)
    files = iter_image_files(path)
    if len({identity_of(f) for f in files}) < 2:
        raise DatasetError(f"{path}: needs photos of at least 2 people, one folder each")
    return CalibrationSource(path, files, None)


@dataclass(frozen=True)
class CalibrationRun:
    """A measured calibration: the document (see ``calibration_document``) and the pairs it rests on."""

    document: dict[str, Any]
    impostor_pairs: int
    genuine_pairs: int


def calibrate(
    source: CalibrationSource,
    *,
    fmr: float | None = None,
    min_false_matches: int | None = None,
    options: PipelineOptions = DEFAULT_OPTIONS,
    workers: int = 2,
    cache: EmbeddingCache | None = None,
    on_done: Callable[[int], None] | None = None,
) -> CalibrationRun:
    """Embed the source's images (``on_done(n)`` as they finish), score its pairs with a face on both
    sides and measure the calibration, with ``fmr`` (default ``DEFAULT_FMR``) as its operating point;
    each FMR kept rests on ``min_false_matches`` (default ``MIN_ERRORS``) impostor pairs at least.

    Raises DatasetError when the impostor pairs cannot measure ``fmr`` (the message says what would),
    UnsupportedFMRError (before any work) when ``fmr`` is not a rate between 0 and 1.
    """
    fmr = DEFAULT_FMR if fmr is None else fmr
    min_false_matches = MIN_ERRORS if min_false_matches is None else min_false_matches
    if not 0 < fmr < 1:
        raise UnsupportedFMRError(f"FMR {fmr:g} is not a false-match rate: choose one between 0 and 1 (e.g. 1e-3)")
    embedded = embed_images(source.images, options, workers=workers, cache=cache, on_done=on_done)
    impostors, genuines, origin = _scored(source, embedded)
    document = calibration_document(
        impostors,
        genuines,
        model_id=options.model.model_id,
        source=origin,
        pipeline=repr(options),
        operating_fmr=fmr,
        min_false_matches=min_false_matches,
    )
    _check_covers(document, fmr, source.path)
    return CalibrationRun(document, len(impostors.scores), len(genuines.scores))


def _scored(source: CalibrationSource, embedded: EmbeddedImages) -> tuple[ScoredPairs, ScoredPairs, str]:
    """Impostor and genuine pairs with a face on both sides, and where they come from in words."""
    if source.pairs is None:
        found = ~np.isnan(embedded.vectors[:, 0])
        _, identity = np.unique([identity_of(f) for f, ok in zip(source.images, found) if ok], return_inverse=True)
        impostors, genuines = every_pair(embedded.vectors[found], identity)
        return impostors, genuines, f"{source.path}: {int(found.sum())} images with a face, every pair"
    scores = score_pairs(embedded, source.pairs)
    usable = np.isfinite(scores)
    same = source.pairs.same
    return (
        ScoredPairs(scores[usable & ~same]),
        ScoredPairs(scores[usable & same]),
        f"{source.path}: {int(usable.sum())} pairs with a face on both sides",
    )


def _check_covers(document: dict[str, Any], fmr: float, source: Path) -> None:
    """The operating FMR must lie within the FMRs the impostor pairs measured."""
    fmrs = [p["fmr"] for p in document["points"]]
    impostors = document["pairs"]["impostor"]
    needed = int(np.ceil(document["min_false_matches"] / fmr))
    if not fmrs or not min(fmrs) <= fmr <= max(fmrs):
        covered = f"FMR {min(fmrs):g} to {max(fmrs):g}" if fmrs else "no FMR of the grid"
        raise DatasetError(
            f"{source}: {impostors:,} impostor pairs measure {covered}; FMR {fmr:g} needs about {needed:,} "
            "(use a folder-per-person dataset, where every pair of different people counts, or more pairs)"
        )


def write_calibration(document: dict[str, Any], path: Path) -> None:
    """Write a calibration document as JSON (the format ``faceprint.match.Calibration`` reads)."""
    try:
        path.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the calibration ({exc.strerror or exc})") from None
