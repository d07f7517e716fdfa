"""Verification and identification metrics on arrays of similarity scores, vectorised with numpy.

Conventions: a higher score means more alike; a pair is accepted when ``score >= threshold``
unless said otherwise; ``same`` is a boolean array (True: genuine pair, same person). A pair
whose image had no face carries the score ``-inf``: it is never accepted, so it counts as an
error in every figure (a user's system would fail on it too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FOLDS = 10
#: An error rate is measured reliably only if about this many errors are expected at it
#: (FMR 1e-3 needs about 10,000 impostor pairs); below that the figure is flagged.
MIN_ERRORS = 10


def support(count: int, rate: float) -> str:
    """Whether ``count`` trials can measure an error ``rate``: "ok" (>= MIN_ERRORS expected errors),
    "low" (at least one expected error) or "none" (not even one)."""
    expected = count * rate
    if expected >= MIN_ERRORS:
        return "ok"
    return "low" if expected >= 1 else "none"


@dataclass(frozen=True)
class Roc:
    """Operating points, one per distinct score (strictest first): accept when ``score >= threshold``."""

    thresholds: np.ndarray
    fmr: np.ndarray
    tar: np.ndarray

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tar


def roc(scores: np.ndarray, same: np.ndarray) -> Roc:
    """TAR and FMR at every distinct score used as the threshold."""
    order = np.argsort(-scores, kind="stable")
    ranked, genuine = scores[order], same[order]
    last_of_tie = np.concatenate([ranked[:-1] > ranked[1:], [True]])
    accepted_genuine = np.cumsum(genuine)[last_of_tie]
    accepted_impostor = np.cumsum(~genuine)[last_of_tie]
    return Roc(
        thresholds=ranked[last_of_tie],
        fmr=accepted_impostor / max(int((~same).sum()), 1),
        tar=accepted_genuine / max(int(same.sum()), 1),
    )


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); -inf scores rank lowest."""
    order = np.argsort(scores, kind="stable")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    positives, negatives = int(same.sum()), int((~same).sum())
    return float((ranks[same].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where FMR and FNMR cross, interpolated linearly between adjacent thresholds."""
    curve = roc(scores, same)
    # Start from "accept nothing" (FMR 0, FNMR 1); FNMR - FMR falls as the threshold loosens.
    fmr = np.concatenate([[0.0], curve.fmr])
    fnmr = np.concatenate([[1.0], curve.fnmr])
    gap = fnmr - fmr
    i = int(np.argmax(gap <= 0))  # first point where FMR has caught up with FNMR
    if gap[i] == 0:
        return float(fmr[i])
    # Between points i-1 and i the gap changes sign: where the straight line crosses zero.
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fmr[i - 1] + t * (fmr[i] - fmr[i - 1]))


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float) -> float:
    """The strictest threshold letting through at most ``fmr`` of the impostors, accepting ``score > threshold``."""
    ranked = np.sort(impostor_scores)[::-1]
    allowed = int(np.floor(fmr * len(ranked) + 1e-9))
    return float(ranked[min(allowed, len(ranked) - 1)])


def tar_at_fmr(scores: np.ndarray, same: np.ndarray, fmr: float) -> float:
    """Share of genuine pairs accepted at the strictest threshold letting through at most ``fmr`` of impostors.

    Every pair counts: a pair without a face (-inf) is never accepted.
    """
    return float(np.mean(scores[same] > threshold_at_fmr(scores[~same], fmr)))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (match when score >= it) that classifies most pairs right (inf: no pairs to learn from)."""
    if len(scores) == 0:
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    ranked, positive = scores[order], same[order]
    # Accepting the top i pairs, for i = 0..n: true accepts plus true rejects.
    accepted_same = np.concatenate([[0], np.cumsum(positive)])
    accepted_diff = np.concatenate([[0], np.cumsum(~positive)])
    correct = accepted_same + (accepted_diff[-1] - accepted_diff)
    # Only cut between distinct scores: tied pairs must fall on the same side.
    cuttable = np.concatenate([[True], ranked[:-1] > ranked[1:], [True]])
    i = int(np.argmax(np.where(cuttable, correct, -1)))
    if i == 0:
        return float(np.nextafter(ranked[0], np.inf))
    if i == len(ranked):
        return float(ranked[-1])
    return float((ranked[i - 1] + ranked[i]) / 2)


def default_folds(count: int) -> np.ndarray:
    """Fold of each pair when the file names none: row index modulo 10 (balanced for interleaved files)."""
    return np.arange(count) % FOLDS


def ten_fold_thresholds(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[int, float]:
    """For each fold, the accuracy-maximising threshold chosen on the *other* folds' usable pairs."""
    usable = np.isfinite(scores)
    return {
        int(k): best_threshold(scores[(folds != k) & usable], same[(folds != k) & usable]) for k in np.unique(folds)
    }


def ten_fold_correct(scores: np.ndarray, same: np.ndarray, folds: np.ndarray | None = None) -> np.ndarray:
    """Whether each pair is answered right under the 10-fold protocol (threshold from the other nine folds).

    A pair with a score of -inf (no face in one of its images) is always counted as an error.
    """
    folds = default_folds(len(scores)) if folds is None else folds
    thresholds = ten_fold_thresholds(scores, same, folds)
    threshold = np.array([thresholds[int(k)] for k in folds])
    return np.isfinite(scores) & ((scores >= threshold) == same)


def fold_accuracies(correct: np.ndarray, folds: np.ndarray | None = None) -> np.ndarray:
    """Accuracy on each fold, from ``ten_fold_correct``."""
    folds = default_folds(len(correct)) if folds is None else folds
    _, index = np.unique(folds, return_inverse=True)
    return np.bincount(index, weights=correct) / np.bincount(index)


def mcnemar_p(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: could the pairs only one method gets right split this unevenly by chance?"""
    only_a, only_b = int(np.sum(a_correct & ~b_correct)), int(np.sum(b_correct & ~a_correct))
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    same: np.ndarray,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(scores, same)``.

    Genuine and impostor pairs are resampled separately, so every resample keeps their counts.
    Pairs that share images or people are not independent: the interval is a lower bound on the
    real uncertainty.
    """
    rng = np.random.default_rng(seed)
    genuine, impostor = np.flatnonzero(same), np.flatnonzero(~same)
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    values = np.empty(resamples)
    for r in range(resamples):
        drawn = np.concatenate([rng.choice(genuine, len(genuine)), rng.choice(impostor, len(impostor))])
        values[r] = statistic(scores[drawn], labels)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mate_ranks(scores: np.ndarray, mate: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each probe's mate among the gallery identities; inf where the mate scores -inf.

    ``scores`` is probes x gallery identities, ``mate`` the column of each probe's identity. Ties
    with the mate do not push it down (the rank counts only strictly better identities).
    """
    mated = scores[np.arange(len(mate)), mate]
    ranks = 1.0 + np.sum(scores > mated[:, None], axis=1)
    return np.where(np.isfinite(mated), ranks, np.inf)


def cmc(ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """Cumulative match characteristic: share of probes whose mate is within rank 1..max_rank."""
    return np.array([np.mean(ranks <= r) for r in range(1, max_rank + 1)])


def fnir_at_fpir(mated_rank1_scores: np.ndarray, non_mated_top: np.ndarray, fpir: float) -> tuple[float, float]:
    """Open-set (FNIR, threshold) at the strictest threshold with at most ``fpir`` of non-mated searches
    returning anyone (their top score above it). ``mated_rank1_scores``: each mated search's mate score
    where the mate ranked first, else -inf (a miss at any threshold)."""
    threshold = threshold_at_fmr(non_mated_top, fpir)
    return float(np.mean(mated_rank1_scores <= threshold)), threshold
