"""Verification and identification metrics on arrays of similarity scores, vectorised with numpy.

Conventions: a higher score means more alike; a pair is accepted when ``score >= threshold``
unless said otherwise; ``same`` is a boolean array (True: genuine pair, same person). A pair
whose image had no face carries the score ``-inf``: it is never accepted, so it counts as an
error in every figure (a user's system would fail on it too).
"""

from __future__ import annotations

import functools
import math
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
class ScoreCounts:
    """Genuine and impostor pairs per distinct score, highest score first; one row per sample
    (the data itself, or each bootstrap resample of it). Every rate below is read from these
    counts, so a thousand resamples are measured in one vectorised pass."""

    scores: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray

    @functools.cached_property
    def accepted_genuine(self) -> np.ndarray:
        """Genuine pairs at or above each distinct score (per row)."""
        return np.cumsum(self.genuine, axis=1)

    @functools.cached_property
    def accepted_impostor(self) -> np.ndarray:
        return np.cumsum(self.impostor, axis=1)


def _score_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores, highest first, and the group of each pair."""
    distinct, inverse = np.unique(-scores, return_inverse=True)
    return -distinct, inverse


def score_counts(scores: np.ndarray, same: np.ndarray) -> ScoreCounts:
    """The counts of the data itself (one row)."""
    distinct, group = _score_groups(scores)
    size = len(distinct)
    genuine = np.bincount(group[same], minlength=size)[None, :]
    return ScoreCounts(distinct, genuine, np.bincount(group[~same], minlength=size)[None, :])


def resampled_counts(scores: np.ndarray, same: np.ndarray, resamples: int, seed: int = 0) -> ScoreCounts:
    """Bootstrap resamples of the pairs (genuine and impostor drawn separately, each keeping its count)."""
    rng = np.random.default_rng(seed)
    distinct, group = _score_groups(scores)
    rows = np.arange(resamples)[:, None] * len(distinct)

    def counts(members: np.ndarray) -> np.ndarray:
        drawn = group[members][rng.integers(0, len(members), size=(resamples, len(members)))]
        return np.bincount((drawn + rows).ravel(), minlength=resamples * len(distinct)).reshape(resamples, -1)

    return ScoreCounts(distinct, counts(np.flatnonzero(same)), counts(np.flatnonzero(~same)))


def auc_of(counts: ScoreCounts) -> np.ndarray:
    """ROC AUC per row: P(genuine > impostor) + P(tie) / 2 (Mann-Whitney U)."""
    genuine_above = counts.accepted_genuine - counts.genuine
    wins = np.sum(counts.impostor * (genuine_above + counts.genuine / 2), axis=1)
    return wins / (counts.genuine.sum(axis=1) * counts.impostor.sum(axis=1))


def eer_of(counts: ScoreCounts) -> np.ndarray:
    """Equal error rate per row: where FMR and FNMR cross, interpolated linearly between adjacent thresholds."""
    start = np.zeros((len(counts.genuine), 1))
    # From "accept nothing" (FMR 0, FNMR 1) down the thresholds: FNMR - FMR only falls.
    fmr = np.hstack([start, counts.accepted_impostor / counts.impostor.sum(axis=1, keepdims=True)])
    fnmr = 1 - np.hstack([start, counts.accepted_genuine / counts.genuine.sum(axis=1, keepdims=True)])
    gap = fnmr - fmr
    i = np.argmax(gap <= 0, axis=1)[:, None]  # first point where FMR has caught up with FNMR
    before, after = np.take_along_axis(gap, i - 1, axis=1), np.take_along_axis(gap, i, axis=1)
    fmr_before, fmr_after = np.take_along_axis(fmr, i - 1, axis=1), np.take_along_axis(fmr, i, axis=1)
    # Between points i-1 and i the gap changes sign: where the straight line crosses zero.
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = fmr_before + before / (before - after) * (fmr_after - fmr_before)
    return np.where(after == 0, fmr_after, crossing)[:, 0]


def tar_of(counts: ScoreCounts, fmr: float) -> np.ndarray:
    """TAR per row at the strictest threshold letting through at most ``fmr`` of the impostors; the
    threshold is an impostor score and only genuine pairs strictly above it are accepted."""
    impostors = counts.impostor.sum(axis=1, keepdims=True)
    allowed = np.minimum(np.floor(fmr * impostors + 1e-9), impostors - 1)
    threshold_group = np.argmax(counts.accepted_impostor > allowed, axis=1)[:, None]
    genuine_above = np.take_along_axis(counts.accepted_genuine - counts.genuine, threshold_group, axis=1)[:, 0]
    return genuine_above / counts.genuine.sum(axis=1)


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
    counts = score_counts(scores, same)
    return Roc(
        thresholds=counts.scores,
        fmr=counts.accepted_impostor[0] / max(int((~same).sum()), 1),
        tar=counts.accepted_genuine[0] / max(int(same.sum()), 1),
    )


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); -inf scores rank lowest."""
    return float(auc_of(score_counts(scores, same))[0])


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where FMR and FNMR cross, interpolated linearly between adjacent thresholds."""
    return float(eer_of(score_counts(scores, same))[0])


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float) -> float:
    """The strictest threshold letting through at most ``fmr`` of the impostors, accepting ``score > threshold``."""
    ranked = np.sort(impostor_scores)[::-1]
    allowed = int(np.floor(fmr * len(ranked) + 1e-9))
    return float(ranked[min(allowed, len(ranked) - 1)])


def tar_at_fmr(scores: np.ndarray, same: np.ndarray, fmr: float) -> float:
    """Share of genuine pairs accepted at the strictest threshold letting through at most ``fmr`` of impostors.

    Every pair counts: a pair without a face (-inf) is never accepted.
    """
    return float(tar_of(score_counts(scores, same), fmr)[0])


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Central percentile interval of bootstrap values."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


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


@dataclass(frozen=True)
class IdentificationDet:
    """Open-set identification DET curve: FNIR against FPIR at every threshold where FPIR changes (strictest
    first). A search names someone when its top score reaches the threshold, as ``Gallery.identify`` decides."""

    thresholds: np.ndarray
    fpir: np.ndarray
    fnir: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "threshold": [round(float(t), 6) for t in self.thresholds],
            "fpir": [round(float(f), 6) for f in self.fpir],
            "fnir": [round(float(f), 6) for f in self.fnir],
        }


def identification_det(mated_rank1_scores: np.ndarray, non_mated_top: np.ndarray) -> IdentificationDet:
    """FPIR (share of non-mated searches whose top score reaches the threshold) and FNIR (share of mated searches
    whose mate is not first with a score reaching it) at each distinct non-mated top score, strictest first.
    ``mated_rank1_scores`` as for ``fnir_at_fpir``; -inf (no face, a miss) never reaches a threshold."""
    non_mated = np.sort(non_mated_top)
    thresholds = np.unique(non_mated[np.isfinite(non_mated)])[::-1]
    named = len(non_mated) - np.searchsorted(non_mated, thresholds, side="left")
    missed = np.searchsorted(np.sort(mated_rank1_scores), thresholds, side="left")
    return IdentificationDet(
        thresholds=thresholds,
        fpir=named / max(len(non_mated), 1),
        fnir=missed / max(len(mated_rank1_scores), 1),
    )
