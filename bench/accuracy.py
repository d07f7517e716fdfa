"""Verification accuracy on faces-dev ``pairs.csv``: faceprint pipeline variants vs the face_recognition library.

Standard 10-fold protocol (fold k = rows with index % 10 == k, threshold chosen on the other
nine folds), counting every pair: an image in which no face is found makes its pairs errors.
Each variant embeds all 1,783 faces-dev images (not only the 1,222 in pairs), so the default
variant's run is shared with ``bench/calibrate.py`` through the embedding cache.

    python bench/accuracy.py                    # every variant (about 1 h on 2 cores, uncached)
    python bench/accuracy.py --only hog auto    # some of them
    python bench/accuracy.py --images raw150    # on the unaligned 150x150 originals
    python bench/accuracy.py --only auto yunet sface-yunet sface-dlib68 sface-auto   # YuNet and SFace

The ``fused-*`` variants run dlib's ResNet and SFace fused (``auto`` or YuNet detection): their
weight is fitted, like the threshold, on the nine training folds of each fold (``bench/fusion.py``),
and their TAR and AUC columns score each pair with the weight fitted without its fold.

The ``sface-*`` variants run the SFace model (``--only`` picks them): aligned on YuNet's own 5 points
(``sface-yunet``) or on 5 points from dlib's 68 (``sface-dlib68`` after YuNet, ``sface-auto`` after
today's detector).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import common
import fusion
from faceprint.evaluation import metrics
from faceprint.models import DLIB_RESNET, FUSED, SFACE
from faceprint.pipeline import PipelineOptions

#: The knobs compared, spelled out so that a change of the library defaults does not change the benchmark.
BASE = PipelineOptions(detector="auto", upsample=None, flip=True, jitter=0, backend="onnx", model=DLIB_RESNET)
VARIANTS: dict[str, PipelineOptions] = {
    "hog": dataclasses.replace(BASE, detector="hog"),
    "auto": BASE,
    "cnn": dataclasses.replace(BASE, detector="cnn"),
    "upsample-0": dataclasses.replace(BASE, upsample=0),
    "upsample-1": dataclasses.replace(BASE, upsample=1),
    "upsample-2": dataclasses.replace(BASE, upsample=2),
    "no-flip": dataclasses.replace(BASE, flip=False),
    "jitter-5": dataclasses.replace(BASE, jitter=5),
    "dlib-backend": dataclasses.replace(BASE, backend="dlib"),
    "yunet": dataclasses.replace(BASE, detector="yunet"),
    "yunet-int8": dataclasses.replace(BASE, detector="yunet", precision="int8"),
    "sface-yunet": dataclasses.replace(BASE, detector="yunet", model=SFACE, alignment="detector"),
    "sface-dlib68": dataclasses.replace(BASE, detector="yunet", model=SFACE, alignment="dlib68"),
    "sface-auto": dataclasses.replace(BASE, model=SFACE),  # auto gives no points of its own: dlib 68 -> 5
    "fused-auto": dataclasses.replace(BASE, model=FUSED),
    "fused-yunet": dataclasses.replace(BASE, detector="yunet", model=FUSED, alignment="detector"),
    "fused-yunet-no-flip": dataclasses.replace(BASE, detector="yunet", model=FUSED, alignment="detector", flip=False),
    "fused-yunet-sface-no-flip": dataclasses.replace(
        BASE, detector="yunet", model=FUSED, alignment="detector", unflipped=(SFACE.model_id,)
    ),
    "fused-yunet-sface-no-flip-int8": dataclasses.replace(
        BASE, detector="yunet", model=FUSED, alignment="detector", unflipped=(SFACE.model_id,), precision="int8"
    ),
    "yunet-no-flip": dataclasses.replace(BASE, detector="yunet", flip=False),
}
BASELINE = "face_recognition"
FMRS = (1e-2, 1e-3)
_CHUNK = 8


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    embeddings: common.Embeddings
    scores: np.ndarray
    correct: np.ndarray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[*VARIANTS, BASELINE], help="run only these variants")
    parser.add_argument("--images", choices=["deepfunneled", "raw150"], default="deepfunneled", help="image version")
    parser.add_argument("--workers", type=int, default=common.DEFAULT_WORKERS)
    args = parser.parse_args()
    root = common.faces_dev()
    paths, _ = common.read_images(root)
    path_a, path_b, same = common.read_pairs(root)
    # Both versions share relative paths under their own root folder.
    paths, path_a, path_b = ([_version(p, args.images) for p in ps] for ps in (paths, path_a, path_b))
    rows = []
    for name in args.only or [*VARIANTS, BASELINE]:
        embeddings = _embed(name, root, paths, args.workers)
        rows.append(_row(name, embeddings, path_a, path_b, same))
    print(_table(rows, same))


def _row(name: str, embeddings: common.Embeddings, path_a: list[str], path_b: list[str], same: np.ndarray) -> Row:
    if name in VARIANTS and VARIANTS[name].model.parts:
        first, second = fusion.part_scores(embeddings.vectors, embeddings.paths, path_a, path_b)
        held_out = fusion.held_out(first, second, same)
        return Row(name, _describe(name), embeddings, held_out.scores, held_out.correct)
    scores = common.pair_scores(embeddings, path_a, path_b, "euclidean" if name == BASELINE else "cosine")
    return Row(name, _describe(name), embeddings, scores, metrics.ten_fold_correct(scores, same))


def _version(path: str, images: str) -> str:
    return path.replace("deepfunneled/", f"{images}/", 1)


def _embed(name: str, root: Path, paths: list[str], workers: int) -> common.Embeddings:
    if name == BASELINE:
        return _embed_face_recognition(root, paths, workers)
    return common.embed_faceprint(root, paths, VARIANTS[name], label=name, workers=workers)


def _describe(name: str) -> str:
    if name == BASELINE:
        return "face_recognition 1.4 defaults: HOG upsample 1, 5-point chip, 1 jitter, Euclidean distance"
    default = " **(current default)**" if VARIANTS[name] == PipelineOptions() else ""
    return common.describe_options(VARIANTS[name]) + default


def _embed_face_recognition(root: Path, paths: list[str], workers: int) -> common.Embeddings:
    import face_recognition

    key = {"library": "face_recognition", "version": face_recognition.__version__}
    return common.cached_embeddings(BASELINE, key, paths, lambda: _run_face_recognition(root, paths, workers))


def _run_face_recognition(root: Path, paths: list[str], workers: int) -> common.Computed:
    chunks = [[str(root / p) for p in paths[i : i + _CHUNK]] for i in range(0, len(paths), _CHUNK)]
    results = []
    # spawn, like faceprint's own pool: dlib models must not be shared across a fork.
    with (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
        common.progress_bar(len(paths), BASELINE) as advance,
    ):
        for chunk_result in pool.map(_face_recognition_chunk, chunks):
            results += chunk_result
            advance(len(chunk_result))
    vectors = np.array([np.full(128, np.nan) if v is None else v for v in results], dtype=np.float32)
    status = np.array(["none" if v is None else "hog" for v in results], dtype="<U5")
    return vectors, status


def _face_recognition_chunk(files: list[str]) -> list[np.ndarray | None]:
    """The library's documented default pipeline, keeping the largest face."""
    import face_recognition

    encodings = []
    for file in files:
        image = face_recognition.load_image_file(file)
        boxes = face_recognition.face_locations(image)
        if not boxes:
            encodings.append(None)
            continue
        # boxes are (top, right, bottom, left)
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        encodings.append(face_recognition.face_encodings(image, known_face_locations=[largest])[0])
    return encodings


def _table(rows: list[Row], same: np.ndarray) -> str:
    images = len(rows[0].embeddings.paths)
    correct = {row.name: row.correct for row in rows}
    default = next((row.name for row in rows if row.name in VARIANTS and VARIANTS[row.name] == PipelineOptions()), None)
    lines = [
        "| variant | options | accuracy (mean ± std) | vs default: pairs fixed / broken (McNemar p) "
        "| TAR @ FMR 1e-2 | TAR @ FMR 1e-3 | ROC AUC "
        f"| no face (of {images:,} images) | pairs hit (of {len(same):,}) | CNN used | CPU ms/image | wall (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        accuracy = metrics.fold_accuracies(correct[row.name])
        tars = [metrics.tar_at_fmr(row.scores, same, fmr) for fmr in FMRS]
        status = row.embeddings.status
        lines.append(
            f"| {row.name} | {row.description} "
            f"| {accuracy.mean():.2%} ± {accuracy.std(ddof=1):.2%} "
            f"| {_versus(correct[row.name], correct[default]) if default and row.name != default else '–'} "
            + "".join(f"| {tar:.2%} " for tar in tars)
            + f"| {metrics.roc_auc(row.scores, same):.4f} "
            f"| {int(np.sum(~row.embeddings.found))} | {int(np.sum(~np.isfinite(row.scores)))} "
            f"| {int(np.sum(status == 'cnn'))} | {1000 * row.embeddings.cpu_seconds / images:.0f} "
            f"| {row.embeddings.seconds:.0f} |"
        )
    return "\n".join(lines)


def _versus(correct: np.ndarray, reference: np.ndarray) -> str:
    fixed, broken = int(np.sum(correct & ~reference)), int(np.sum(reference & ~correct))
    return f"+{fixed} / -{broken} (p = {metrics.mcnemar_p(correct, reference):.2g})"


if __name__ == "__main__":
    main()
