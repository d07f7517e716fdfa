"""The fused model's weight: how dlib's ResNet and SFace cosines are best added, fitted on faces-dev pairs.

The fused score is ``w * cos_dlib + (1 - w) * cos_sface``. Standardising each model's score by an
affine map before adding them (``(cos - mean) / spread``) only changes ``w`` and adds a constant, so
the weight search already covers it; what it does not cover is centring each model's *vectors*
(subtracting a mean template before normalising), which changes the cosines themselves: compared
here with the mean over all images and over identities (each identity's mean weighing the same).

The weight is chosen three ways: Fisher's linear discriminant of the two cosines (the one shipped),
the inverse impostor spread of each model (standardisation with equal weights) and the weight with
the best training accuracy. Every accuracy below fits the weight (and the threshold) on 9 folds and
tests on the 10th. The last column scores all 1,441,787 impostor and 146,866 genuine pairs of
faces-dev with the weight fitted on all 2,000 pairs.

    python bench/fusion.py     # embeds faces-dev with the fused model (shared with bench/accuracy.py fused-auto)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import common
from faceprint.embedding import normalise, part_templates
from faceprint.evaluation import metrics
from faceprint.models import FUSED
from faceprint.pipeline import PipelineOptions

#: The fused model after today's detector: SFace on 5 points from dlib's 68 (bench/accuracy.py fused-auto).
OPTIONS = PipelineOptions(model=FUSED)

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def fisher_weight(first: np.ndarray, second: np.ndarray, same: np.ndarray) -> float:
    """``w`` of ``w * first + (1 - w) * second`` along Fisher's linear discriminant of the two scores."""
    scores = np.stack([first, second], axis=1)
    genuine, impostor = scores[same], scores[~same]
    within = np.cov(genuine.T) + np.cov(impostor.T)
    direction = np.linalg.solve(within, genuine.mean(axis=0) - impostor.mean(axis=0))
    return float(direction[0] / direction.sum())


def spread_weight(first: np.ndarray, second: np.ndarray, same: np.ndarray) -> float:
    """Each score divided by its impostors' standard deviation, then added with equal weights."""
    inverse = 1 / first[~same].std(), 1 / second[~same].std()
    return float(inverse[0] / sum(inverse))


def accuracy_weight(first: np.ndarray, second: np.ndarray, same: np.ndarray) -> float:
    """The middle of the weights (steps of 0.01) that classify the most pairs right."""
    grid = np.linspace(0, 1, 101)
    correct = [
        np.sum((f >= metrics.best_threshold(f, same)) == same) for f in (w * first + (1 - w) * second for w in grid)
    ]
    return float(grid[np.asarray(correct) == max(correct)].mean())


FITS: dict[str, Fit] = {"Fisher": fisher_weight, "impostor spread": spread_weight, "training accuracy": accuracy_weight}


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Fused pairs answered with a weight and threshold fitted on the other nine folds."""

    correct: np.ndarray
    #: each pair's fused score with the weight fitted without its fold
    scores: np.ndarray
    weights: np.ndarray


def held_out(first: np.ndarray, second: np.ndarray, same: np.ndarray, fit: Fit = fisher_weight) -> HeldOut:
    """The 10-fold protocol with the fusion weight fitted, like the threshold, on the training folds only.
    Pairs without a face (non-finite scores) are errors, as in ``metrics.ten_fold_correct``."""
    folds = metrics.default_folds(len(same))
    usable = np.isfinite(first) & np.isfinite(second)
    correct, scores, weights = np.zeros(len(same), bool), np.full(len(same), -np.inf), []
    for k in np.unique(folds):
        train, test = (folds != k) & usable, (folds == k) & usable
        weight = fit(first[train], second[train], same[train])
        fused = weight * first + (1 - weight) * second
        threshold = metrics.best_threshold(fused[train], same[train])
        correct[test] = (fused[test] >= threshold) == same[test]
        scores[test] = fused[test]
        weights.append(weight)
    return HeldOut(correct, scores, np.array(weights))


def part_scores(vectors: np.ndarray, paths: list[str], path_a: list[str], path_b: list[str]) -> list[np.ndarray]:
    """Each part model's cosine of each pair (-inf where an image has no face)."""
    row = {path: i for i, path in enumerate(paths)}
    a, b = [row[p] for p in path_a], [row[p] for p in path_b]
    scores = [np.sum(part[a] * part[b], axis=1, dtype=np.float64) for part in part_templates(vectors, FUSED)]
    return [np.where(np.isnan(s), -np.inf, s) for s in scores]


def main() -> None:
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    path_a, path_b, same = common.read_pairs(root)
    embeddings = common.embed_faceprint(root, paths, OPTIONS, label="fused-auto")
    found = embeddings.found
    parts = [part[found] for part in part_templates(embeddings.vectors[found], FUSED)]
    _, codes = np.unique(np.array(identities)[found], return_inverse=True)
    dlib_alone = metrics.ten_fold_correct(part_scores(embeddings.vectors, paths, path_a, path_b)[0], same)
    print(f"{found.sum()} of {len(paths)} images with a face; dlib's ResNet alone: {dlib_alone.mean():.2%}")
    lines = [
        "| vectors | weight fitted by | accuracy (10-fold) | pairs wrong | vs dlib alone (McNemar p) "
        "| weights on the 10 training sets | weight on all pairs | FNMR @ FMR 1e-3, all pairs (pooled) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for treatment, centre in (
        ("plain", None),
        ("centred: mean of images", "images"),
        ("centred: mean of identities", "identities"),
    ):
        centred = [_centred(part, codes, centre) for part in parts]
        full = np.full((len(paths), FUSED.dimension), np.nan, dtype=np.float32)
        full[found] = np.hstack(centred)
        first, second = part_scores(full, paths, path_a, path_b)
        for name, fit in FITS.items():
            result = held_out(first, second, same, fit)
            weight = fit(first, second, same)
            fixed, broken = int(np.sum(result.correct & ~dlib_alone)), int(np.sum(dlib_alone & ~result.correct))
            lines.append(
                f"| {treatment} | {name} | {result.correct.mean():.2%} | {int(np.sum(~result.correct))} "
                f"| +{fixed} / -{broken} (p = {metrics.mcnemar_p(result.correct, dlib_alone):.2g}) "
                f"| {result.weights.min():.3f}–{result.weights.max():.3f} | {weight:.3f} "
                f"| {_fnmr_at_all_pairs(centred, codes, weight):.4%} |"
            )
    print("\n".join(lines))


def _centred(units: np.ndarray, codes: np.ndarray, centre: str | None) -> np.ndarray:
    if centre is None:
        return units
    mean = (
        units.mean(axis=0)
        if centre == "images"
        else np.mean([units[codes == c].mean(axis=0) for c in np.unique(codes)], axis=0)
    )
    return normalise(units - mean)


def _fnmr_at_all_pairs(parts: list[np.ndarray], codes: np.ndarray, weight: float, fmr: float = 1e-3) -> float:
    """Pooled FNMR over every genuine pair at the threshold letting ``fmr`` of every impostor pair through."""
    first, second = (part.astype(np.float64) for part in parts)
    scores = weight * (first @ first.T) + (1 - weight) * (second @ second.T)
    upper = np.triu_indices(len(codes), 1)
    pair_scores, genuine = scores[upper], codes[upper[0]] == codes[upper[1]]
    threshold = metrics.threshold_at_fmr(pair_scores[~genuine], fmr)
    return float(np.mean(pair_scores[genuine] <= threshold))


if __name__ == "__main__":
    main()
