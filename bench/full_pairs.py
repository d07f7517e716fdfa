"""Every faces-dev pair decided by two pipelines at FMR 1e-3: TAR over the full impostor set, and McNemar.

Embeds all 1,783 faces-dev images with the former default (``profiles.CLASSIC``: HOG, CNN fallback, dlib's
ResNet) and with each profile given, scores every same-identity (genuine) and cross-identity (impostor)
pair, decides each pair at its model's shipped FMR 1e-3 threshold (``faceprint.match.operating_point``)
and counts the pairs only one pipeline decides right. Images without a face in either pipeline are left
out of both. The pairs share images and people, so they are not independent: the McNemar p-value
overstates the evidence; read the counts first.

    python bench/full_pairs.py                      # accurate (the default) and fast against classic
    python bench/full_pairs.py --profiles accurate
"""

from __future__ import annotations

import argparse

import numpy as np

import common
from faceprint.evaluation import metrics
from faceprint.evaluation.calibration import every_pair
from faceprint.match import operating_point
from faceprint.pipeline import PipelineOptions
from faceprint.profiles import PROFILES

FMR = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", choices=sorted(PROFILES), default=["accurate", "fast"])
    parser.add_argument("--workers", type=int, default=common.DEFAULT_WORKERS)
    args = parser.parse_args()
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    names = ["classic", *args.profiles]
    embeddings = {
        name: common.embed_faceprint(root, paths, PROFILES[name], label=name, workers=args.workers) for name in names
    }
    found = np.logical_and.reduce([e.found for e in embeddings.values()])
    _, codes = np.unique(np.array(identities)[found], return_inverse=True)
    correct = {name: decided_right(e.vectors[found], codes, PROFILES[name]) for name, e in embeddings.items()}
    print(f"{int(found.sum())} of {len(paths)} images with a face in every pipeline\n")
    print(
        "| pipeline | model | threshold @ 1e-3 | TAR (pooled) | FMR | genuine pairs: +fixed / -broken "
        "| impostor pairs: +fixed / -broken | McNemar p, all pairs |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    reference, genuine, _ = correct["classic"]
    for name in names[1:]:
        right, _, threshold = correct[name]
        tar, fmr = right[genuine].mean(), 1 - right[~genuine].mean()
        print(
            f"| {name} | {PROFILES[name].model.model_id} | {threshold:.4f} | {tar:.4%} | {fmr:.2e} "
            f"| {changes(right, reference, genuine)} | {changes(right, reference, ~genuine)} "
            f"| {p_value(right, reference)} |"
        )


def changes(right: np.ndarray, reference: np.ndarray, among: np.ndarray) -> str:
    fixed, broken = np.sum(right & ~reference & among), np.sum(reference & ~right & among)
    return f"+{fixed:,} / -{broken:,}"


def p_value(right: np.ndarray, reference: np.ndarray) -> str:
    p = metrics.mcnemar_p(right, reference)
    return f"{p:.2g}" if p > 0 else "< 1e-300"


def decided_right(
    vectors: np.ndarray, codes: np.ndarray, options: PipelineOptions
) -> tuple[np.ndarray, np.ndarray, float]:
    """Each pair (genuine ones first) decided right at FMR 1e-3?, which pairs are genuine, and the threshold."""
    impostors, genuines = every_pair(vectors, codes)
    threshold = operating_point(options.model.model_id, fmr=FMR).threshold
    right = np.concatenate([genuines.scores >= threshold, impostors.scores < threshold])
    genuine = np.arange(len(right)) < len(genuines.scores)
    return right, genuine, threshold


if __name__ == "__main__":
    main()
