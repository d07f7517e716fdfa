"""Calibration: the cosine-similarity threshold for each target false-match rate, measured on faces-dev.

Embeds all 1,783 faces-dev images with the default pipeline (``PipelineOptions()``), scores every
cross-identity pair (about 1.5M impostor pairs) and every same-identity pair, and writes
``src/faceprint/data/calibration-dlib-resnet-v1.json``. Images without a face are left out.

George_W_Bush has 530 of the 1,783 images, so pooled pairs are dominated by him:
- thresholds come from all impostor pairs pooled (the most data for the tail); thresholds with
  every pair of identities weighing the same are reported beside them as a check;
- FNMR is given per identity (each identity with 2+ faces weighs the same) and pooled.
The pairs share images and identities, so they are far from independent: the 90% intervals come
from resampling identities (bootstrap), not pairs.

    python bench/calibrate.py            # writes the JSON and prints a markdown table
    python bench/calibrate.py --dry-run  # prints only
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

import common
from faceprint.evaluation.calibration import THRESHOLD_RULE, all_pairs, fnmr_at, round_up, supported_fmrs, thresholds_at
from faceprint.pipeline import PipelineOptions

BOOTSTRAPS = 200
SEED = 20240613
OUTPUT = Path(__file__).resolve().parents[1] / "src" / "faceprint" / "data"


@dataclass(frozen=True)
class PairSet:
    """Scores of one kind of pair (impostor or genuine) with the identity codes of both sides."""

    scores: np.ndarray
    identity_a: np.ndarray
    identity_b: np.ndarray

    def sorted_by_score(self) -> PairSet:
        order = np.argsort(-self.scores, kind="stable")
        return PairSet(self.scores[order], self.identity_a[order], self.identity_b[order])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the table, do not write the JSON")
    parser.add_argument("--workers", type=int, default=common.DEFAULT_WORKERS)
    args = parser.parse_args()
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    options = PipelineOptions()
    embeddings = common.embed_faceprint(root, paths, options, label="calibration", workers=args.workers)
    found = embeddings.found
    _, codes = np.unique(np.array(identities)[found], return_inverse=True)
    impostors, genuines = split_pairs(embeddings.vectors[found], codes)
    fmrs = supported_fmrs(len(impostors.scores))
    points = operating_points(impostors, genuines, fmrs, faces_per_identity=np.bincount(codes))
    report = {
        "model_id": options.model.model_id,
        "source": _source(options, int(found.sum()), int(codes.max()) + 1, len(impostors.scores)),
        "created": datetime.date.today().isoformat(),
        "faceprint_version": metadata.version("faceprint"),
        "pipeline": common.describe_options(options),
        "images": {"total": len(paths), "without_face": int((~found).sum()), "identities": int(codes.max()) + 1},
        "pairs": {"impostor": len(impostors.scores), "genuine": len(genuines.scores)},
        "threshold_rule": THRESHOLD_RULE,
        "points": points,
    }
    if not args.dry_run:
        file = OUTPUT / f"calibration-{options.model.model_id}.json"
        file.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {file}")
    print(_table(report))


def split_pairs(vectors: np.ndarray, identity: np.ndarray) -> tuple[PairSet, PairSet]:
    """Every unordered pair of faces, split into impostor (different identity) and genuine pairs."""
    scores, genuine, a, b = all_pairs(vectors, identity)
    split = [PairSet(scores[m], identity[a][m], identity[b][m]).sorted_by_score() for m in (~genuine, genuine)]
    return split[0], split[1]


def operating_points(
    impostors: PairSet, genuines: PairSet, fmrs: np.ndarray, faces_per_identity: np.ndarray
) -> list[dict]:
    """Threshold, false-match count and FNMR at each FMR, with their bootstrap intervals."""
    thresholds = round_up(thresholds_at(impostors.scores, np.ones(len(impostors.scores)), fmrs))
    # Each pair of identities weighs the same, whatever their numbers of images.
    balanced_weights = 1.0 / (faces_per_identity[impostors.identity_a] * faces_per_identity[impostors.identity_b])
    balanced = thresholds_at(impostors.scores, balanced_weights, fmrs)
    genuine_pairs_per_identity = faces_per_identity * (faces_per_identity - 1) / 2
    per_identity = 1.0 / genuine_pairs_per_identity[genuines.identity_a]
    fnmr = fnmr_at(genuines.scores, per_identity, thresholds)
    fnmr_pooled = fnmr_at(genuines.scores, np.ones(len(genuines.scores)), thresholds)
    false_matches = np.searchsorted(-impostors.scores, -thresholds, side="right")
    intervals = bootstrap(impostors, genuines, per_identity, fmrs, len(faces_per_identity))
    return [
        {
            "fmr": float(fmr),
            "threshold": _round(thresholds[i]),
            "false_matches": int(false_matches[i]),
            "threshold_90ci": [_round(v) for v in intervals["threshold"][:, i]],
            "threshold_identity_balanced": _round(balanced[i]),
            "fnmr": _round(fnmr[i]),
            "fnmr_90ci": [_round(v) for v in intervals["fnmr"][:, i]],
            "fnmr_pooled": _round(fnmr_pooled[i]),
        }
        for i, fmr in enumerate(fmrs)
    ]


def _round(value: float) -> float:
    return round(float(value), 6)


def bootstrap(
    impostors: PairSet, genuines: PairSet, per_identity: np.ndarray, fmrs: np.ndarray, identities: int
) -> dict[str, np.ndarray]:
    """5th and 95th percentiles of thresholds and FNMR over resamples of the identities.

    An identity drawn m times counts m times: its impostor pairs weigh m_a * m_b, its genuine pairs m.
    """
    rng = np.random.default_rng(SEED)
    thresholds, fnmrs = [], []
    for _ in range(BOOTSTRAPS):
        drawn = rng.multinomial(identities, np.full(identities, 1.0 / identities)).astype(np.float64)
        found = thresholds_at(impostors.scores, drawn[impostors.identity_a] * drawn[impostors.identity_b], fmrs)
        thresholds.append(found)
        fnmrs.append(fnmr_at(genuines.scores, per_identity * drawn[genuines.identity_a], found))
    return {name: np.percentile(v, [5, 95], axis=0) for name, v in (("threshold", thresholds), ("fnmr", fnmrs))}


def _source(options: PipelineOptions, faces: int, identities: int, impostor_pairs: int) -> str:
    return (
        f"faces-dev (LFW View 2 set 10, deep-funneled 250x250): {faces:,} images with a face, {identities} identities, "
        f"all {impostor_pairs:,} cross-identity pairs pooled; faceprint pipeline ({common.describe_options(options)}), "
        "main face (largest, favouring the centre); bench/calibrate.py"
    )


def _table(report: dict) -> str:
    lines = [
        "| FMR | threshold (90% CI) | false matches | threshold, identity-balanced "
        "| FNMR per identity (90% CI) | FNMR pooled |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in report["points"]:
        low, high = p["threshold_90ci"]
        fnmr_low, fnmr_high = p["fnmr_90ci"]
        lines.append(
            f"| {p['fmr']:.0e} | {p['threshold']:.4f} ({low:.4f}–{high:.4f}) | {p['false_matches']:,} "
            f"| {p['threshold_identity_balanced']:.4f} | {p['fnmr']:.2%} ({fnmr_low:.2%}–{fnmr_high:.2%}) "
            f"| {p['fnmr_pooled']:.2%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
