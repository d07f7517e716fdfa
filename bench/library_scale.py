"""Photo libraries at scale: re-scanning an unchanged folder of 10,000 photos, and clustering 10,000 new
faces into 100,000 clustered ones.

    python bench/library_scale.py --rescan 10000      # re-scan time of an unchanged 10,000-photo folder
    python bench/library_scale.py --cluster 100000 10000
    python bench/library_scale.py --sealed 110000     # reading every face's vector: plain against sealed

Re-scan: a folder of links to the faces-dev images under distinct names (bench/.cache/links-N/), and a
gallery whose photo table holds what a scan of it stores (each link's stat and digest, and the faces of the
photo it points to, copied from the faces-dev scan of bench/clustering.py: scanning 10,000 photos anew would
take an hour here). Then ``faceprint scan`` of the folder runs as a user runs it, a fresh process, timed end
to end; it must find every photo unchanged.

Clustering: synthetic faces of ``--model`` (default: a new gallery's) fitted to the main face of each faces-dev
photo (bench/distractors.py: people of 1 to 5 photos), stored as library faces; ``Clusters.update`` clusters the
first ``existing`` (timed once: the clustered gallery is kept in bench/.cache), then the next ``new`` are added
and the incremental update is timed, wall and CPU.

    python bench/library_scale.py --cluster 100000 10000 --model dlib-resnet-v1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import common
import distractors
from clustering import scanned
from faceprint import Gallery
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.library import Clusters
from faceprint.library.scan import file_digest
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import DEFAULT_OPTIONS, PipelineOptions
from faceprint.profiles import options_for_model

ROOT = Path(__file__).resolve().parents[1]


def rescan(count: int) -> dict:
    source = scanned(DEFAULT_OPTIONS.model.model_id)
    folder = common.CACHE_DIR / f"links-{count}"
    targets = sorted((common.faces_dev() / "deepfunneled").rglob("*.jpg"))
    links = [folder / f"{i // 1000:02d}" / f"photo_{i:06d}.jpg" for i in range(count)]
    if not folder.exists():
        for i, link in enumerate(links):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(targets[i % len(targets)])
    db = common.CACHE_DIR / f"rescan-{count}.db"
    db.unlink(missing_ok=True)
    Gallery(db).close()  # the schema
    _copy_scan(source, db, links, [targets[i % len(targets)] for i in range(count)])
    start = time.perf_counter()
    command = [sys.executable, "-m", "faceprint", "scan", str(folder), "--db", str(db), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    summary = json.loads(done.stdout)
    assert summary["unchanged"] == count and summary["new"] == 0, summary
    return {"photos": count, "seconds_end_to_end": seconds, "seconds_in_scan": summary["seconds"]}


def _copy_scan(source: Path, db: Path, links: list[Path], targets: list[Path]) -> None:
    """Photo rows for the links (their stat, their target's digest) with the faces of their target."""
    with sqlite3.connect(source) as src:
        photos = {row[0]: row[1:] for row in src.execute("SELECT path, id, sha256 FROM photo")}
        faces: dict[int, list[tuple]] = {}
        for row in src.execute(
            "SELECT photo_id, face_index, model_id, vector, box, quality, quality_report, thumbnail FROM face"
        ):
            faces.setdefault(row[0], []).append(row[1:])
    with sqlite3.connect(db) as out:
        for link, target in zip(links, targets):
            photo_id, sha256 = photos[str(target)]
            info = os.stat(link)
            new_id = out.execute(
                "INSERT INTO photo (path, size, mtime_ns, sha256, scanned_at) VALUES (?, ?, ?, ?, 'bench')",
                (str(link), info.st_size, info.st_mtime_ns, sha256),
            ).lastrowid
            out.executemany(
                "INSERT INTO face (photo_id, face_index, model_id, vector, box, quality, quality_report, thumbnail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(new_id, *face) for face in faces.get(photo_id, [])],
            )
    assert file_digest(str(links[0])) == photos[str(targets[0])][1]


def cluster_scale(existing: int, new: int, model_id: str) -> dict:
    """The first update of ``existing`` synthetic faces (cached in bench/.cache once made), then ``new`` more
    added and the incremental update timed: wall and CPU seconds (this process, every thread)."""
    options = options_for_model(EMBEDDING_MODELS[model_id])
    clustered = common.CACHE_DIR / f"cluster-scale-{model_id}-{existing}-{new}.db"
    synthetic = _synthetic_faces(options, existing + new)
    if not clustered.exists():
        _first_update(clustered, synthetic[:existing], options)
    db = common.CACHE_DIR / "cluster-scale-run.db"
    db.unlink(missing_ok=True)
    shutil.copy(clustered, db)
    with Gallery(db, options=options) as gallery:
        _add_faces(db, synthetic[existing:], model_id, existing)
        start, cpu = time.perf_counter(), time.process_time()
        second = Clusters(gallery).update()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    db.unlink()
    return {
        "model": model_id,
        "existing": existing,
        "new": new,
        "first_update": json.loads(clustered.with_suffix(".json").read_text()),
        "incremental_seconds": seconds,
        "incremental_cpu_seconds": cpu_seconds,
        "incremental": second.to_dict(),
    }


def _synthetic_faces(options: PipelineOptions, count: int) -> np.ndarray:
    """Synthetic faces of the model fitted to the main face of each faces-dev photo (people of 1 to 5 photos,
    in random order: a person's photos arrive at any time)."""
    generator = distractors.Generator.fit(distractors.real_templates(options.model), options.model)
    rng = np.random.default_rng(0)
    parts = []
    while sum(len(p) for p in parts) < count:
        parts.append(generator.sample(1000, int(rng.integers(1, 6)), rng)[0])
    synthetic = np.concatenate(parts)[:count].astype("<f4")
    return synthetic[rng.permutation(len(synthetic))]


def _first_update(db: Path, vectors: np.ndarray, options: PipelineOptions) -> None:
    with Gallery(db, options=options) as gallery:
        _add_faces(db, vectors, options.model.model_id, 0)
        start = time.perf_counter()
        first = Clusters(gallery).update()
        seconds = time.perf_counter() - start
    db.with_suffix(".json").write_text(json.dumps({"seconds": seconds, **first.to_dict()}))


def _add_faces(db: Path, vectors: np.ndarray | list[bytes], model_id: str, offset: int) -> None:
    report = json.dumps({"problems": []})
    with sqlite3.connect(db) as out:
        for i, vector in enumerate(vectors):
            photo = out.execute(
                "INSERT INTO photo (path, size, mtime_ns, sha256, scanned_at) VALUES (?, 0, 0, NULL, 'bench')",
                (f"/synthetic/{offset + i:07d}.jpg",),
            ).lastrowid
            out.execute(
                "INSERT INTO face (photo_id, face_index, model_id, vector, box, quality, quality_report)"
                " VALUES (?, 0, ?, ?, '[0, 0, 1, 1]', 1.0, ?)",
                (photo, model_id, vector if isinstance(vector, bytes) else vector.tobytes(), report),
            )


def sealed_reads(count: int) -> dict:
    """What encryption at rest costs a clusters update: reading (and, sealed, opening) the vector of every
    library face, as ``Clusters.update`` does, from a plain and from an encrypted gallery of ``count`` faces;
    and sealing them as a scan does."""
    from faceprint.protect import new_key

    model = DEFAULT_OPTIONS.model
    vectors = np.random.default_rng(18).normal(size=(count, model.dimension)).astype("<f4")
    result: dict = {"faces": count}
    for label, key in (("plain", None), ("sealed", new_key())):
        db = common.CACHE_DIR / f"sealed-reads-{label}.db"
        db.unlink(missing_ok=True)
        with Gallery(db, key=key) as gallery:
            store = gallery.store
            assert isinstance(store, SQLiteStore)
            start = time.perf_counter()
            # Face ids 1..count: the ids _add_faces's rows get in an empty gallery.
            rows = [store.stored_face(i + 1, model.model_id, v, None)[0] for i, v in enumerate(vectors)]
            result[f"{label}_store_seconds"] = time.perf_counter() - start
            _add_faces(db, rows, model.model_id, 0)
            start = time.perf_counter()
            found = store.query("SELECT id, model_id, vector FROM face ORDER BY id")
            opened = store.face_vectors(found, model.dimension)
            result[f"{label}_read_seconds"] = time.perf_counter() - start
            assert np.array_equal(opened, vectors)
        db.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rescan", type=int, default=0, metavar="PHOTOS")
    parser.add_argument("--cluster", type=int, nargs=2, default=None, metavar=("EXISTING", "NEW"))
    parser.add_argument("--sealed", type=int, default=0, metavar="FACES")
    parser.add_argument(
        "--model",
        default=DEFAULT_OPTIONS.model.model_id,
        help="clustering: the faces' model [default: a new gallery's]",
    )
    args = parser.parse_args()
    if args.rescan:
        print(json.dumps(rescan(args.rescan), indent=2), flush=True)
    if args.cluster:
        print(json.dumps(cluster_scale(*args.cluster, args.model), indent=2), flush=True)
    if args.sealed:
        print(json.dumps(sealed_reads(args.sealed), indent=2), flush=True)


if __name__ == "__main__":
    main()
