"""Which of the fused model's parts gain from the mirror image: each part with and without flip, fused.

dlib's ResNet and SFace run on their own (detector YuNet, so each image's main face is the same face in
every run); each pair of runs is fused with the weight fitted within the training folds
(``fusion.held_out``), as ``bench/accuracy.py`` scores its fused variants. faces-dev 10-fold, every pair
counting.

    python bench/flip_parts.py
"""

from __future__ import annotations

import dataclasses
import itertools

import common
import fusion
from faceprint.evaluation import metrics
from faceprint.models import SFACE
from faceprint.pipeline import PipelineOptions

BASE = PipelineOptions(detector="yunet", flip=True, jitter=0, backend="onnx")
RUNS = {
    "dlib, flip": BASE,
    "dlib, no flip": dataclasses.replace(BASE, flip=False),
    "SFace, flip": dataclasses.replace(BASE, model=SFACE),
    "SFace, no flip": dataclasses.replace(BASE, model=SFACE, flip=False),
}


def main() -> None:
    root = common.faces_dev()
    paths, _ = common.read_images(root)
    path_a, path_b, same = common.read_pairs(root)
    scores, cpu = {}, {}
    print("| run | accuracy (10-fold) | pairs wrong | CPU ms per image |\n| --- | --- | --- | --- |")
    for name, options in RUNS.items():
        embeddings = common.embed_faceprint(root, paths, options, label=name)
        scores[name] = common.pair_scores(embeddings, path_a, path_b, "cosine")
        cpu[name] = 1000 * embeddings.cpu_seconds / len(paths)
        correct = metrics.ten_fold_correct(scores[name], same)
        print(f"| {name} | {correct.mean():.2%} | {(~correct).sum()} | {cpu[name]:.1f} |")
    print("\n| fused | accuracy (10-fold) | pairs wrong | weights on the 10 training sets |\n| --- | --- | --- | --- |")
    for dlib, sface in itertools.product(list(RUNS)[:2], list(RUNS)[2:]):
        held_out = fusion.held_out(scores[dlib], scores[sface], same)
        low, high = held_out.weights.min(), held_out.weights.max()
        wrong = (~held_out.correct).sum()
        print(f"| {dlib} + {sface} | {held_out.correct.mean():.2%} | {wrong} | {low:.2f}–{high:.2f} |")


if __name__ == "__main__":
    main()
