"""Why does a large gallery miss mated searches that exact search names? Decomposes ``bench/open_set.py``'s misses
on one of its cached galleries (built there first), at several HNSW search depths ("ef").

    python bench/open_set_misses.py --size 1000000 --photos 1 --depths 224 448 896
    python bench/open_set_misses.py --size 1000000 --photos 1 --confirm   # a "no" confirmed exhaustively

For each depth: the gallery's own search (``Gallery.rank_people``, the person scores ``identify`` decides with)
against exact search (the best score over each person's templates, over every template), both at the threshold
that gives the non-mated searches the same measured FPIR (1e-2); each mated search the gallery misses but exact
search names is put down to the graph (its search did not return the mate that exact search finds best), to the
threshold (the same person, below the gallery's threshold) or to the person score. Also the query latency of one
search on one thread (median and p99 over ``--latency-queries``, CPU seconds), and the share of mated searches
the stored calibration's point calls "uncertain", by reason (below the threshold or above it, within the band).
Figures are at equal measured FPIR, so they need no calibration per depth; the gallery's measurement itself must
be made with the depth it then decides with (``bench/open_set.py`` does that).

``--confirm``: the same at the default depth with each answer below the stored point's band (FPIR 1e-2; the score
from which ``identify`` names someone) confirmed over every template (``Gallery.rank_people(decided_by=...)``),
the latency of mated and non-mated searches apart (a stranger's search is nearly always confirmed), the share
confirmed, the memory of the index (with the int8 copy the exhaustive search scans) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

import open_set
from faceprint import Gallery
from faceprint.match import IdentificationPoint
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import DEFAULT_OPTIONS

FPIR = 1e-2


def gallery_answers(
    gallery: Gallery, queries: np.ndarray, codes: dict[int, int], point: IdentificationPoint | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best person by the gallery's search: score, person code (-1 when none). With ``point``, each
    answer it would not name is confirmed over every template and the score is the one it decides on (moved by the
    search's cohort offset)."""
    found = gallery.rank_people(queries, 1, decided_by=point)
    moved = [point.offset(r.cohort) if point is not None else 0.0 for r in found]
    best = np.array([r.people[0][1] + offset if r.people else -1.0 for r, offset in zip(found, moved)])
    named = np.array([codes[r.people[0][0]] if r.people else -1 for r in found])
    return best, named


def latency(gallery: Gallery, queries: np.ndarray, point: IdentificationPoint | None = None) -> dict[str, float]:
    """CPU seconds of one ``rank_people`` search at a time (the index searches one query on one thread)."""
    spent = []
    for query in queries:
        start = time.process_time()
        gallery.rank_people(query[None], 1, decided_by=point)
        spent.append(time.process_time() - start)
    return {"median_ms": 1e3 * float(np.median(spent)), "p99_ms": 1e3 * float(np.quantile(spent, 0.99))}


def decompose(
    exact: tuple[np.ndarray, np.ndarray], found: tuple[np.ndarray, np.ndarray], mated_people: np.ndarray
) -> dict[str, object]:
    """FNIR of both searches at equal measured FPIR, and the gallery's extra misses by cause."""
    mated = len(mated_people)
    (exact_best, exact_named), (best, named) = exact, found
    row: dict[str, object] = {}
    for label, scores in (("exact", exact_best), ("gallery", best)):
        threshold = float(np.quantile(scores[mated:], 1 - FPIR))
        row[f"{label}_threshold"] = round(threshold, 4)
    exact_threshold, threshold = row["exact_threshold"], row["gallery_threshold"]
    exact_hit = (exact_named[:mated] == mated_people) & (exact_best[:mated] > exact_threshold)
    hit = (named[:mated] == mated_people) & (best[:mated] > threshold)
    lost = exact_hit & ~hit
    graph = lost & (named[:mated] != mated_people)
    row |= {
        "exact_fnir": float(1 - exact_hit.mean()),
        "gallery_fnir": float(1 - hit.mean()),
        "mate_not_returned": int(((exact_named[:mated] == mated_people) & (named[:mated] != mated_people)).sum()),
        "lost_to_graph": int(graph.sum()),
        "lost_to_threshold": int((lost & ~graph & (np.abs(best[:mated] - exact_best[:mated]) < 1e-5)).sum()),
        "lost_to_person_score": int((lost & ~graph & (np.abs(best[:mated] - exact_best[:mated]) >= 1e-5)).sum()),
        "gained": int((hit & ~exact_hit).sum()),
        "non_mated_best_lower": int((best[mated:] < exact_best[mated:] - 1e-5).sum()),
        "mated": mated,
        "non_mated": len(best) - mated,
    }
    return row


def uncertain_by_reason(gallery: Gallery, best: np.ndarray, mated: int) -> dict[str, float]:
    """The stored calibration's point at FPIR 1e-2 on the mated searches: share "uncertain" below and above its
    threshold (above: named, but within the band)."""
    point = gallery.identification_point(FPIR, refresh=False)
    if point.threshold is None:
        return {"unsupported": 1.0}
    uncertain = np.array([point.decide(s) == "uncertain" for s in best[:mated]])
    above = best[:mated] >= point.threshold
    return {
        "threshold": round(point.threshold, 4),
        "uncertain_below": float((uncertain & ~above).mean()),
        "uncertain_above": float((uncertain & above).mean()),
    }


def confirmed(
    gallery: Gallery,
    queries: np.ndarray,
    codes: dict[int, int],
    exact: tuple[np.ndarray, np.ndarray],
    mated_people: np.ndarray,
    latency_queries: int,
) -> dict[str, object]:
    """The row of ``--confirm``: each answer below the stored point's band confirmed over every template."""
    mated = len(mated_people)
    point = gallery.identification_point(FPIR, refresh=False)
    assert point.band is not None, "the gallery has no supported point at FPIR 1e-2"
    confirm_below = point.band[1]
    graph = gallery.rank_people(queries, 1)
    graph_best = np.array([r.people[0][1] + point.offset(r.cohort) if r.people else -1.0 for r in graph])
    start = time.perf_counter()
    found = gallery_answers(gallery, queries, codes, point)
    row: dict[str, object] = {"depth": "confirmed", "confirm_below": round(confirm_below, 4)}
    row |= {"search_s": round(time.perf_counter() - start, 1)}
    row |= {
        "confirmed_mated": float((graph_best[:mated] < confirm_below).mean()),
        "confirmed_non_mated": float((graph_best[mated:] < confirm_below).mean()),
    }
    row |= decompose(exact, found, mated_people)
    row |= {"uncertain_at_stored": uncertain_by_reason(gallery, found[0], mated)}
    row |= {
        "latency_1_thread_mated": latency(gallery, queries[:mated][:latency_queries], point),
        "latency_1_thread_non_mated": latency(gallery, queries[mated:][:latency_queries], point),
        "index_memory_mb": round(gallery.index_stats()["memory_bytes"] / 2**20),  # type: ignore[operator]
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--non-mated", type=int, default=6000)
    parser.add_argument("--depths", type=int, nargs="*", default=[])
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--model", choices=list(EMBEDDING_MODELS), default=DEFAULT_OPTIONS.model.model_id)
    parser.add_argument("--confirm", action="store_true", help="also each 'no' confirmed over every template")
    args = parser.parse_args()
    model = EMBEDDING_MODELS[args.model]
    split = open_set.make_split(model, args.size, args.photos, args.non_mated)
    path, _ = open_set.build_gallery(model, split, args.size, args.photos)
    queries = np.concatenate([split.mated, split.non_mated])
    start = time.perf_counter()
    exact = open_set.best_over_templates(split)
    print(json.dumps({"exact_search_s": round(time.perf_counter() - start, 1)}), flush=True)
    with Gallery(path) as gallery:
        codes = {p.id: int(p.name[1:]) for p in gallery.people()}
        index = gallery.index.refresh()
        for depth in [None, *args.depths]:
            index.expansion_search = depth  # type: ignore[union-attr]  # an HNSW gallery
            start = time.perf_counter()
            found = gallery_answers(gallery, queries, codes)
            row = {"depth": index.expansion_search, "search_s": round(time.perf_counter() - start, 1)}  # type: ignore[union-attr]
            row |= decompose(exact, found, split.mated_people)
            row |= {"uncertain_at_stored": uncertain_by_reason(gallery, found[0], len(split.mated))}
            row |= {"latency_1_thread": latency(gallery, queries[len(split.mated) :][: args.latency_queries])}
            print(json.dumps(row), flush=True)
        if args.confirm:
            index.expansion_search = None  # type: ignore[union-attr]
            row = confirmed(gallery, queries, codes, exact, split.mated_people, args.latency_queries)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
