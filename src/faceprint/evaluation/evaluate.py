"""Running an evaluation: embed (cached), score vectorised, and measure every figure of the report.

``verify_pairs`` measures 1:1 verification on a pairs file, ``identify_split`` closed- and
open-set 1:N identification on a gallery/probe split. Both return the arrays the plots need
and a JSON-ready summary of every number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..match import Calibration, GalleryTail, OperatingPoint, cohort_score, identification_point, operating_point
from ..pipeline import DEFAULT_OPTIONS, PipelineOptions
from . import metrics
from .cache import EmbeddedImages, EmbeddingCache, embed_images
from .fairness import Labels, group_rates, pair_groups, quality_groups
from .protocols import Pairs, Split, read_pairs, split_folder, split_from_csv

VERIFICATION_FMRS = (1e-1, 1e-2, 1e-3, 1e-4)
OPEN_SET_FPIRS = (1e-1, 1e-2, 1e-3)
CMC_RANKS = 20


@dataclass(frozen=True)
class EvaluationSettings:
    """How to embed and how to decide; the defaults are the library's."""

    options: PipelineOptions = DEFAULT_OPTIONS
    calibration: Calibration | None = None
    fmr: float | None = None
    workers: int | None = 2
    cache: EmbeddingCache | None = None
    resamples: int = 1000
    on_done: Callable[[int], None] | None = field(default=None, compare=False)

    def operating_point(self) -> OperatingPoint:
        """The decision rule of ``faceprint.match``: ``calibration`` (a gallery's) else the shipped one, at ``fmr``."""
        return operating_point(self.options.model.model_id, fmr=self.fmr, stored=self.calibration)


@dataclass(frozen=True)
class VerificationRun:
    """A verification evaluation: its pairs, their images' embeddings, the scores and every figure."""

    pairs: Pairs
    images: EmbeddedImages
    scores: np.ndarray
    summary: dict[str, Any]


@dataclass(frozen=True)
class IdentificationRun:
    """A 1:N evaluation: the split, embeddings, each mated probe's mate rank, the CMC and every figure."""

    split: Split
    images: EmbeddedImages
    ranks: np.ndarray
    cmc: np.ndarray
    summary: dict[str, Any]


def read_protocol(
    source: Path, *, probes: Path | None = None, images: Path | None = None, withhold: float = 0.3, seed: int = 0
) -> Pairs | Split:
    """What ``source`` asks to measure: a 1:N split of a folder-per-person dataset (or of a gallery CSV with a
    ``probes`` CSV; ``withhold`` of the identities stay out of the gallery), else verification pairs (a pairs file,
    its image paths relative to ``images`` or to its own folder)."""
    if probes is not None:
        return split_from_csv(source, probes, withhold=withhold, seed=seed)
    if source.is_dir():
        return split_folder(source, withhold=withhold, seed=seed)
    return read_pairs(source, images)


def evaluate(
    protocol: Pairs | Split, settings: EvaluationSettings, labels: Labels | None = None
) -> VerificationRun | IdentificationRun:
    """``verify_pairs`` or ``identify_split``, as ``protocol`` is; subgroup ``labels`` apply to pairs only."""
    if isinstance(protocol, Pairs):
        return verify_pairs(protocol, settings, labels)
    if labels is not None:
        raise DatasetError(f"{protocol.description}: subgroup labels apply to verification pairs only")
    return identify_split(protocol, settings)


def score_pairs(images: EmbeddedImages, pairs: Pairs) -> np.ndarray:
    """Cosine similarity of every pair in one vectorised pass; -inf where an image has no face."""
    a = images.vectors[images.rows(pairs.path_a)]
    b = images.vectors[images.rows(pairs.path_b)]
    scores = np.einsum("ij,ij->i", a, b, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)


def verify_pairs(pairs: Pairs, settings: EvaluationSettings, labels: Labels | None = None) -> VerificationRun:
    """Embed the pairs' images, score them and measure accuracy, ROC, TAR@FMR and per-group rates."""
    images = embed_images(
        pairs.images(), settings.options, workers=settings.workers, cache=settings.cache, on_done=settings.on_done
    )
    start = time.perf_counter()
    scores = score_pairs(images, pairs)
    score_seconds = time.perf_counter() - start
    if not np.isfinite(scores).any():
        raise DatasetError(f"{pairs.source}: no pair has a face on both sides; {_first_problems(images)}")
    start = time.perf_counter()
    summary = {
        "kind": "verification",
        "source": pairs.source,
        **_image_summary(images),
        **verification_summary(scores, pairs.same, pairs.folds, resamples=settings.resamples),
    }
    point = settings.operating_point()
    summary["operating_point"] = _operating_point(scores, pairs.same, point)
    summary["groups"] = _groups(images, pairs, scores, point.threshold, labels)
    summary["timing"] = {
        "embed_s": images.seconds,
        "images_cached": images.cached,
        "score_s": score_seconds,
        "metrics_s": time.perf_counter() - start,
    }
    return VerificationRun(pairs, images, scores, summary)


def verification_summary(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray, *, resamples: int = 1000
) -> dict[str, Any]:
    """Every verification figure of a set of scored pairs, with 95% bootstrap intervals over pairs.

    Pairs that share images or people are not independent: the intervals are a lower bound on the
    real uncertainty.
    """
    correct = metrics.ten_fold_correct(scores, same, folds)
    accuracy = metrics.fold_accuracies(correct, folds)
    impostors = int((~same).sum())
    counts = metrics.score_counts(scores, same)
    boot = metrics.resampled_counts(scores, same, resamples) if resamples else None
    return {
        "pairs": {
            "total": len(scores),
            "genuine": int(same.sum()),
            "impostor": impostors,
            "without_face": int((~np.isfinite(scores)).sum()),
        },
        "accuracy": {
            "mean": float(accuracy.mean()),
            "std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
            "folds": accuracy.tolist(),
            "fold_thresholds": list(metrics.ten_fold_thresholds(scores, same, folds).values()),
        },
        "auc": _estimate(metrics.auc_of, counts, boot),
        "eer": _estimate(metrics.eer_of, counts, boot),
        "tar_at_fmr": [_tar_point(scores, same, fmr, counts, boot) for fmr in VERIFICATION_FMRS],
    }


def _estimate(rate: Callable, counts: metrics.ScoreCounts, boot: metrics.ScoreCounts | None) -> dict[str, Any]:
    return {
        "value": float(rate(counts)[0]),
        "ci95": list(metrics.interval(rate(boot))) if boot is not None else None,
    }


def _tar_point(
    scores: np.ndarray, same: np.ndarray, fmr: float, counts: metrics.ScoreCounts, boot: metrics.ScoreCounts | None
) -> dict[str, Any]:
    impostors = int((~same).sum())
    support = metrics.support(impostors, fmr)
    point: dict[str, Any] = {"fmr": fmr, "support": support}
    if support == "none":
        point["note"] = f"not measurable: {impostors:,} impostor pairs; {_needed('FMR', fmr)}"
        return point
    point.update(_estimate(lambda c: metrics.tar_of(c, fmr), counts, boot))
    point["threshold"] = metrics.threshold_at_fmr(scores[~same], fmr)
    if support == "low":
        point["note"] = (
            f"unreliable: rests on {int(impostors * fmr)} impostor pair(s) above the threshold "
            f"(about {metrics.MIN_ERRORS} are needed)"
        )
    return point


def _needed(name: str, rate: float) -> str:
    return f"{name} {rate:g} needs at least {1 / rate:,.0f} ({metrics.MIN_ERRORS / rate:,.0f} for a reliable figure)"


def _operating_point(scores: np.ndarray, same: np.ndarray, point: OperatingPoint) -> dict[str, Any]:
    """How the active calibration's threshold fares on this data."""
    accepted = scores >= point.threshold
    return {
        "fmr": point.fmr,
        "threshold": point.threshold,
        "calibration": point.calibration.source,
        "measured_fmr": float(np.mean(accepted[~same])),
        "measured_fnmr": float(np.mean(~accepted[same])),
        "false_matches": int((accepted & ~same).sum()),
        "false_non_matches": int((~accepted & same).sum()),
    }


def _groups(
    images: EmbeddedImages, pairs: Pairs, scores: np.ndarray, threshold: float, labels: Labels | None
) -> dict[str, Any]:
    quality_a, quality_b = images.quality[images.rows(pairs.path_a)], images.quality[images.rows(pairs.path_b)]
    columns = quality_groups(quality_a, quality_b)
    if labels is not None:
        columns |= {c: pair_groups(labels, c, pairs.path_a, pairs.path_b) for c in labels.columns}
    return {name: group_rates(scores, pairs.same, groups, threshold) for name, groups in columns.items()}


def _first_problems(images: EmbeddedImages, count: int = 3) -> str:
    problems = sorted(images.problems.values())
    return "; ".join(problems[:count]) + (f" (and {len(problems) - count} more)" if len(problems) > count else "")


def _image_summary(images: EmbeddedImages) -> dict[str, Any]:
    return {
        "images": {
            "total": len(images.paths),
            "without_face": int((images.status == "none").sum()),
            "unreadable": int((images.status == "error").sum()),
        },
        "problems": sorted(images.problems.values()),
    }


def identify_split(split: Split, settings: EvaluationSettings) -> IdentificationRun:
    """Closed-set CMC over mated probes and open-set FNIR at FPIR over all probes, for one split."""
    images = embed_images(
        split.images(), settings.options, workers=settings.workers, cache=settings.cache, on_done=settings.on_done
    )
    start = time.perf_counter()
    scores, mate, templates, identity = _identity_scores(images, split)
    if not np.isfinite(scores).any():
        raise DatasetError(
            f"{split.description}: no face found in the gallery or in the probes; {_first_problems(images)}"
        )
    mated = mate >= 0
    ranks = metrics.mate_ranks(scores[mated], mate[mated])
    curve = metrics.cmc(ranks, min(CMC_RANKS, scores.shape[1]))
    top = scores.max(axis=1) if scores.shape[1] else np.full(len(scores), -np.inf)
    rank1_scores = np.where(ranks == 1, scores[mated, mate[mated]], -np.inf)
    point = settings.operating_point()
    summary = {
        "kind": "identification",
        "source": split.description,
        **_image_summary(images),
        "gallery": {"images": len(split.gallery), "identities": scores.shape[1]},
        "probes": {
            "mated": int(mated.sum()),
            "non_mated": int((~mated).sum()),
            "without_face": int((~np.isfinite(top)).sum()),
        },
        "rank1": float(curve[0]),
        "rank5": float(curve[min(5, len(curve)) - 1]),
        "cmc": curve.tolist(),
        "open_set": [_open_set_point(rank1_scores, top[~mated], fpir) for fpir in OPEN_SET_FPIRS],
        "operating_point": _open_set_at(rank1_scores, top[~mated], point.threshold, point.fmr),
        "fpir_rule": _fpir_rule(templates, identity, rank1_scores, top[~mated], _cohorts(scores), mated, settings),
        "det": metrics.identification_det(rank1_scores, top[~mated]).to_dict(),
    }
    summary["timing"] = {
        "embed_s": images.seconds,
        "images_cached": images.cached,
        "score_s": time.perf_counter() - start,
    }
    return IdentificationRun(split, images, ranks, curve, summary)


def _identity_scores(images: EmbeddedImages, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Probes x gallery identities (similarity to the identity's centroid, as ``Gallery.rank_people`` scores a
    person), each probe's mate column (-1: none), and the gallery templates with a face with their identity."""
    names = sorted({name for _, name in split.gallery})
    column = {name: i for i, name in enumerate(names)}
    gallery_identity = np.array([column[name] for _, name in split.gallery], dtype=np.int64)
    probes = images.vectors[images.rows([p for p, _ in split.probes])].astype(np.float64)
    gallery = images.vectors[images.rows([p for p, _ in split.gallery])].astype(np.float64)
    found = np.isfinite(gallery).all(axis=1)
    scores = np.nan_to_num(probes @ _centroids(gallery[found], gallery_identity[found], len(names)).T, nan=-np.inf)
    mate = np.array([column.get(name, -1) for _, name in split.probes], dtype=np.int64)
    return scores, mate, gallery[found], gallery_identity[found]


def _cohorts(scores: np.ndarray) -> np.ndarray:
    """Each row's cohort score (``faceprint.match.cohort_score`` of its finite scores, best first; NaN: none)."""
    ranked = -np.sort(-scores, axis=1)
    cohorts = [cohort_score(row[np.isfinite(row)]) for row in ranked]
    return np.array([np.nan if c is None else c for c in cohorts], np.float64)


def _centroids(templates: np.ndarray, identity: np.ndarray, identities: int) -> np.ndarray:
    """Normalised mean template of each identity (NaN for one without templates)."""
    sums = np.zeros((identities, templates.shape[1]))
    np.add.at(sums, identity, templates)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.divide(sums, norms, out=np.full_like(sums, np.nan), where=norms > 0)


def _fpir_rule(
    templates: np.ndarray,
    identity: np.ndarray,
    rank1_scores: np.ndarray,
    non_mated_top: np.ndarray,
    cohorts: np.ndarray,
    mated: np.ndarray,
    settings: EvaluationSettings,
) -> list[dict[str, Any]]:
    """FNIR and measured FPIR when each search is decided as ``Gallery.identify`` decides it: at each target FPIR
    of ``OPEN_SET_FPIRS``, by ``faceprint.match.identification_point`` for a gallery of these templates, with
    the gallery's own leave-one-person-out measurement (as ``Gallery.measure_identification`` makes it), each
    probe's scores moved by its cohort's offset (``cohorts``, NaN: none; ``mated`` says which probes are)."""
    start = time.perf_counter()
    people, column = np.unique(identity, return_inverse=True)
    loo = np.nan_to_num(templates @ _centroids(templates, column, len(people)).T, nan=-np.inf)
    loo[np.arange(len(identity)), column] = -np.inf
    model_id = settings.options.model.model_id
    calibration = settings.calibration or operating_point(model_id).calibration
    tail = GalleryTail.from_scores(
        loo.max(axis=1) if len(people) > 1 else np.zeros(0),
        calibration=calibration,
        people=len(people),
        templates=len(identity),
        seconds=time.perf_counter() - start,
        cohorts=_cohorts(loo) if len(people) > 1 else None,
    )
    rows = []
    for fpir in OPEN_SET_FPIRS:
        point = identification_point(
            model_id, templates=len(identity), fpir=fpir, stored=settings.calibration, measured=tail
        )
        row: dict[str, Any] = {"fpir": fpir, "threshold": point.threshold, "basis": point.basis}
        if point.threshold is None:
            rows.append({**row, "unsupported": point.unsupported, "fnir": 1.0, "measured_fpir": 0.0})
            continue
        offsets = point.offsets(cohorts)
        false_positives = int((non_mated_top + offsets[~mated] >= point.threshold).sum())
        rows.append(
            {
                **row,
                "fnir": float(np.mean(rank1_scores + offsets[mated] < point.threshold)),
                "measured_fpir": false_positives / len(non_mated_top) if len(non_mated_top) else None,
                "false_positives": false_positives,
                "non_mated": len(non_mated_top),
            }
        )
    return rows


def _open_set_point(rank1_scores: np.ndarray, non_mated_top: np.ndarray, fpir: float) -> dict[str, Any]:
    support = metrics.support(len(non_mated_top), fpir)
    point: dict[str, Any] = {"fpir": fpir, "support": support}
    if support == "none":
        point["note"] = f"not measurable: {len(non_mated_top):,} non-mated searches; {_needed('FPIR', fpir)}"
        return point
    point["fnir"], point["threshold"] = metrics.fnir_at_fpir(rank1_scores, non_mated_top, fpir)
    if support == "low":
        point["note"] = (
            f"unreliable: rests on {int(len(non_mated_top) * fpir)} non-mated search(es) above the threshold"
        )
    return point


def _open_set_at(rank1_scores: np.ndarray, non_mated_top: np.ndarray, threshold: float, fmr: float) -> dict[str, Any]:
    """FNIR and FPIR at the calibrated 1:1 threshold the gallery itself would use."""
    return {
        "fmr": fmr,
        "threshold": threshold,
        "fnir": float(np.mean(rank1_scores < threshold)),
        "fpir": float(np.mean(non_mated_top >= threshold)) if len(non_mated_top) else None,
    }
