"""Calibration: the cosine-similarity threshold for each target false-match rate, measured on faces-dev.

Embeds all 1,783 faces-dev images with the pipeline of ``--model`` (``profiles.options_for_model``: the
default pipeline for dlib's ResNet) and ``--detector``, scores every cross-identity pair (about 1.5M impostor pairs) and
every same-identity pair, and writes ``src/faceprint/data/calibration-<model id>.json``. Images
without a face are left out.

George_W_Bush has 530 of the 1,783 images, so pooled pairs are dominated by him:
- thresholds come from all impostor pairs pooled (the most data for the tail); thresholds with
  every pair of identities weighing the same are reported beside them as a check;
- FNMR is given per identity (each identity with 2+ faces weighs the same) and pooled.
The pairs share images and identities, so they are far from independent: the 90% intervals come
from resampling identities (bootstrap), not pairs.

    python bench/calibrate.py            # writes the JSON and prints a markdown table
    python bench/calibrate.py --dry-run  # prints only
    python bench/calibrate.py --model sface-2021dec   # SFace's table
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import common
from faceprint.choices import DETECTORS
from faceprint.evaluation.calibration import (
    THRESHOLD_RULE,
    ScoredPairs,
    calibration_points,
    every_pair,
    fnmr_at,
    supported_fmrs,
    thresholds_at,
)
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import PipelineOptions
from faceprint.profiles import options_for_model

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "faceprint" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the table, do not write the JSON")
    parser.add_argument("--workers", type=int, default=common.DEFAULT_WORKERS)
    parser.add_argument("--model", choices=EMBEDDING_MODELS, default=PipelineOptions().model.model_id)
    parser.add_argument("--detector", choices=DETECTORS, default=PipelineOptions().detector)
    args = parser.parse_args()
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    # The model's own pipeline (its flips included: the accurate profile skips SFace's mirror image).
    options = dataclasses.replace(options_for_model(EMBEDDING_MODELS[args.model]), detector=args.detector)
    embeddings = common.embed_faceprint(root, paths, options, label="calibration", workers=args.workers)
    found = embeddings.found
    _, codes = np.unique(np.array(identities)[found], return_inverse=True)
    faces_per_identity = np.bincount(codes)
    impostors, genuines = every_pair(embeddings.vectors[found], codes)
    genuines = per_identity(genuines, faces_per_identity)
    fmrs = supported_fmrs(len(impostors.scores))
    report = {
        "model_id": options.model.model_id,
        "source": _source(options, int(found.sum()), len(faces_per_identity), len(impostors.scores)),
        "created": datetime.date.today().isoformat(),
        "faceprint_version": metadata.version("faceprint"),
        "pipeline": common.describe_options(options),
        "images": {"total": len(paths), "without_face": int((~found).sum()), "identities": len(faces_per_identity)},
        "pairs": {"impostor": len(impostors.scores), "genuine": len(genuines.scores)},
        "threshold_rule": THRESHOLD_RULE,
        "points": operating_points(impostors, genuines, fmrs, faces_per_identity),
    }
    if not args.dry_run:
        file = OUTPUT / f"calibration-{options.model.model_id}.json"
        file.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {file}")
    print(_table(report))


def per_identity(genuines: ScoredPairs, faces_per_identity: np.ndarray) -> ScoredPairs:
    """The genuine pairs weighted so that each identity with 2+ faces weighs the same."""
    genuine_pairs_per_identity = faces_per_identity * (faces_per_identity - 1) / 2
    return dataclasses.replace(genuines, weights=1.0 / genuine_pairs_per_identity[genuines.identity_a])


def operating_points(
    impostors: ScoredPairs, genuines: ScoredPairs, fmrs: np.ndarray, faces_per_identity: np.ndarray
) -> list[dict[str, Any]]:
    """The library's points (pooled thresholds, FNMR per identity, intervals over resampled identities),
    each with two checks beside it: the threshold with every pair of identities weighing the same,
    and the FNMR with every genuine pair weighing the same."""
    impostors, genuines = impostors.sorted(), genuines.sorted()
    balanced_weights = 1.0 / (faces_per_identity[impostors.identity_a] * faces_per_identity[impostors.identity_b])
    balanced = thresholds_at(impostors.scores, balanced_weights, fmrs)
    points = calibration_points(impostors, genuines, fmrs)
    thresholds = np.array([p["threshold"] for p in points])
    fnmr_pooled = fnmr_at(genuines.scores, np.ones(len(genuines.scores)), thresholds)
    return [
        {
            **{key: point[key] for key in ("fmr", "threshold", "false_matches", "threshold_90ci")},
            "threshold_identity_balanced": _round(balanced[i]),
            **{key: point[key] for key in ("fnmr", "fnmr_90ci")},
            "fnmr_pooled": _round(fnmr_pooled[i]),
        }
        for i, point in enumerate(points)
    ]


def _round(value: float) -> float:
    return round(float(value), 6)


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
