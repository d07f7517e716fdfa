"""A "no" is confirmed over every template: a mate the HNSW graph does not return is still named, and the gallery's
own measurement searches the same way (so its thresholds hold for the confirmed answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import faceprint.gallery as gallery_module
from faceprint import Gallery
from faceprint.index import ExactIndex, hnsw
from faceprint.index.hnsw import HNSWIndex

from .test_index import DIM, clustered, fill

PEOPLE = 400
FPIR = 0.1


def shallow(gallery: Gallery, monkeypatch: pytest.MonkeyPatch, *, fewest_candidates: bool = True) -> None:
    """Make the gallery's graph search as shallow as it goes (ef 1; one candidate template per person ranked with
    ``fewest_candidates``): it loses mates."""
    if fewest_candidates:
        monkeypatch.setattr(gallery_module, "_TEMPLATES_PER_CANDIDATE", 1)
    graph = gallery.index.refresh()  # type: ignore[attr-defined]
    assert isinstance(graph, HNSWIndex)
    graph.expansion_search = 1


@pytest.mark.parametrize("storage", ["f32", "i8"])
def test_a_mate_the_graph_does_not_return_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str
) -> None:
    people = clustered(PEOPLE, 2, seed=5)  # the first photo enrolled, the second the probe
    with Gallery(tmp_path / "g.db", index="hnsw", index_storage=storage) as gallery:
        fill(gallery, people[:, :1])
        shallow(gallery, monkeypatch)
        own = [gallery.person(f"p{n}").id for n in range(PEOPLE)]
        probes = people[:, 1]
        by_graph = [row.people[0][0] for row in gallery.rank_people(probes, 1)]
        lost = sum(p != o for p, o in zip(by_graph, own))
        assert lost >= 10  # the graph alone loses mates, so the test means something
        confirmed = gallery.rank_people(probes, 1, confirm_below=1.0)  # every answer confirmed
        assert [row.people[0][0] for row in confirmed] == own
        # Above the confirmation score nothing is searched again: the graph's answers stand.
        assert [row.people[0][0] for row in gallery.rank_people(probes, 1, confirm_below=-1.0)] == by_graph
        # identify confirms each answer below the score from which it names someone: the graph's answers that
        # fall short of it (mates lost among them) name their own person; those above it stand as they are.
        # (at an FPIR its own measurement reaches: these synthetic strangers score far above real ones)
        point = gallery.identification_point(FPIR)
        assert point.measured is not None and point.band is not None
        graph = [(row.people[0], point.offset(row.cohort)) for row in gallery.rank_people(probes, 5)]
        expected = [o if score + moved < point.band[1] else person for ((person, score), moved), o in zip(graph, own)]
        assert (
            sum(person != o and score + moved < point.band[1] for ((person, score), moved), o in zip(graph, own)) >= 10
        )
        answers = gallery.identify_templates(probes, fpir=FPIR)
        assert [a.match.person_id if a.match else None for a in answers] == expected
        assert {a.decision for a in answers} == {"match"}


def test_the_measurement_searches_as_a_confirmed_no_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    people = clustered(PEOPLE, 2, seed=6)
    path = tmp_path / "g.db"
    with Gallery(path, index="hnsw") as gallery:
        fill(gallery, people)
        # As many candidates as identify ranks: with a handful, a cohort (the people after the best) reaches the
        # candidates' last, where the exhaustive search's int8 pre-selection may pick another of near-equal score.
        shallow(gallery, monkeypatch, fewest_candidates=False)
        through_graph = gallery.measure_identification()
    with Gallery(path, index="exact") as exact:
        exactly = exact.measure_identification()
    assert through_graph.searches == exactly.searches == 2 * PEOPLE
    assert through_graph.thresholds == pytest.approx(exactly.thresholds, abs=1e-6)


@pytest.mark.parametrize("storage", ["f32", "f16", "i8"])
@pytest.mark.parametrize("batch", [True, False], ids=["blocks", "per-query"])
def test_the_exhaustive_scan_finds_what_exact_search_finds_and_follows_every_change(
    storage: str, batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hnsw, "_SCAN_BLOCK", 64)  # a batch's scan crosses blocks, tombstones in several
    vectors = clustered(200, 2, seed=7).reshape(-1, DIM)
    graph = HNSWIndex.empty(DIM, storage)
    graph.add(np.arange(300), vectors[:300])
    probes = vectors[350:]
    assert len(probes) >= hnsw.BATCH_SCAN

    def scanned(index: HNSWIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
        if batch:
            return index.scan(probes, k)
        rows = [index.scan(probe, k) for probe in probes]
        return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])

    def assert_exact(index: HNSWIndex, live: np.ndarray) -> None:
        scores, ids = scanned(index, 5)
        exact_scores, exact_ids = ExactIndex(live, vectors[live]).search(probes, 5)
        # f32: exact scores, so exact search's best first (in blocks: its five, as the per-query scan's int8
        # pre-selection may not be at the fifth); quantised: its own scores (the caller re-scores more candidates
        # than it wants exactly), so exact search's best among them
        _, more = scanned(index, 20)
        assert all(best in row for best, row in zip(exact_ids[:, 0], more if storage == "i8" else ids))
        if storage == "f32":
            assert (ids[:, 0] == exact_ids[:, 0]).all()
            assert (ids == exact_ids).all() or not batch
        assert scores == pytest.approx(exact_scores, abs=1e-2 if storage == "i8" else 2e-3)
        assert (np.diff(scores, axis=1) <= 0).all()  # best first
        assert set(ids.ravel()) <= set(live.tolist())

    assert_exact(graph, np.arange(300))
    graph.add(np.arange(300, 350), vectors[300:350])  # after the scan's copy was made
    graph.remove(np.arange(0, 300, 2))  # tombstones: never returned
    live = np.concatenate([np.arange(1, 300, 2), np.arange(300, 350)])
    assert_exact(graph, live)
    assert_exact(graph.copy(), live)
