"""Clustering quality on faces-dev: which method groups unknown faces into people best?

    python bench/clustering.py                          # faces-dev, every method in one run
    python bench/clustering.py --distractors 100000     # plus synthetic distractor faces (bench/distractors.py)
    python bench/clustering.py --model dlib-resnet-v1+sface-2021dec

Data: faces-dev scanned by ``faceprint scan`` (every face of every photo, the gallery cached as
bench/.cache/faces-dev-scan-<model>.db; the first run scans). The main face of each photo (the pipeline's
first) is labelled with its folder's identity; the other faces take part unlabelled, as in a real library,
and so do the distractors. Waiting (unclustered) faces count as singletons.

Measured on the labelled faces: BCubed precision, recall and F (per face: the share of its cluster that is
its person, and of its person that is in its cluster), and pairwise precision, recall and F (pairs of faces;
dominated by George W. Bush's 530 photos: reported, not decided by). Thresholds are stated as the
false-match rate they give (``faceprint.match.operating_point``) for the model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import common
import distractors
from faceprint.library import clustering
from faceprint.match import operating_point
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.profiles import options_for_model

ROOT = Path(__file__).resolve().parents[1]
FMRS = (1e-3, 1e-4, 1e-5)
RAW_DLIB_NORM = 1.42


def scanned(model_id: str) -> Path:
    """The faces-dev library scanned with the model's pipeline (scanned now if not cached)."""
    db = common.CACHE_DIR / f"faces-dev-scan-{model_id}.db"
    profile = {"dlib-resnet-v1": [], "dlib-resnet-v1+sface-2021dec": ["--profile", "accurate"]}[model_id]
    folder = common.faces_dev() / "deepfunneled"
    if not db.exists() or _photos(db) < 1783:
        command = [sys.executable, "-m", "faceprint", "scan", str(folder), "--db", str(db), "--workers", "2", *profile]
        subprocess.run(command, check=True, cwd=ROOT)
    return db


def _photos(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM photo").fetchone()[0])


def load_faces(db: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vectors, identity of each face or '' when unlabelled, quality acceptable)``."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT f.vector, f.face_index, p.path, f.quality_report FROM face f JOIN photo p ON p.id = f.photo_id"
            " ORDER BY f.id"
        ).fetchall()
    vectors = np.stack([np.frombuffer(r[0], "<f4") for r in rows])
    labels = np.array([Path(r[2]).parent.name if r[1] == 0 else "" for r in rows])
    acceptable = np.array([not json.loads(r[3])["problems"] for r in rows])
    return vectors, labels, acceptable


_GRAPHS: dict[tuple[int, float], clustering.Graph] = {}


def self_graph(vectors: np.ndarray, threshold: float) -> clustering.Graph:
    """``clustering.self_graph``, computed once per set of faces and threshold (100,000 faces take minutes)."""
    key = (len(vectors), threshold)
    if key not in _GRAPHS:
        _GRAPHS[key] = clustering.self_graph(vectors, threshold)
    return _GRAPHS[key]


def core_points(vectors: np.ndarray, threshold: float, min_neighbours: int) -> np.ndarray:
    """Cluster labels (``-1``: waiting) by the core-point method (see the module docstring)."""
    everyone = np.arange(len(vectors))
    return assign_new(
        self_graph(vectors, threshold), np.full(len(vectors), clustering.WAITING), min_neighbours, everyone
    )


def assign_new(graph: clustering.Graph, labels: np.ndarray, min_neighbours: int, rows: np.ndarray) -> np.ndarray:
    """New labels for the waiting faces at ``rows`` (row ``i`` of ``graph`` is face ``rows[i]``; ``graph.ids``
    index ``labels``), the clustered faces' labels kept. A waiting face with at least ``min_neighbours`` linked
    faces is a core: it joins the existing cluster it is most linked to (two existing clusters are never
    merged: that is the user's to decide), and cores linked only to new cores found a cluster together. Other
    waiting faces join the cluster of their most similar core, or go on waiting."""
    before, labels = labels, labels.copy()
    degree = graph.degree()
    core = before != clustering.WAITING  # clustered faces stand for the cores of their cluster
    core[rows] = degree >= min_neighbours
    row_of = {int(face): row for row, face in enumerate(rows)}
    parent = {int(face): int(face) for face in rows if core[face]}
    for face in parent:
        joined = _existing_cluster(graph, row_of[face], before)
        if joined is not None:
            labels[face] = joined
    for face in parent:
        for other in graph.ids[row_of[face]]:
            if int(other) in parent:
                _union(parent, face, int(other))
    _label_components(parent, labels)
    for face in rows:
        if labels[face] == clustering.WAITING:
            labels[face] = _nearest_core_cluster(graph, row_of[int(face)], labels, core)
    return labels


def _existing_cluster(graph: clustering.Graph, row: int, labels: np.ndarray) -> int | None:
    """The cluster a face's links to clustered faces point to most (summed similarity), if any."""
    votes: dict[int, float] = {}
    for other, score in zip(graph.ids[row], graph.scores[row]):
        if other >= 0 and labels[other] != clustering.WAITING:
            votes[int(labels[other])] = votes.get(int(labels[other]), 0.0) + float(score)
    return max(votes, key=votes.__getitem__) if votes else None


def _union(parent: dict[int, int], a: int, b: int) -> None:
    ra, rb = _root(parent, a), _root(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def _root(parent: dict[int, int], node: int) -> int:
    while parent[node] != node:
        parent[node] = parent[parent[node]]
        node = parent[node]
    return node


def _label_components(parent: dict[int, int], labels: np.ndarray) -> None:
    """A component of new cores takes the cluster one of its members joined, else a new label."""
    next_label = int(labels.max(initial=clustering.WAITING)) + 1
    chosen: dict[int, int] = {}
    for node in parent:
        if labels[node] != clustering.WAITING:
            chosen.setdefault(_root(parent, node), int(labels[node]))
    for node in parent:
        root = _root(parent, node)
        if root not in chosen:
            chosen[root], next_label = next_label, next_label + 1
        if labels[node] == clustering.WAITING:
            labels[node] = chosen[root]


def _nearest_core_cluster(graph: clustering.Graph, row: int, labels: np.ndarray, core: np.ndarray) -> int:
    for other in graph.ids[row]:  # most similar first
        if other >= 0 and core[other] and labels[other] != clustering.WAITING:
            return int(labels[other])
    return clustering.WAITING


def whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """faceprint's method (``faceprint.library.clustering.whispers``), every face new."""
    everyone = np.arange(len(vectors))
    graph = self_graph(vectors, threshold)
    return clustering.whispers(graph, np.full(len(vectors), clustering.WAITING), everyone)


def chinese_whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """dlib's Chinese whispers over the faces linked above ``threshold``, unweighted and with a self-link each,
    as ``dlib.chinese_whispers_clustering`` builds its graph."""
    import dlib

    graph = self_graph(vectors, threshold)
    edges: list[tuple[int, int]] = [(i, i) for i in range(len(vectors))]
    for row, ids in enumerate(graph.ids):
        edges += [(row, int(j)) for j in ids if j > row]
    return np.asarray(dlib.chinese_whispers(edges), dtype=np.int64)


def hdbscan(vectors: np.ndarray, min_cluster_size: int = 2, min_samples: int | None = None) -> np.ndarray:
    """scikit-learn's HDBSCAN on cosine distances (labels ``-1``: noise, i.e. waiting)."""
    from sklearn.cluster import HDBSCAN

    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0).astype(np.float64)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, metric="precomputed", copy=False)
    return np.asarray(model.fit_predict(distances), dtype=np.int64)


def as_partition(labels: np.ndarray) -> np.ndarray:
    """Labels where each waiting face is its own cluster (how quality measures count it)."""
    labels = labels.copy()
    waiting = labels == clustering.WAITING
    labels[waiting] = labels.max(initial=0) + 1 + np.arange(int(waiting.sum()))
    return labels


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """BCubed and pairwise precision, recall, F of ``predicted`` (waiting = singletons) against ``truth``."""
    labelled = truth != ""
    clusters = as_partition(predicted)[labelled]
    _, people = np.unique(truth[labelled], return_inverse=True)
    joint = clusters * (people.max() + 1) + people
    _, joint_ids, joint_sizes = np.unique(joint, return_inverse=True, return_counts=True)
    _, cluster_ids, cluster_sizes = np.unique(clusters, return_inverse=True, return_counts=True)
    person_sizes = np.bincount(people)
    both = joint_sizes[joint_ids]
    bp, br = float(np.mean(both / cluster_sizes[cluster_ids])), float(np.mean(both / person_sizes[people]))
    same_both = float((joint_sizes * (joint_sizes - 1)).sum())
    pp = same_both / max(float((cluster_sizes * (cluster_sizes - 1)).sum()), 1.0)
    pr = same_both / max(float((person_sizes * (person_sizes - 1)).sum()), 1.0)
    return {
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f": 2 * bp * br / (bp + br),
        "pairwise_precision": pp,
        "pairwise_recall": pr,
        "pairwise_f": 2 * pp * pr / (pp + pr) if pp + pr else 0.0,
        "clusters": len(np.unique(predicted[predicted >= 0])),
        "waiting_labelled": int((predicted[labelled] == clustering.WAITING).sum()),
    }


def methods(model_id: str, with_dlib_default: bool) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if with_dlib_default:
        # dlib's example: Euclidean distance 0.5 between raw descriptors, whose norm is 1.42 on average on
        # faces-dev (69 faces, sd 0.06): 0.352 between unit templates, i.e. cosine similarity 0.938.
        unit = 0.5 / RAW_DLIB_NORM
        found["chinese whispers, dlib's 0.5"] = lambda v: chinese_whispers(v, 1 - unit**2 / 2)
    for fmr in FMRS:
        t = operating_point(model_id, fmr=fmr).threshold
        found[f"chinese whispers (dlib), FMR {fmr:g}"] = lambda v, t=t: chinese_whispers(v, t)
        found[f"chinese whispers (faceprint), FMR {fmr:g}"] = lambda v, t=t: whispers(v, t)
        for m in (1, 2, 3):
            found[f"core points >= {m}, FMR {fmr:g}"] = lambda v, t=t, m=m: core_points(v, t, m)
    for size, samples in ((2, 1), (2, 2), (3, 3)):
        found[f"HDBSCAN min_cluster_size {size}, min_samples {samples}"] = lambda v, size=size, samples=samples: (
            hdbscan(v, size, samples)
        )
    return found


def with_distractors(
    vectors: np.ndarray, labels: np.ndarray, model_id: str, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Add ``count`` synthetic faces (people of 1 to 5 photos) fitted to the labelled templates."""
    main = labels != ""
    _, codes = np.unique(labels[main], return_inverse=True)
    real = distractors.RealTemplates(vectors[main], codes, [])
    generator = distractors.Generator.fit(real, EMBEDDING_MODELS[model_id])
    rng = np.random.default_rng(0)
    parts = []
    while sum(len(p) for p in parts) < count:
        per_person = int(rng.integers(1, 6))
        parts.append(generator.sample(1000, per_person, rng)[0])
    extra = np.concatenate(parts)[:count].astype(np.float32)
    return np.concatenate([vectors, extra]), np.concatenate([labels, np.full(count, "")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(EMBEDDING_MODELS), default=DEFAULT_OPTIONS.model.model_id)
    parser.add_argument("--distractors", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=[], help="methods whose name starts with one of these")
    parser.add_argument("--gate", choices=["both", "on", "off"], default="both", help="the quality gate")
    args = parser.parse_args()
    assert options_for_model(EMBEDDING_MODELS[args.model]).model.model_id == args.model
    vectors, labels, acceptable = load_faces(scanned(args.model))
    print(f"{len(vectors)} faces, {(labels != '').sum()} labelled, {(~acceptable).sum()} below the quality gate")
    if args.distractors:
        vectors, labels = with_distractors(vectors, labels, args.model, args.distractors)
        acceptable = np.concatenate([acceptable, np.ones(args.distractors, bool)])
    results = []
    for name, method in methods(args.model, args.model == "dlib-resnet-v1").items():
        if args.only and not name.startswith(tuple(args.only)):
            continue
        for gated in {"both": (False, True), "on": (True,), "off": (False,)}[args.gate]:
            start = time.perf_counter()
            kept = acceptable if gated else np.ones(len(vectors), bool)
            predicted = np.full(len(vectors), clustering.WAITING)
            predicted[kept] = method(vectors[kept])
            row = {
                "method": name,
                "quality_gate": gated,
                **scores(predicted, labels),
                "seconds": time.perf_counter() - start,
            }
            results.append(row)
            print(
                f"{name:48s} gate={gated!s:5s} BCubed P {row['bcubed_precision']:.4f} R {row['bcubed_recall']:.4f}"
                f" F {row['bcubed_f']:.4f} | pairwise P {row['pairwise_precision']:.4f} R {row['pairwise_recall']:.4f}"
                f" F {row['pairwise_f']:.4f} | {row['clusters']} clusters, {row['waiting_labelled']} waiting"
                f" | {row['seconds']:.1f} s",
                flush=True,
            )
    out = common.CACHE_DIR / f"clustering-{args.model}-{args.distractors}{'-only' if args.only else ''}.json"
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
