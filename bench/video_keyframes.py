"""Do a video's repeated faces pollute the clusters of a photo library, and does keeping one face per run help?

    python bench/video_keyframes.py                  # 40 people, 15 keyframes each
    python bench/video_keyframes.py --people 80 --keyframes 30

Library: the main face of every faces-dev photo (1,783, labelled with their identity; the default model's
templates, cached by bench/common.py). Videos: for each of ``--people`` people with at least two photos, a clip
of their first photo's face walking across a 640x360 frame and growing (tests/video_clips.py), sampled into
``--keyframes`` keyframes whose faces go through the pipeline as `faceprint scan --videos` sends them. The
faces of a clip are labelled with its person.

Clustered (faceprint's Chinese whispers at the clusters' FMR, every face new) three ways: the photos alone;
with every keyframe face (``keep_repeats``); with the best face of each run (``faceprint.library.keyframes``,
the default). Reported: faces stored, BCubed precision and F on the photo faces alone (what the video
faces did to the photos' clusters) and on every labelled face, and the clustering's CPU time.

Then the two real clips of ../shared/data/video (no identity labels) scanned with `faceprint scan --videos`
at ``--real-every`` seconds, every face kept and the best of each run: faces stored, clusters formed by a
``clusters update``, and faces per cluster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common
from clustering import scores

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.video_clips import Walker, make_clip  # noqa: E402

from faceprint import Gallery  # noqa: E402
from faceprint.library import Clusters, clustering, scan  # noqa: E402
from faceprint.library.clusters import CLUSTER_FMR  # noqa: E402
from faceprint.library.keyframes import KeyframeFace, best_of_runs  # noqa: E402
from faceprint.match import operating_point  # noqa: E402
from faceprint.pipeline import DEFAULT_OPTIONS, process_files  # noqa: E402

#: Frames between keyframes in the rendered clip (the clip plays at 25 fps: a keyframe every 0.4 s of motion).
STEP = 10
#: Orders in which Chinese whispers visits the faces (its only randomness).
SEEDS = 5


def clip_faces(photo: Path, person: str, keyframes: int, seed: int) -> list[tuple[KeyframeFace, bool]]:
    """The faces of one clip's keyframes, each with whether it is the walker's (by box overlap with the truth)."""
    rng = np.random.default_rng(seed)
    frames = keyframes * STEP
    start = (float(rng.uniform(120, 220)), float(rng.uniform(140, 200)))
    end = (float(rng.uniform(420, 520)), float(rng.uniform(140, 200)))
    walker = Walker(person, str(photo), start, end, float(rng.uniform(90, 130)), 0, frames, grow=1.3)
    clip = make_clip([walker], frames=frames, seed=seed)
    chosen = list(range(0, frames, STEP))
    results = process_files([clip.frames[i] for i in chosen], DEFAULT_OPTIONS, workers=1)
    found = []
    for index, result in zip(chosen, results):
        truth = clip.truth[person][index]
        for face in result.faces:
            mine = truth is not None and face.box.iou(truth) > 0.3
            found.append((KeyframeFace(face, None, index, index / clip.fps), mine))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--keyframes", type=int, default=15)
    parser.add_argument("--real-every", type=float, default=0.5)
    args = parser.parse_args()
    synthetic_clips(args.people, args.keyframes)
    real_clips(args.real_every)


def real_clips(every: float) -> None:
    print(f"\nthe real clips, a keyframe every {every:g} s:")
    for keep_repeats in (True, False):
        with tempfile.TemporaryDirectory() as folder, Gallery(Path(folder) / "g.db") as gallery:
            summary = scan(gallery, common.shared_data() / "video", videos=True, keyframe_every=every,
                           keep_repeats=keep_repeats)  # fmt: skip
            update = Clusters(gallery).update()
            sizes = sorted((c.faces for c in Clusters(gallery).all_clusters()), reverse=True)
        name = "every keyframe face" if keep_repeats else "best face of each run"
        print(
            f"  {name:<22} {summary.keyframes} keyframes, {summary.faces} faces stored: {update.new_clusters} "
            f"clusters of {sizes} faces, {update.waiting} faces waiting, {update.below_quality} below the gate"
        )


def synthetic_clips(people_count: int, keyframes: int) -> None:
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    photos = common.embed_faceprint(root, paths, DEFAULT_OPTIONS, label="faces-dev")
    kept = photos.found
    photo_vectors, photo_labels = photos.vectors[kept], np.array(identities)[kept]
    model = DEFAULT_OPTIONS.model.model_id
    threshold = operating_point(model, fmr=CLUSTER_FMR).threshold

    names, counts = np.unique(photo_labels, return_counts=True)
    people = [str(n) for n in names[counts >= 2]][:: max(1, int((counts >= 2).sum()) // people_count)][:people_count]
    every_face: list[tuple[np.ndarray, str]] = []
    runs: list[tuple[np.ndarray, str]] = []
    started = time.perf_counter()
    for seed, person in enumerate(people):
        first = next(p for p, who in zip(paths, identities) if who == person)
        found = clip_faces(root / first, person, keyframes, seed)
        label = {id(face): (person if mine else "") for face, mine in found}
        faces = [face for face, _ in found]
        every_face += [(f.face.template.vector, label[id(f)]) for f in faces]
        runs += [(f.face.template.vector, label[id(f)]) for f in best_of_runs(faces, threshold)]
    print(
        f"{len(people)} clips of {keyframes} keyframes: {len(every_face)} faces found, "
        f"{len(runs)} kept as the best of their run ({time.perf_counter() - started:.0f} s)"
    )
    print(f"model {model}, link threshold {threshold:.4f} (FMR {CLUSTER_FMR:g}); {len(photo_vectors)} photo faces")
    print(f"Chinese whispers visits faces in a random order: BCubed over seeds 0-{SEEDS - 1}, mean (min-max)")
    print(f"{'library':<26} {'faces':>6} {'photos: BCubed P':>22} {'F':>22} {'all labelled: F':>22} {'CPU s':>6}")
    for name, extra in (("photos alone", []), ("+ every keyframe face", every_face), ("+ best face of each run", runs)):
        vectors = np.concatenate([photo_vectors, *([np.stack([v for v, _ in extra])] if extra else [])])
        labels = np.concatenate([photo_labels, np.array([label for _, label in extra], dtype=photo_labels.dtype)])
        cpu = common.cpu_seconds()
        graph = clustering.self_graph(vectors, threshold)
        on_photos, on_all = [], []
        for seed in range(SEEDS):
            waiting = np.full(len(vectors), clustering.WAITING)
            predicted = clustering.whispers(graph, waiting, np.arange(len(vectors)), seed=seed)
            on_photos.append(scores(predicted[: len(photo_vectors)], photo_labels))
            on_all.append(scores(predicted, labels))
        cpu = (common.cpu_seconds() - cpu) / SEEDS
        precision, f = _spread(on_photos, "bcubed_precision"), _spread(on_photos, "bcubed_f")
        print(f"{name:<26} {len(vectors):>6} {precision:>22} {f:>22} {_spread(on_all, 'bcubed_f'):>22} {cpu:>6.1f}")


def _spread(found: list[dict[str, float]], key: str) -> str:
    values = [run[key] for run in found]
    return f"{np.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


if __name__ == "__main__":
    main()
