"""Open-set identification at a false-positive identification rate (FPIR): does the stated FPIR hold as the
gallery grows, and what does it cost in misses (FNIR)?

    python bench/open_set.py --aggregations              # person-level scores compared (faces-dev, 1 and 3 photos)
    python bench/open_set.py --sizes 600 10000           # the FPIR rule at 600 and 10k templates
    python bench/open_set.py --sizes 100000 --photos 3   # larger (gallery build and calibration are timed)
    python bench/open_set.py --photos 1 3 5 --enroll-at-most 5   # 5 photos: mated searches from the 6th photo on
    python bench/open_set.py --models dlib-resnet-v1 sface-2021dec   # other models (default: the default model)
    python bench/open_set.py --sizes 1000000 --photos 1 --index exact  # exact search at any size (no HNSW graph)

Data: the 1,783 real faces-dev templates of the model (bench/distractors.py: embedded by the pipeline that
makes its templates) and synthetic distractor people fitted to them, per model. 30% of the real identities
are withheld (each searches with up to ``--enroll-at-most`` of their photos as non-mated searches); of the others,
each person's first 1 or 3 photos (in a seeded order) are enrolled and their photos beyond the third
(``--enroll-at-most``) are the mated searches (the same searches for every number of photos per person).
Distractor people (1 or 3 templates each) fill the gallery up to the size, and fresh distractor people (one
template each, never enrolled) join the real strangers as many per real one as the gallery holds distractor
people per real person, so that strangers come from the gallery's own population (``strangers_like_the_gallery``),
at most ``--non-mated`` searches per gallery. Where one gallery gives fewer (600 templates: mostly real people,
whose strangers must be real too), the split is drawn again with other withheld people (a fold: its own gallery,
measurement and searches) until the folds together make ``--non-mated`` searches. Each gallery is a real faceprint
SQLite gallery (bench/.cache/open-set-*.db, ``-foldN`` for the folds after the first); its own calibration
(``Gallery.measure_identification``) is measured and timed, then every search goes through
``Gallery.rank_people`` and the decision of ``Gallery.identification_point`` (each answer below the highest target's
band confirmed over every template, as ``identify`` confirms a "no"). ``--index`` is the gallery's own
search mode (``Gallery(index=...)``): ``auto`` (the product's: exact below
``faceprint.index.synced.ANN_THRESHOLD`` templates, HNSW from there), or ``exact``/``hnsw`` at every size.

Reported for each FPIR target, pooled over the folds (each deciding with its own gallery's threshold): the
threshold (median and range over folds), the measured FPIR with its 95% Wilson interval and an interval that
resamples whole strangers (``clustered_interval``: a person's photos, and the same photos in several folds, are
not independent searches), the count of searches, the FPIR of the real strangers alone, FNIR (a mated search not
named as its own person), the share of mated searches answered "uncertain", and the same rule without the
gallery's measurement (the shipped tail scaled to the size, and extrapolated below its lowest FMR where the size
needs it: the bound used while a measurement is stale). The plain per-comparison threshold of the previous rule
(FMR 1e-3) is measured alongside, and so is the previous person score (best over their templates) at the
threshold that gives the same measured FPIR (``old_scores_same_fpir_fnir``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import common
import distractors
from faceprint import Gallery
from faceprint.choices import MODES, Mode
from faceprint.gallery.records import NewTemplate
from faceprint.match import GalleryTail, IdentificationPoint, identification_point, operating_point
from faceprint.models import EMBEDDING_MODELS, EmbeddingModel
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.profiles import options_for_model

SEED = 0
WITHHELD = 0.3
#: Photos beyond this many of a person are mated searches (the same for 1 and 3 photos enrolled; --enroll-at-most).
ENROLL_AT_MOST = 3
FPIRS = (1e-1, 1e-2, 1e-3)
DATA_VERSION = 1
#: People written to a benchmark gallery per transaction.
WRITE_CHUNK = 10_000


@dataclass(frozen=True)
class Split:
    enrolled: np.ndarray
    enrolled_people: np.ndarray
    mated: np.ndarray
    mated_people: np.ndarray
    non_mated: np.ndarray
    non_mated_real: int
    #: who made each non-mated search: a faces-dev identity code, or a negative one for a fresh distractor person
    #: (each its own, in every fold)
    non_mated_people: np.ndarray
    #: rows of ``distractors.real_templates``: the real people's enrolled templates (the distractor people's
    #: follow them), the mated searches, the real strangers' searches
    enrolled_rows: np.ndarray
    mated_rows: np.ndarray
    stranger_rows: np.ndarray


def make_split(
    model: EmbeddingModel,
    size: int,
    photos: int,
    non_mated: int,
    enroll_at_most: int = ENROLL_AT_MOST,
    *,
    fold: int = 0,
    like_the_gallery: bool = True,
) -> Split:
    """Real faces-dev people (some withheld: which ones depends on ``fold``) and distractor people, in ``model``'s
    templates; see the module docstring. The non-mated searches are the withheld people's photos and fresh
    distractor people as many as the gallery holds per real person (``strangers_like_the_gallery``), at most
    ``non_mated`` in all (without ``like_the_gallery``: fresh distractor people up to ``non_mated``)."""
    real = distractors.real_templates(model)
    generator = distractors.Generator.fit(real, model)
    rng = np.random.default_rng(SEED + fold)
    identities = rng.permutation(np.unique(real.identities))
    withheld = set(identities[: int(WITHHELD * len(identities))].tolist())
    enrolled, enrolled_people, mated, mated_people, strangers = [], [], [], [], []
    for identity in identities:
        rows = rng.permutation(np.flatnonzero(real.identities == identity))
        if identity in withheld:  # a stranger searches with as many photos as an enrolled person has at most
            strangers += rows[:enroll_at_most].tolist()
            continue
        enrolled += rows[:photos].tolist()
        enrolled_people += [int(identity)] * len(rows[:photos])
        mated += rows[enroll_at_most:].tolist()
        mated_people += [int(identity)] * len(rows[enroll_at_most:])
    real_people = len(identities) - len(withheld)
    fill_people = max(size - len(enrolled), 0) // photos
    fill, fill_codes = generator.sample(fill_people, photos, rng)
    fresh_people = (
        strangers_like_the_gallery(len(strangers), real_people, fill_people, non_mated)
        if like_the_gallery
        else max(non_mated - len(strangers), 0)
    )
    fresh, _ = generator.sample(fresh_people, 1, rng)
    first_synthetic = int(real.identities.max()) + 1
    return Split(
        enrolled=np.concatenate([real.vectors[enrolled], fill]).astype(np.float32),
        enrolled_people=np.concatenate([enrolled_people, first_synthetic + fill_codes]).astype(np.int64),
        mated=real.vectors[mated],
        mated_people=np.array(mated_people, np.int64),
        non_mated=np.concatenate([real.vectors[strangers], fresh]).astype(np.float32),
        non_mated_real=len(strangers),
        non_mated_people=np.concatenate(
            [real.identities[strangers], -1 - fold * non_mated - np.arange(fresh_people)]
        ).astype(np.int64),
        enrolled_rows=np.array(enrolled, np.int64),
        mated_rows=np.array(mated, np.int64),
        stranger_rows=np.array(strangers, np.int64),
    )


def strangers_like_the_gallery(real_searches: int, real_people: int, synthetic_people: int, non_mated: int) -> int:
    """Fresh distractor people to search with beside ``real_searches`` photos of withheld real people: as many per
    real search as the gallery holds synthetic people per real one, so that strangers come from the population
    the gallery is drawn from (and measures itself on), capped at ``non_mated`` searches in all.

    Real strangers meet a gallery of real people more closely than the distractors do (the generator's tail is a
    little lighter: ``distractors.check``), so a mix richer in distractors than the gallery understates FPIR. At
    600 templates the gallery is 71% (1 photo) or 100% (3 photos) real people, so are its strangers; from 10,000
    templates on the cap decides, and the real share of strangers (270 of 6,000) is at least the gallery's."""
    matched = round(real_searches * synthetic_people / max(real_people, 1))
    return max(min(matched, non_mated - real_searches), 0)


# --- person-level scores ----------------------------------------------------------------------


def person_scores(queries: np.ndarray, vectors: np.ndarray, people: np.ndarray, method: str) -> np.ndarray:
    """Searches x people (in ``np.unique(people)`` order): max, mean of the top 2 or 3 of a person's template
    scores, or the score of their normalised mean template."""
    codes, column = np.unique(people, return_inverse=True)
    if method == "centroid":
        centroids = np.zeros((len(codes), vectors.shape[1]))
        np.add.at(centroids, column, vectors)
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        return queries @ centroids.T
    scores = queries @ vectors.T
    top = int(method.removeprefix("top")) if method.startswith("top") else 1
    ordered = np.sort(_group(scores, column, len(codes)), axis=2)[:, :, ::-1]  # searches x people x templates
    valid = np.isfinite(ordered[:, :, :top])
    return np.where(valid, ordered[:, :, :top], 0).sum(axis=2) / valid.sum(axis=2)


def _group(scores: np.ndarray, column: np.ndarray, people: int) -> np.ndarray:
    """Searches x people x (up to the most templates of anyone) scores, -inf padded."""
    slot = np.zeros(len(column), np.int64)
    seen: dict[int, int] = {}
    for i, c in enumerate(column):
        slot[i] = seen.get(int(c), 0)
        seen[int(c)] = slot[i] + 1
    grouped = np.full((scores.shape[0], people, slot.max() + 1), -np.inf)
    grouped[:, column, slot] = scores
    return grouped


def compare_aggregations(model: EmbeddingModel, non_mated: int) -> list[dict]:
    """FNIR at FPIR 1e-2 (threshold read off the non-mated searches) for each way of scoring a person."""
    rows = []
    for photos in (1, 3):
        split = make_split(model, 0, photos, non_mated, like_the_gallery=False)
        probes = np.concatenate([split.mated, split.non_mated]).astype(np.float64)
        for method in ("max", "top2", "top3", "centroid"):
            people = person_scores(probes, split.enrolled.astype(np.float64), split.enrolled_people, method)
            codes = np.unique(split.enrolled_people)
            best = people.max(axis=1)
            named = codes[people.argmax(axis=1)]
            mated = len(split.mated)
            for fpir in FPIRS:
                threshold = np.quantile(best[mated:], 1 - fpir)
                hit = (named[:mated] == split.mated_people) & (best[:mated] > threshold)
                rows.append(
                    {
                        "model": model.model_id,
                        "photos": photos,
                        "method": method,
                        "fpir": fpir,
                        "fnir": float(1 - hit.mean()),
                        "mated": mated,
                        "non_mated": len(best) - mated,
                    }
                )
    return rows


# --- the FPIR rule on a real gallery ---------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(centre - half, 0.0), min(centre + half, 1.0))


def clustered_interval(flags: np.ndarray, people: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the share of ``flags``, resampling whole people (``people[i]`` made
    search i): a withheld person's photos, and across folds the same photos against other galleries, are not
    independent searches, so the Wilson interval of their count is too narrow."""
    _, person = np.unique(people, return_inverse=True)
    hits, searches = np.bincount(person, weights=flags), np.bincount(person)
    rng = np.random.default_rng(SEED)
    rates = []
    for _ in range(0, rounds, 200):
        draws = rng.integers(0, len(hits), (200, len(hits)))
        rates.append(hits[draws].sum(axis=1) / searches[draws].sum(axis=1))
    low, high = np.quantile(np.concatenate(rates), [0.025, 0.975])
    return float(low), float(high)


def build_gallery(model: EmbeddingModel, split: Split, size: int, photos: int, fold: int = 0) -> tuple[Path, float]:
    """The gallery of a split (cached: the enrolled people do not depend on which photos are mated searches)."""
    suffix = f"-fold{fold}" if fold else ""
    path = common.CACHE_DIR / f"open-set-v{DATA_VERSION}-{model.model_id}-{size}-{photos}{suffix}.db"
    if path.exists():
        return path, 0.0
    common.CACHE_DIR.mkdir(exist_ok=True)
    start = time.perf_counter()
    partial = path.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    with Gallery(partial, index="exact", options=options_for_model(model)) as gallery:
        order = np.argsort(split.enrolled_people, kind="stable")
        people, first = np.unique(split.enrolled_people[order], return_index=True)
        groups = list(zip(people, np.split(order, first[1:])))
        # What Gallery.add_templates writes, WRITE_CHUNK people per transaction: one fsync'd commit per person
        # (synchronous=FULL) is ~1.5-5 ms, over an hour at 1M people.
        store = gallery.store
        for chunk in range(0, len(groups), WRITE_CHUNK):
            with store.transaction() as db:
                for person, rows in groups[chunk : chunk + WRITE_CHUNK]:
                    person_id = store.ensure_person(db, f"p{person}", None, None)
                    store.add_templates(db, person_id, [NewTemplate(v, model.model_id) for v in split.enrolled[rows]])
    partial.rename(path)
    return path, time.perf_counter() - start


@dataclass(frozen=True)
class Fold:
    """One gallery's searches: each search's best person score (mated searches first) and cohort score (NaN: none),
    whether a mated search's best person is their own, the same by the previous person score, and the points it
    decided with."""

    split: Split
    best: np.ndarray
    cohort: np.ndarray
    hit_person: np.ndarray
    old_best: np.ndarray
    old_hit: np.ndarray
    points: dict[float, IdentificationPoint]
    bound: dict[float, IdentificationPoint]
    tail: GalleryTail
    people: int
    templates: int
    seconds: dict[str, float]
    index: str


def search_fold(
    model: EmbeddingModel, size: int, photos: int, non_mated: int, enroll_at_most: int, fold: int, index: Mode
) -> Fold:
    split = make_split(model, size, photos, non_mated, enroll_at_most, fold=fold)
    path, build_s = build_gallery(model, split, size, photos, fold)
    with Gallery(path, index=index) as gallery:
        templates = gallery.template_count()
        start = time.perf_counter()
        index_kind = gallery.index_stats()["kind"]  # opens (or builds) the search index: not part of the measurement
        index_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        tail = gallery.measure_identification()
        calibrate_s, calibrate_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        codes = {p.id: int(p.name[1:]) for p in gallery.people()}
        points = {fpir: gallery.identification_point(fpir, refresh=False) for fpir in FPIRS}
        # As identify confirms a "no" (below its point's band) over every template: below the strictest of the
        # targets' bands, so that each target decides as identify would at it.
        strictest = max((p for p in points.values() if p.band is not None), key=lambda p: p.band[1], default=None)
        start = time.perf_counter()
        queries = np.concatenate([split.mated, split.non_mated])
        found = gallery.rank_people(queries, 1, decided_by=strictest)
        search_s = time.perf_counter() - start
    best = np.array([r.people[0][1] if r.people else -1.0 for r in found])
    cohort = np.array([np.nan if r.cohort is None else r.cohort for r in found])
    named = np.array([codes[r.people[0][0]] if r.people else -1 for r in found])
    old_best, old_named = best_over_templates(split)
    mated = len(split.mated)
    return Fold(
        split,
        best,
        cohort,
        named[:mated] == split.mated_people,
        old_best,
        old_named[:mated] == split.mated_people,
        points,
        {fpir: identification_point(model.model_id, templates=templates, fpir=fpir) for fpir in FPIRS},
        tail,
        len(codes),
        templates,
        {
            "build_s": round(build_s, 1),
            "index_s": round(index_s, 1),
            "calibrate_s": round(calibrate_s, 2),
            "calibrate_cpu_s": round(calibrate_cpu_s, 2),  # every thread's: on a loaded machine wall time is not
            "search_s": round(search_s, 2),
        },
        index_kind,
    )


def measure_rule(
    model: EmbeddingModel, size: int, photos: int, non_mated: int, enroll_at_most: int, index: Mode = "auto"
) -> dict:
    """The FPIR rule over as many folds (galleries with other withheld people) as it takes to make ``non_mated``
    non-mated searches with strangers like the gallery's people (``strangers_like_the_gallery``)."""
    folds: list[Fold] = []
    while sum(len(f.split.non_mated) for f in folds) < non_mated:
        folds.append(search_fold(model, size, photos, non_mated, enroll_at_most, len(folds), index))
    plain = operating_point(model.model_id, fmr=1e-3).threshold
    result = {
        "model": model.model_id,
        "size": size,
        "templates": [f.templates for f in folds],
        "photos": photos,
        "enroll_at_most": enroll_at_most,
        "folds": len(folds),
        "people": [f.people for f in folds],
        "index": folds[0].index,
        "searches": {
            "mated": sum(len(f.split.mated) for f in folds),
            "non_mated": sum(len(f.split.non_mated) for f in folds),
            "non_mated_real": sum(f.split.non_mated_real for f in folds),
        },
        "seconds": {key: round(sum(f.seconds[key] for f in folds), 2) for key in folds[0].seconds},
        "calibration": folds[0].tail.to_dict(),
        "comparisons_per_template": [f.tail.comparisons_per_template for f in folds],
        "plain_fmr_1e-3": _outcome(folds, [plain] * len(folds), None),
        "rule": [],
    }
    for fpir in FPIRS:
        points = [f.points[fpir] for f in folds]
        bound = [f.bound[fpir] for f in folds]
        row = {"fpir": fpir, "basis": points[0].basis}
        row["measured"] = _outcome(folds, [p.threshold for p in points], points)
        row["bound"] = _outcome(folds, [p.threshold for p in bound], bound)
        row["bound"]["extrapolated"] = bound[0].extrapolated
        if row["measured"]["false_positives"] is not None:
            row["old_scores_same_fpir_fnir"] = _fnir_at(folds, row["measured"]["fpir"])
        result["rule"].append(row)
    return result


def best_over_templates(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Each search's best person by the previous person score (best over their templates): score, person."""
    probes = np.concatenate([split.mated, split.non_mated])
    order = np.argsort(split.enrolled_people, kind="stable")
    people, first = np.unique(split.enrolled_people[order], return_index=True)
    vectors = split.enrolled[order]
    best, named = np.empty(len(probes)), np.empty(len(probes), np.int64)
    for start in range(0, len(probes), 256):
        per_person = np.maximum.reduceat(probes[start : start + 256] @ vectors.T, first, axis=1)
        best[start : start + 256] = per_person.max(axis=1)
        named[start : start + 256] = people[per_person.argmax(axis=1)]
    return best, named


def _fnir_at(folds: list[Fold], fpir: float) -> float:
    """FNIR of the previous person score at the one threshold that gives all folds' non-mated searches ``fpir``."""
    non_mated = np.concatenate([f.old_best[len(f.split.mated) :] for f in folds])
    threshold = np.quantile(non_mated, 1 - fpir) if fpir > 0 else np.inf
    hits = np.concatenate([f.old_hit & (f.old_best[: len(f.split.mated)] > threshold) for f in folds])
    return float(1 - hits.mean())


def _outcome(folds: list[Fold], thresholds: list[float | None], points: list[IdentificationPoint] | None) -> dict:
    """FPIR (Wilson and clustered 95% intervals), FNIR and the uncertain share, each fold at its own threshold
    (None: the target unsupported there, nothing named) and pooled; with ``points``, each search's score moved by
    its cohort's offset as the point moves it (``IdentificationPoint.offset``)."""
    false, strangers, real, named, uncertain = [], [], [], [], []
    for number, (fold, threshold) in enumerate(zip(folds, thresholds)):
        mated = len(fold.split.mated)
        limit = np.inf if threshold is None else threshold
        point = points[number] if points else None
        scores = fold.best + (point.offsets(fold.cohort) if point else 0.0)
        false.append(scores[mated:] >= limit)
        strangers.append(fold.split.non_mated_people)
        real.append(np.arange(len(fold.split.non_mated)) < fold.split.non_mated_real)
        named.append(fold.hit_person & (scores[:mated] >= limit))
        uncertain.append(
            np.array([point.decide(s) == "uncertain" for s in scores[:mated]]) if point else np.zeros(mated, bool)
        )
    flags, people, is_real = np.concatenate(false), np.concatenate(strangers), np.concatenate(real)
    supported = [t for t in thresholds if t is not None]
    false_positives = int(flags.sum())
    return {
        "threshold": round(float(np.median(supported)), 4) if supported else None,
        "threshold_range": [round(min(supported), 4), round(max(supported), 4)] if supported else None,
        "unsupported_folds": len(thresholds) - len(supported),
        "fpir": false_positives / len(flags),
        "fpir_95ci": [round(x, 5) for x in wilson(false_positives, len(flags))],
        "fpir_95ci_clustered": [round(x, 5) for x in clustered_interval(flags, people)],
        "false_positives": false_positives if supported else None,
        "fpir_real_only": float(flags[is_real].mean()),
        "fnir": float(1 - np.concatenate(named).mean()),
        "uncertain_mated": float(np.concatenate(uncertain).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aggregations", action="store_true", help="compare person-level scores")
    parser.add_argument("--sizes", type=int, nargs="*", default=[600, 10000])
    parser.add_argument("--photos", type=int, nargs="*", default=[1, 3])
    parser.add_argument("--non-mated", type=int, default=6000)
    parser.add_argument("--enroll-at-most", type=int, default=ENROLL_AT_MOST, help="mated searches: photos after this")
    parser.add_argument("--models", nargs="*", choices=list(EMBEDDING_MODELS), default=[DEFAULT_OPTIONS.model.model_id])
    parser.add_argument("--index", choices=MODES, default="auto", help="the gallery's search (auto: the product's)")
    args = parser.parse_args()
    if max(args.photos) > args.enroll_at_most:
        parser.error("--photos beyond --enroll-at-most would search with enrolled photos")
    models = [EMBEDDING_MODELS[model_id] for model_id in args.models]
    if args.aggregations:
        print(json.dumps([row for model in models for row in compare_aggregations(model, args.non_mated)], indent=1))
        return
    for model in models:
        for size in args.sizes:
            for photos in args.photos:
                result = measure_rule(model, size, photos, args.non_mated, args.enroll_at_most, args.index)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
