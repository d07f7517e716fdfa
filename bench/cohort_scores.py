"""Would a cohort-normalised person score lower FNIR at a fixed FPIR where extra photos cannot (one per person)?

    python bench/cohort_scores.py --size 100000 --photos 1
    python bench/cohort_scores.py --size 1000000 --photos 1 --cohort 20
    python bench/cohort_scores.py --size 600 --photos 1 --cohort 11 --folds 17 --znorm   # + enrolled-side cohorts
    python bench/cohort_scores.py --size 600 --photos 1 --folds 17 --quality --part-weights 0.5 0.75
    python bench/cohort_scores.py --size 600 --photos 1 --folds 17 --part-fusions
    python bench/cohort_scores.py --size 600 --photos 1 --folds 17 --quality --quality-weights -0.02 -0.01 0.01 0.02
    python bench/cohort_scores.py --size 600 --photos 1 --folds 17 --quality --pose-weights -0.0002 0.0002

The measurement that led to the product's cohort-moved scores (``faceprint.match.cohort_score``; the product's
own figures are ``bench/open_set.py``'s): with one photo per person a person's score is their template's, so a rule
on person scores alone can only equal the best-template score at the same FPIR. A score that also looks at who else
a search resembles can do better: a stranger who scores 0.80 with the best
person usually scores nearly as high with the next ones, a mate stands out. Here each search's best person score
``s1`` is compared with ``s1 - weight * mean(s2 .. s_cohort)`` (the next best people's scores; exact search over
``bench/open_set.py``'s split: the same gallery people, mated and non-mated searches), and with ``s1 - s2``, each
at the threshold that gives the non-mated searches the stated FPIR (so no calibration is involved), and with
``s1`` where a search whose best person leads the next by no more than a margin is not named ("uncertain").

``--znorm`` adds the other common normalisation, on the enrolled side: each enrolled template's similarities moved
by ``weight * (mu_t - mean mu)``, ``mu_t`` the mean similarity of template t to the ``ZNORM_NEIGHBOURS`` most similar
templates of other enrolled people (every enrolled pair compared: a few seconds at 10,000 templates, quadratic).
``--folds`` pools the searches of as many splits (other withheld people), as ``bench/open_set.py`` does at 600.
``--quality`` adds the product's quality gate to the best person score: a search whose face the pipeline's quality
report refuses is not named ("uncertain"), mate or stranger (the distractor people's searches have no photo and
pass); the report of every faces-dev image's main face is computed once per run (about 2 minutes).
``--quality-weights`` (with ``--quality``) adds the probe's quality score to its best person score, times each weight
(the 1:N form of quality-aware comparison scores, QMagFace's ``s + w * q``).
``--pose-weights`` (with ``--quality``) adds to each similarity the difference of the probe's and the enrolled
template's yaw (degrees, the quality report's), times each weight: a mate turned otherwise than the enrolled photo
scores lower, and a stranger may too.
``--part-weights`` (a fused model) scores with its parts' cosines weighted otherwise: ``w * dlib + (1 - w) * sface``.
``--part-fusions`` (a fused model) combines its parts' cosines other than linearly: each part standardised by its
own impostor mean and spread (``z``: over the enrolled templates of different people, as a gallery could measure
itself), then summed, the smaller or larger taken, or summed less a quarter of their disagreement.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import common
import distractors
import open_set
from faceprint.pipeline import DEFAULT_OPTIONS, process_files

FPIRS = (1e-1, 1e-2, 1e-3)
WEIGHTS = (0.25, 0.5, 0.75, 1.0)
ZNORM_NEIGHBOURS = 10
#: Margins over the second best person below which a search is not named, whatever its score.
MARGINS = (0.02, 0.03)
#: The score of a search that is not named: below every cosine, yet finite, so that a threshold at an FPIR that too
#: few strangers are named for to reach lies below it and names every other search.
NEVER_NAMED = -2.0
#: Enrolled templates whose pairs of different people standardise each part (``--part-fusions``).
STANDARDISING_TEMPLATES = 2000
FUSIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "sum of z": lambda a, b: a + b,
    "min z": np.minimum,
    "max z": np.maximum,
    "sum of z - 0.25 |difference|": lambda a, b: a + b - 0.25 * np.abs(a - b),
}


def best_people(
    split: open_set.Split,
    cohort: int,
    shift: np.ndarray | None = None,
    probe_scale: np.ndarray | None = None,
    fusion: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each search's ``cohort`` best person scores (best over a person's templates, exact), highest first, and who;
    ``shift``: subtracted from the similarities to each enrolled template first; ``probe_scale``: multiplies each
    probe's components first; ``fusion``: scores of (probes, enrolled templates) instead of their similarities."""
    probes = np.concatenate([split.mated, split.non_mated]).astype(np.float32)
    if probe_scale is not None:
        probes *= probe_scale
    order = np.argsort(split.enrolled_people, kind="stable")
    codes, first = np.unique(split.enrolled_people[order], return_index=True)
    vectors = split.enrolled[order]
    moved = 0.0 if shift is None else shift[order]
    scores, people = np.empty((len(probes), cohort)), np.empty((len(probes), cohort), np.int64)
    for start in range(0, len(probes), 256):
        block = probes[start : start + 256]
        scored = block @ vectors.T if fusion is None else fusion(block, vectors)
        per_person = np.maximum.reduceat(scored - moved, first, axis=1)
        top = np.argpartition(-per_person, cohort, axis=1)[:, :cohort]
        top_scores = np.take_along_axis(per_person, top, axis=1)
        ranked = np.argsort(-top_scores, axis=1)
        scores[start : start + 256] = np.take_along_axis(top_scores, ranked, axis=1)
        people[start : start + 256] = codes[np.take_along_axis(top, ranked, axis=1)]
    return scores, people


def enrolled_cohorts(split: open_set.Split) -> np.ndarray:
    """Each enrolled template's mean similarity to the ``ZNORM_NEIGHBOURS`` nearest templates of other people."""
    means = np.empty(len(split.enrolled))
    for start in range(0, len(split.enrolled), 1024):
        rows = slice(start, start + 1024)
        scores = split.enrolled[rows] @ split.enrolled.T
        scores[split.enrolled_people[rows, None] == split.enrolled_people[None, :]] = -np.inf
        means[rows] = -np.partition(-scores, ZNORM_NEIGHBOURS, axis=1)[:, :ZNORM_NEIGHBOURS].mean(axis=1)
    return means


@dataclass(frozen=True)
class RealQualities:
    """The pipeline's quality report of the main face of each row of ``distractors.real_templates``."""

    acceptable: np.ndarray
    score: np.ndarray
    yaw: np.ndarray


def real_template_qualities() -> RealQualities:
    real = distractors.real_templates(DEFAULT_OPTIONS.model)
    sources = [str(common.faces_dev() / path) for path in real.paths]
    with common.progress_bar(len(sources), "quality of faces-dev") as advance:
        results = list(process_files(sources, DEFAULT_OPTIONS, workers=common.DEFAULT_WORKERS, on_done=advance))
    main_faces = [r.faces[0].quality if r.faces else None for r in results]
    return RealQualities(
        acceptable=np.array([q is not None and q.acceptable for q in main_faces]),
        score=np.array([0.0 if q is None else q.score for q in main_faces]),
        yaw=np.array([0.0 if q is None else q.yaw for q in main_faces]),
    )


def per_search(split: open_set.Split, of_photos: np.ndarray, of_distractors: np.ndarray) -> np.ndarray:
    """A value of each search (mated, then non-mated): its photo's from ``of_photos`` (a row of
    ``distractors.real_templates`` each), a fresh distractor person's (no photo) from ``of_distractors``."""
    values = of_distractors.copy()
    values[: len(split.mated)] = of_photos[split.mated_rows]
    values[len(split.mated) : len(split.mated) + split.non_mated_real] = of_photos[split.stranger_rows]
    return values


def quality_gated(split: open_set.Split, score: np.ndarray, acceptable: np.ndarray) -> np.ndarray:
    """``score`` with the searches of refused faces (mated, then real strangers) never above a threshold."""
    searched = per_search(split, acceptable, np.ones(len(score), bool))
    return np.where(searched, score, NEVER_NAMED)


def quality_weighted(
    split: open_set.Split, score: np.ndarray, quality: np.ndarray, weight: float, fold: int
) -> np.ndarray:
    """``score`` plus ``weight`` times the probe's quality score; a fresh distractor person's search has no photo, so
    its quality is drawn from the real photos' (independent of its score: the assumption this rule is judged under)."""
    drawn = np.random.default_rng(fold).choice(quality, len(score))
    return score + weight * per_search(split, quality, drawn)


def pose_weighted(split: open_set.Split, yaw: np.ndarray, weight: float, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Each search's best score over the enrolled templates of its similarity plus ``weight`` times the yaw
    difference of probe and template, and whose it is; a distractor person (no photo) has a yaw drawn from the real
    photos' (independent of its template: the assumption this rule is judged under)."""
    rng = np.random.default_rng(fold)
    fill = len(split.enrolled) - len(split.enrolled_rows)
    enrolled_yaw = np.concatenate([yaw[split.enrolled_rows], rng.choice(yaw, fill)])
    probes = np.concatenate([split.mated, split.non_mated]).astype(np.float32)
    probe_yaw = per_search(split, yaw, rng.choice(yaw, len(probes)))
    best = np.empty(len(probes), np.int64)
    scores = np.empty(len(probes))
    for start in range(0, len(probes), 256):
        rows = slice(start, start + 256)
        scored = probes[rows] @ split.enrolled.T + weight * np.abs(probe_yaw[rows, None] - enrolled_yaw[None, :])
        best[rows] = scored.argmax(axis=1)
        scores[rows] = scored[np.arange(len(scored)), best[rows]]
    return scores, split.enrolled_people[best]


def part_weighted(split: open_set.Split, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Each search's best person score with a fused model's two parts' cosines weighted ``weight`` /
    ``1 - weight`` (the probe's parts rescaled), and who."""
    (first, first_weight), _ = DEFAULT_OPTIONS.model.parts
    scale = np.full(split.enrolled.shape[1], (1 - weight) / (1 - first_weight), np.float32)
    scale[: first.dimension] = weight / first_weight
    scores, people = best_people(split, 2, probe_scale=scale)
    return scores[:, 0], people[:, 0]


def part_fused(
    split: open_set.Split, combine: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each search's best person score with a fused model's two parts' cosines standardised and combined, and who."""
    (first, first_weight), (_, second_weight) = DEFAULT_OPTIONS.model.parts
    parts = [slice(0, first.dimension), slice(first.dimension, None)]
    sample = np.random.default_rng(0).permutation(len(split.enrolled))[:STANDARDISING_TEMPLATES]
    different = split.enrolled_people[sample, None] != split.enrolled_people[None, sample]
    standard = []
    for part, weight in zip(parts, (first_weight, second_weight)):
        pairs = (split.enrolled[sample, part] @ split.enrolled[sample, part].T)[different] / weight
        standard.append((part, weight, pairs.mean(), pairs.std()))

    def fusion(probes: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
        dlib, sface = (
            (probes[:, part] @ enrolled[:, part].T / weight - mean) / spread for part, weight, mean, spread in standard
        )
        return combine(dlib, sface)

    scores, people = best_people(split, 2, fusion=fusion)
    return scores[:, 0], people[:, 0]


def rules_of(
    split: open_set.Split,
    cohort: int,
    znorm: bool,
    qualities: RealQualities | None,
    quality_weights: list[float],
    pose_weights: list[float],
    part_weights: list[float],
    part_fusions: bool,
    fold: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each rule's score of every search (mated first) and the person it names."""
    scores, people = best_people(split, cohort)
    rules = {"best person (the product's score)": (scores[:, 0], people[:, 0])}
    if qualities is not None:
        rules["best person, quality-gated"] = (quality_gated(split, scores[:, 0], qualities.acceptable), people[:, 0])
        for weight in quality_weights:
            rules[f"best person + {weight} * probe quality"] = (
                quality_weighted(split, scores[:, 0], qualities.score, weight, fold),
                people[:, 0],
            )
        for weight in pose_weights:
            rules[f"similarity + {weight} * |yaw difference|"] = pose_weighted(split, qualities.yaw, weight, fold)
    for weight in part_weights:
        rules[f"best person, parts weighted {weight} / {1 - weight:g}"] = part_weighted(split, weight)
    for name, combine in FUSIONS.items() if part_fusions else ():
        rules[f"best person, parts' {name}"] = part_fused(split, combine)
    rules["s1 - s2"] = (scores[:, 0] - scores[:, 1], people[:, 0])
    for margin in MARGINS:
        rules[f"s1, uncertain unless s1 - s2 > {margin}"] = (
            np.where(scores[:, 0] - scores[:, 1] > margin, scores[:, 0], NEVER_NAMED),
            people[:, 0],
        )
    for weight in WEIGHTS:
        rules[f"s1 - {weight} * mean(s2..s{cohort})"] = (
            scores[:, 0] - weight * scores[:, 1:].mean(axis=1),
            people[:, 0],
        )
    if znorm:
        means = enrolled_cohorts(split)
        for weight in WEIGHTS:
            moved, named = best_people(split, cohort, weight * (means - means.mean()))
            rules[f"z-norm {weight}"] = (moved[:, 0], named[:, 0])
            rules[f"z-norm {weight}, then s1 - mean(s2..s{cohort})"] = (
                moved[:, 0] - moved[:, 1:].mean(axis=1),
                named[:, 0],
            )
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--cohort", type=int, default=20, help="the next best people averaged: 2nd to this one")
    parser.add_argument("--non-mated", type=int, default=6000)
    parser.add_argument("--folds", type=int, default=1, help="splits pooled (other withheld people)")
    parser.add_argument("--znorm", action="store_true", help="also enrolled-side cohorts (quadratic in the size)")
    parser.add_argument("--quality", action="store_true", help="also the best person with the quality gate")
    parser.add_argument(
        "--quality-weights", type=float, nargs="*", default=[], help="the probe's quality score's weight (--quality)"
    )
    parser.add_argument(
        "--pose-weights", type=float, nargs="*", default=[], help="the yaw difference's weight (--quality)"
    )
    parser.add_argument("--part-weights", type=float, nargs="*", default=[], help="a fused model's first part's weight")
    parser.add_argument("--part-fusions", action="store_true", help="a fused model's parts combined otherwise")
    args = parser.parse_args()
    if (args.part_weights or args.part_fusions) and len(DEFAULT_OPTIONS.model.parts) != 2:
        parser.error("--part-weights and --part-fusions need a default model of two parts")
    if (args.quality_weights or args.pose_weights) and not args.quality:
        parser.error("--quality-weights and --pose-weights need --quality")
    qualities = real_template_qualities() if args.quality else None
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for fold in range(args.folds):
        split = open_set.make_split(DEFAULT_OPTIONS.model, args.size, args.photos, args.non_mated, fold=fold)
        mated = len(split.mated)
        for name, (score, named) in rules_of(
            split,
            args.cohort,
            args.znorm,
            qualities,
            args.quality_weights,
            args.pose_weights,
            args.part_weights,
            args.part_fusions,
            fold,
        ).items():
            pooled.setdefault(name, []).append((score[mated:], score[:mated], named[:mated] == split.mated_people))
    for name, folds in pooled.items():
        non_mated, mated_score, named_right = (np.concatenate(part) for part in zip(*folds))
        mated = len(mated_score)
        row: dict = {"size": args.size, "photos": args.photos, "folds": args.folds, "mated": mated}
        row |= {"non_mated": len(non_mated), "score": name}
        for fpir in FPIRS:
            threshold = np.quantile(non_mated, 1 - fpir)
            misses = int((~(named_right & (mated_score > threshold))).sum())
            row[f"fnir_at_{fpir:g}"] = round(misses / mated, 5)
            row[f"misses_at_{fpir:g}"] = misses
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
