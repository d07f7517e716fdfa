"""A search's cohort (the people ranked after its best): identification decides on each candidate's similarity
moved by how far the probe's cohort scores from the gallery's measured mean, so that a probe scoring high on
everyone is discounted; without a fresh measurement made with cohorts it decides on similarities alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.match import COHORT, GalleryTail, identification_point, load_calibration

from .test_index import MODEL, clustered, fill


def test_the_tail_is_measured_on_scores_moved_by_their_cohorts() -> None:
    shipped = load_calibration(MODEL)
    rng = np.random.default_rng(1)
    cohorts = rng.normal(0.83, 0.02, 5000)
    best = cohorts + 0.03 + rng.normal(0, 0.006, 5000)  # a probe near everyone scores high on its best too
    tail = GalleryTail.from_scores(best, calibration=shipped, people=5000, templates=5000, seconds=0.0, cohorts=cohorts)
    assert tail.cohort_mean == pytest.approx(cohorts.mean(), abs=1e-6)
    assert GalleryTail.from_dict(tail.to_dict()) == tail
    moved = best - cohorts + tail.cohort_mean
    point = identification_point(MODEL, templates=5000, fpir=0.01, measured=tail)
    assert point.threshold == pytest.approx(np.quantile(moved, 0.99), abs=1e-3)
    assert point.offset(0.80) == pytest.approx(tail.cohort_mean - 0.80)
    assert point.offset(None) == 0.0, "a search with no one after its best is not moved"
    # Searches with no cohort keep their best score: the mean is that of the others.
    partial = GalleryTail.from_scores(
        best,
        calibration=shipped,
        people=5000,
        templates=5000,
        seconds=0.0,
        cohorts=np.where(best > 0.9, np.nan, cohorts),
    )
    assert partial.cohort_mean == pytest.approx(cohorts[best <= 0.9].mean(), abs=1e-6)
    # A stale measurement, or one made without cohorts (before faceprint used them): similarities decide.
    assert identification_point(MODEL, templates=6000, measured=tail).offset(0.80) == 0.0
    plain = GalleryTail.from_scores(best, calibration=shipped, people=5000, templates=5000, seconds=0.0)
    assert plain.cohort_mean is None and plain.to_dict()["cohort_mean"] is None
    assert identification_point(MODEL, templates=5000, measured=plain).offset(0.80) == 0.0


def test_identify_decides_on_the_similarity_moved_by_the_cohort(tmp_path: Path) -> None:
    people = clustered(600, 2, seed=11)  # the first 300 enrolled with one photo; the others are strangers
    queries = np.concatenate([people[:300, 1], people[300:, 0]])
    with Gallery(tmp_path / "g.db") as gallery:
        fill(gallery, people[:300, :1])
        answers = gallery.identify_templates(queries, fpir=0.1)
        point = gallery.identification_point(0.1)
    assert point.measured is not None and point.measured.cohort_mean is not None and point.threshold is not None
    enrolled = people[:300, 0]
    flipped = 0
    for query, answer in zip(queries, answers):
        ranked = np.sort(enrolled @ query)[::-1]
        best = answer.candidates[0]
        assert best.similarity == pytest.approx(ranked[0], abs=1e-5)
        assert best.offset == pytest.approx(point.measured.cohort_mean - ranked[1 : COHORT + 1].mean(), abs=1e-5)
        assert best.score == pytest.approx(best.similarity + best.offset)
        assert (answer.match is not None) == (best.score >= point.threshold)
        assert best.decision == point.decide(best.score)
        flipped += (best.similarity >= point.threshold) != (best.score >= point.threshold)
    assert flipped >= 5, "the cohort must change some decisions for this test to mean something"
