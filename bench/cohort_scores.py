"""Would a cohort-normalised person score lower FNIR at a fixed FPIR where extra photos cannot (one per person)?

    python bench/cohort_scores.py --size 100000 --photos 1
    python bench/cohort_scores.py --size 1000000 --photos 1 --cohort 20

The measurement that led to the product's cohort-moved scores (``faceprint.match.cohort_score``; the product's
own figures are ``bench/open_set.py``'s): with one photo per person a person's score is their template's, so a rule
on person scores alone can only equal the best-template score at the same FPIR. A score that also looks at who else
a search resembles can do better: a stranger who scores 0.80 with the best
person usually scores nearly as high with the next ones, a mate stands out. Here each search's best person score
``s1`` is compared with ``s1 - weight * mean(s2 .. s_cohort)`` (the next best people's scores; exact search over
``bench/open_set.py``'s split: the same gallery people, mated and non-mated searches), and with ``s1 - s2``, each
at the threshold that gives the non-mated searches the stated FPIR (so no calibration is involved).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import open_set
from faceprint.pipeline import DEFAULT_OPTIONS

FPIRS = (1e-1, 1e-2, 1e-3)
WEIGHTS = (0.25, 0.5, 0.75, 1.0)


def best_people(split: open_set.Split, cohort: int) -> tuple[np.ndarray, np.ndarray]:
    """Each search's ``cohort`` best person scores (best over a person's templates, exact), highest first, and who."""
    probes = np.concatenate([split.mated, split.non_mated]).astype(np.float32)
    order = np.argsort(split.enrolled_people, kind="stable")
    codes, first = np.unique(split.enrolled_people[order], return_index=True)
    vectors = split.enrolled[order]
    scores, people = np.empty((len(probes), cohort)), np.empty((len(probes), cohort), np.int64)
    for start in range(0, len(probes), 256):
        per_person = np.maximum.reduceat(probes[start : start + 256] @ vectors.T, first, axis=1)
        top = np.argpartition(-per_person, cohort, axis=1)[:, :cohort]
        top_scores = np.take_along_axis(per_person, top, axis=1)
        ranked = np.argsort(-top_scores, axis=1)
        scores[start : start + 256] = np.take_along_axis(top_scores, ranked, axis=1)
        people[start : start + 256] = codes[np.take_along_axis(top, ranked, axis=1)]
    return scores, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--cohort", type=int, default=20, help="the next best people averaged: 2nd to this one")
    parser.add_argument("--non-mated", type=int, default=6000)
    args = parser.parse_args()
    split = open_set.make_split(DEFAULT_OPTIONS.model, args.size, args.photos, args.non_mated)
    scores, people = best_people(split, args.cohort)
    mated = len(split.mated)
    named_right = people[:mated, 0] == split.mated_people
    rules = {"best person (the product's score)": scores[:, 0], "s1 - s2": scores[:, 0] - scores[:, 1]}
    for weight in WEIGHTS:
        rules[f"s1 - {weight} * mean(s2..s{args.cohort})"] = scores[:, 0] - weight * scores[:, 1:].mean(axis=1)
    for name, score in rules.items():
        row: dict = {"size": args.size, "photos": args.photos, "mated": mated, "non_mated": len(score) - mated}
        row["score"] = name
        for fpir in FPIRS:
            threshold = np.quantile(score[mated:], 1 - fpir)
            misses = int((~(named_right & (score[:mated] > threshold))).sum())
            row[f"fnir_at_{fpir:g}"] = round(misses / mated, 5)
            row[f"misses_at_{fpir:g}"] = misses
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
