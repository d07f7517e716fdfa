"""A search's cohort (the people ranked after its best): where a gallery's own measurement tabulates them through
the target's band, identification decides on each candidate's similarity moved by how far the probe's cohort
scores from the gallery's mean, so that a probe scoring high on everyone is discounted; elsewhere (a small or stale
measurement, or none) it decides on similarities alone, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.match import COHORT, GalleryTail, identification_point, load_calibration

from .test_index import MODEL, clustered, fill


def _tail(searches: int, seed: int = 1) -> tuple[GalleryTail, np.ndarray, np.ndarray]:
    """A measurement of ``searches`` leave-one-person-out searches whose best scores follow their cohorts."""
    rng = np.random.default_rng(seed)
    cohorts = rng.normal(0.83, 0.02, searches)
    best = cohorts + 0.03 + rng.normal(0, 0.006, searches)  # a probe near everyone scores high on its best too
    shipped = load_calibration(MODEL)
    tail = GalleryTail.from_scores(
        best, calibration=shipped, people=searches, templates=searches, seconds=0.0, cohorts=cohorts
    )
    return tail, best, cohorts


def test_a_measurement_reaching_the_band_decides_on_cohort_moved_scores() -> None:
    tail, best, cohorts = _tail(20_000)
    assert tail.cohort_mean == pytest.approx(cohorts.mean(), abs=1e-6)
    assert GalleryTail.from_dict(tail.to_dict()) == tail
    moved = best - cohorts + tail.cohort_mean
    point = identification_point(MODEL, templates=20_000, fpir=0.01, measured=tail)
    assert point.by_cohort and "cohort" in point.basis and point.to_dict()["cohort_mean"] == tail.cohort_mean
    assert point.threshold == pytest.approx(np.quantile(moved, 0.99), abs=1e-3)
    assert point.band == (
        pytest.approx(np.quantile(moved, 0.9), abs=1e-3),
        pytest.approx(np.quantile(moved, 0.999), abs=2e-3),
    )
    assert point.offset(0.80) == pytest.approx(tail.cohort_mean - 0.80)
    assert point.offset(None) == 0.0, "a search with no one after its best is not moved"
    # Beyond the moved table's reach, similarities decide (the shipped tail is theirs): 1e-3 needs 1e-4 tabulated.
    deeper = identification_point(MODEL, templates=20_000, fpir=1e-3, measured=tail)
    assert not deeper.by_cohort and deeper.offset(0.80) == 0.0 and "cohort" not in deeper.basis


def test_similarities_decide_without_a_fresh_measurement_of_cohorts_through_the_band() -> None:
    tail, best, _ = _tail(5_000)
    assert not identification_point(MODEL, templates=5_000, fpir=0.01, measured=tail).by_cohort  # 1e-3: 5 searches
    assert identification_point(MODEL, templates=5_000, fpir=0.1, measured=tail).by_cohort
    assert not identification_point(MODEL, templates=6_000, fpir=0.1, measured=tail).by_cohort  # stale
    shipped = load_calibration(MODEL)
    plain = GalleryTail.from_scores(best, calibration=shipped, people=5_000, templates=5_000, seconds=0.0)
    assert plain.cohort_mean is None and plain.cohort_thresholds is None
    assert not identification_point(MODEL, templates=5_000, fpir=0.1, measured=plain).by_cohort
    # A measurement stored before faceprint used cohorts reads as one without them.
    stored = tail.to_dict()
    stored.pop("cohort_mean")
    for row in stored["points"]:
        row.pop("cohort_threshold")
    assert GalleryTail.from_dict(stored) == plain


@pytest.mark.parametrize("people", [300, 1200])
def test_identify_decides_on_the_similarity_moved_by_the_cohort(tmp_path: Path, people: int) -> None:
    """One photo a person; the strangers come from the same population. 1,200 people measure FPIR 1e-2 (the strict
    end of 0.1's band) on 12 searches: cohorts decide; 300 people do not reach it: similarities decide."""
    vectors = clustered(2 * people, 2, seed=11)  # the first half enrolled; the others are strangers
    queries = np.concatenate([vectors[:people, 1], vectors[people:, 0]])
    with Gallery(tmp_path / "g.db") as gallery:
        fill(gallery, vectors[:people, :1])
        answers = gallery.identify_templates(queries, fpir=0.1)
        point = gallery.identification_point(0.1)
    assert point.measured is not None and point.measured.cohort_mean is not None and point.threshold is not None
    assert point.by_cohort == (people == 1200)
    enrolled = vectors[:people, 0]
    flipped = 0
    for query, answer in zip(queries, answers):
        ranked = np.sort(enrolled @ query)[::-1]
        best = answer.candidates[0]
        assert best.similarity == pytest.approx(ranked[0], abs=1e-5)
        offset = point.measured.cohort_mean - ranked[1 : COHORT + 1].mean() if point.by_cohort else 0.0
        assert best.offset == pytest.approx(offset, abs=1e-5)
        assert best.score == pytest.approx(best.similarity + best.offset)
        assert (answer.match is not None) == (best.score >= point.threshold)
        assert best.decision == point.decide(best.score)
        flipped += (best.similarity >= point.threshold) != (best.score >= point.threshold)
    if point.by_cohort:
        assert flipped >= 5, "the cohort must change some decisions for this test to mean something"


@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_a_measurement_with_one_template_a_person_scores_every_search_as_exact_search_does(
    tmp_path: Path, index: str
) -> None:
    """It ranks the owners of only the COHORT + 2 nearest templates (the left-out person's own included): with one
    template a person they are the best people in order, so its best and cohort scores are exact search's."""
    vectors = clustered(400, 1, seed=5)[:, 0]
    with Gallery(tmp_path / "g.db", index=index) as gallery:
        fill(gallery, vectors[:, None])
        tail = gallery.measure_identification()
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)  # each search leaves its own person out
    ranked = -np.sort(-scores, axis=1)
    expected = GalleryTail.from_scores(
        ranked[:, 0],
        calibration=load_calibration(MODEL),
        people=400,
        templates=400,
        seconds=0.0,
        cohorts=ranked[:, 1 : COHORT + 1].mean(axis=1),
    )
    assert tail.searches == 400
    assert tail.cohort_mean == pytest.approx(expected.cohort_mean, abs=1e-5)
    assert tail.thresholds == pytest.approx(expected.thresholds, abs=1e-5)
    assert tail.cohort_thresholds == pytest.approx(expected.cohort_thresholds, abs=1e-5)
