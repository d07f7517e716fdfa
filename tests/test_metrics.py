"""Evaluation metrics against hand-computed values on small synthetic score sets (no images)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from faceprint.errors import ModelError, UnsupportedFMRError
from faceprint.evaluation import metrics
from faceprint.evaluation.calibration import ScoredPairs, calibration_points, supported_fmrs, thresholds_at
from faceprint.evaluation.fairness import group_rates, quality_groups
from faceprint.match import Calibration, load_calibration


def labelled(genuine: list[float], impostor: list[float]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.array([*genuine, *impostor], dtype=float)
    return scores, np.array([True] * len(genuine) + [False] * len(impostor))


def normal_quantiles(mean: float, n: int) -> np.ndarray:
    """n evenly spaced quantiles of N(mean, 1): a sample with no sampling noise."""
    return np.array([NormalDist(mean, 1).inv_cdf((i + 0.5) / n) for i in range(n)])


def test_roc_points_by_hand() -> None:
    scores, same = labelled([0.9, 0.8, 0.7, 0.6], [0.75, 0.5, 0.4, 0.3])
    curve = metrics.roc(scores, same)
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert curve.tar.tolist() == [0.25, 0.5, 0.5, 0.75, 1, 1, 1, 1]
    assert curve.fmr.tolist() == [0, 0, 0.25, 0.25, 0.25, 0.5, 0.75, 1]


def test_roc_keeps_tied_scores_together() -> None:
    scores, same = labelled([0.5, 0.9], [0.5])
    curve = metrics.roc(scores, same)
    assert curve.thresholds.tolist() == [0.9, 0.5]
    assert curve.fmr.tolist() == [0, 1] and curve.tar.tolist() == [0.5, 1]


def test_eer_exact_at_a_crossing_point() -> None:
    # At threshold 4: one genuine of four rejected (3), one impostor of four accepted (4.5).
    assert metrics.eer(*labelled([3, 4, 5, 6], [1, 2, 3.5, 4.5])) == pytest.approx(0.25)


def test_eer_interpolates_between_thresholds() -> None:
    # FNMR stays 1/2 while FMR jumps from 1/3 to 2/3: the curves cross midway, at 1/2.
    assert metrics.eer(*labelled([2, 4], [1, 3, 5])) == pytest.approx(0.5)


def test_metrics_on_a_known_distribution() -> None:
    # genuine ~ N(1, 1), impostor ~ N(-1, 1): EER = Phi(-1), AUC = Phi(sqrt 2),
    # TAR at FMR 1e-2 = P(N(1,1) > -1 + z_0.99).
    n = 20_000
    scores, same = labelled(normal_quantiles(1, n).tolist(), normal_quantiles(-1, n).tolist())
    unit = NormalDist()
    assert metrics.eer(scores, same) == pytest.approx(unit.cdf(-1), abs=2e-4)
    assert metrics.roc_auc(scores, same) == pytest.approx(unit.cdf(2**0.5), abs=2e-4)
    expected_tar = 1 - unit.cdf(-1 + unit.inv_cdf(0.99) - 1)
    assert metrics.tar_at_fmr(scores, same, 1e-2) == pytest.approx(expected_tar, abs=5e-4)


def test_tar_at_fmr_by_hand() -> None:
    impostors = [0.1 * i for i in range(1, 11)]  # 0.1 .. 1.0
    scores, same = labelled([0.95, 0.92, 0.85, 0.5], impostors)
    # FMR 0.1 of 10 impostors: one may pass, so the threshold is the second highest (0.9).
    assert metrics.threshold_at_fmr(scores[~same], 0.1) == pytest.approx(0.9)
    assert metrics.tar_at_fmr(scores, same, 0.1) == 0.5
    assert metrics.tar_at_fmr(scores, same, 0.01) == 0.0  # nothing beats the best impostor (1.0)


def test_auc_counts_ties_half() -> None:
    assert metrics.roc_auc(*labelled([0.5], [0.5])) == 0.5
    assert metrics.roc_auc(*labelled([0.9, 0.5], [0.5, 0.1])) == pytest.approx(0.875)


def test_support_needs_ten_expected_errors() -> None:
    assert metrics.support(10_000, 1e-3) == "ok"
    assert metrics.support(1_000, 1e-3) == "low"
    assert metrics.support(999, 1e-3) == "none"


def test_ten_fold_threshold_is_chosen_without_the_test_fold() -> None:
    # Folds 1-9: a genuine pair at 0.8 and an impostor at 0.2 each. Fold 0: three genuine pairs at
    # ~0.46 and an impostor at 0.1. Trained without fold 0 the best cut is 0.5 (which fails fold 0's
    # genuine pairs); every other fold's training set includes fold 0 and cuts at (0.2 + 0.45) / 2.
    scores = [0.45, 0.46, 0.47, 0.1] + [0.8, 0.2] * 9
    same = [True, True, True, False] + [True, False] * 9
    folds = np.array([0, 0, 0, 0] + [k for k in range(1, 10) for _ in range(2)])
    scores, same = np.array(scores), np.array(same)
    thresholds = metrics.ten_fold_thresholds(scores, same, folds)
    assert thresholds[0] == pytest.approx(0.5)
    assert all(thresholds[k] == pytest.approx(0.325) for k in range(1, 10))
    accuracy = metrics.fold_accuracies(metrics.ten_fold_correct(scores, same, folds), folds)
    assert accuracy.tolist() == [0.25] + [1.0] * 9


def test_pairs_without_a_face_are_errors() -> None:
    scores, same = labelled([0.9, -np.inf, 0.8], [0.1, -np.inf, 0.2])
    correct = metrics.ten_fold_correct(scores, same, np.array([0, 1, 1, 0, 1, 1]))
    assert correct.tolist() == [True, False, True, True, False, True]


def test_bootstrap_resamples_are_measured_like_the_data() -> None:
    scores, same = labelled(normal_quantiles(1, 60).tolist(), normal_quantiles(-1, 40).tolist())
    scores = np.round(scores, 1)  # plenty of ties
    boot = metrics.resampled_counts(scores, same, resamples=50, seed=1)
    assert (boot.genuine.sum(axis=1) == 60).all() and (boot.impostor.sum(axis=1) == 40).all()
    auc, eer, tar = metrics.auc_of(boot), metrics.eer_of(boot), metrics.tar_of(boot, 0.1)
    for row in range(50):
        # Rebuild resample `row` as plain arrays and measure it independently.
        genuine = np.repeat(boot.scores, boot.genuine[row])
        impostor = np.repeat(boot.scores, boot.impostor[row])
        wins = (genuine[:, None] > impostor[None, :]) + 0.5 * (genuine[:, None] == impostor[None, :])
        assert auc[row] == pytest.approx(wins.mean())
        rebuilt, label = labelled(genuine.tolist(), impostor.tolist())
        assert eer[row] == pytest.approx(metrics.eer(rebuilt, label))
        assert tar[row] == pytest.approx(np.mean(genuine > np.sort(impostor)[::-1][4]))  # 4 of 40 may pass
    low, high = metrics.interval(eer)
    assert low < metrics.eer(scores, same) < high
    assert np.array_equal(metrics.resampled_counts(scores, same, 50, seed=1).genuine, boot.genuine)


def test_identification_ranks_cmc_and_open_set() -> None:
    scores = np.array(
        [
            [0.9, 0.5, 0.1],  # mate 0 first
            [0.7, 0.6, 0.2],  # mate 1 second
            [0.3, 0.2, 0.1],  # mate 2 third
            [-np.inf, -np.inf, -np.inf],  # no face: never found
        ]
    )
    ranks = metrics.mate_ranks(scores, np.array([0, 1, 2, 0]))
    assert ranks.tolist() == [1, 2, 3, np.inf]
    assert metrics.cmc(ranks, 3).tolist() == [0.25, 0.5, 0.75]
    rank1 = np.array([0.9, -np.inf, -np.inf, -np.inf])
    non_mated_top = np.array([0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    # FPIR 0.1 of 10 searches: the threshold is the second highest top score, 0.8; 0.9 still passes.
    fnir, threshold = metrics.fnir_at_fpir(rank1, non_mated_top, 0.1)
    assert (fnir, threshold) == (0.75, 0.8)


def test_identification_det_gives_fpir_and_fnir_at_each_non_mated_score() -> None:
    rank1 = np.array([0.9, 0.75, 0.3, -np.inf])  # the last mated search's mate was not first: always missed
    non_mated_top = np.array([0.8, 0.6, 0.6, -np.inf])  # the last: no face, never named
    det = metrics.identification_det(rank1, non_mated_top)
    assert det.thresholds.tolist() == [0.8, 0.6]
    assert det.fpir.tolist() == [0.25, 0.75]
    assert det.fnir.tolist() == [0.75, 0.5]  # at 0.8 only 0.9 is named; at 0.6 also 0.75
    assert det.to_dict()["fnir"] == [0.75, 0.5]
    empty = metrics.identification_det(rank1, np.zeros(0))
    assert empty.fpir.size == 0 and empty.to_dict() == {"threshold": [], "fpir": [], "fnir": []}


def test_group_rates_and_ratio() -> None:
    scores, same = labelled([0.9, 0.4, 0.9, 0.9], [0.7, 0.2, 0.2, 0.2])
    groups = np.array(["a", "a", "b", "b", "a", "a", "b", "b"], dtype=object)
    result = group_rates(scores, same, groups, threshold=0.5)
    a, b = result["groups"]
    assert (a["fnmr"], a["fmr"], b["fnmr"], b["fmr"]) == (0.5, 0.5, 0.0, 0.0)
    assert result["fmr_ratio"]["ratio"] is None and "b has no errors" in result["fmr_ratio"]["note"]
    scores[5], groups[5] = 0.6, "b"  # a: 1 false match of 1 impostor pair; b: 1 of 3
    ratio = group_rates(scores, same, groups, threshold=0.5)["fmr_ratio"]
    assert (ratio["ratio"], ratio["max_group"], ratio["min_group"]) == (pytest.approx(3.0), "a", "b")


def test_quality_buckets_take_the_worse_face() -> None:
    good = np.array([[200.0, 100.0, 5.0]] * 3)
    worse = np.array([[50.0, 100.0, 40.0], [200.0, 10.0, 5.0], [100.0, 50.0, -20.0]])
    buckets = quality_groups(good, worse)
    assert buckets["head turn (|yaw|, more turned face)"].tolist() == [">= 30°", "< 15°", "15-30°"]
    assert buckets["face size (px, smaller face)"][0].startswith("low")


def test_calibration_thresholds_and_supported_range() -> None:
    impostors = np.arange(1000)[::-1] / 1000  # 0.999 .. 0.000
    assert thresholds_at(impostors, np.ones(1000), np.array([1e-2])) == pytest.approx([(0.990 + 0.989) / 2])
    assert supported_fmrs(1000).tolist() == [1e-1, 3e-2, 1e-2]
    (point,) = calibration_points(ScoredPairs(impostors), ScoredPairs(np.array([0.995, 0.5])), np.array([1e-2]))
    assert point["false_matches"] == 10 and point["fnmr"] == 0.5
    low, high = point["threshold_90ci"]
    assert low <= point["threshold"] <= high


def test_calibration_intervals_resample_people_when_known() -> None:
    # Two people whose impostor pairs all score high: resampling people moves the threshold a lot,
    # resampling pairs barely does.
    rng = np.random.default_rng(0)
    people = 20
    a, b = np.triu_indices(people, k=1)
    scores = rng.normal(0.8, 0.02, len(a))
    scores[(a < 2) | (b < 2)] += 0.1
    genuine = ScoredPairs(np.full(people, 0.95), np.arange(people), np.arange(people))
    by_people = calibration_points(ScoredPairs(scores, a, b), genuine, np.array([0.1]))[0]["threshold_90ci"]
    by_pairs = calibration_points(ScoredPairs(scores), ScoredPairs(genuine.scores), np.array([0.1]))[0]
    assert by_people[1] - by_people[0] > 2 * (by_pairs["threshold_90ci"][1] - by_pairs["threshold_90ci"][0])


def test_decision_bands_follow_the_fmr() -> None:
    calibration = load_calibration("dlib-resnet-v1")
    loose, strict = calibration.band(1e-3)
    assert (loose, strict) == (calibration.threshold(1e-2), calibration.threshold(1e-4))
    assert calibration.decide(strict, 1e-3) == "match"
    assert calibration.decide((loose + strict) / 2, 1e-3) == "uncertain"
    assert calibration.decide(loose - 1e-6, 1e-3) == "no_match"
    # At the strictest calibrated FMR the band is one-sided: above the threshold is a match.
    lowest = calibration.fmrs[-1]
    assert calibration.decide(calibration.threshold(lowest), lowest) == "match"
    with pytest.raises(UnsupportedFMRError, match="outside the range calibrated"):
        calibration.threshold(1e-9)


def test_malformed_calibration_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="malformed calibration"):
        Calibration.from_dict({"model_id": "x", "points": [{"fmr": 0.1}], "source": "s"})
