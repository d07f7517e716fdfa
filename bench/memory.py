"""Peak memory (and wall time) of the CLI identifying one photo against a 10,000-template gallery.

    python bench/memory.py [--templates 10000]

The gallery holds 2,000 synthetic people x 5 templates: unit vectors drawn around random
centres, which costs the same to store and search as real templates. The probe is a committed
photo; the figure is the child process's peak resident set size (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceprint import Gallery
from faceprint.gallery.records import NewTemplate

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "data" / "faces-hires" / "multi" / "kit_harington_and_rose_leslie.jpg"
PER_PERSON = 5


def build_gallery(path: Path, templates: int) -> None:
    rng = np.random.default_rng(0)
    with Gallery(path) as gallery:
        model = gallery.model_id
        for start in range(0, templates // PER_PERSON, 500):
            with gallery.store.transaction() as db:
                for person in range(start, min(start + 500, templates // PER_PERSON)):
                    centre = rng.normal(size=128)
                    vectors = centre + 0.4 * rng.normal(size=(PER_PERSON, 128))
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    person_id = gallery.store.ensure_person(db, f"person-{person:05d}", None, None)
                    gallery.store.add_templates(db, person_id, [NewTemplate(v, model) for v in vectors])


def measure(db: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one `faceprint identify` run."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "faceprint", "identify", str(PROBE), "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "gallery.db"
        build_gallery(db, args.templates)
        with Gallery(db) as gallery:
            count = sum(p.template_count for p in gallery.people())
        peak, seconds = measure(db)
        size = db.stat().st_size / 2**20
    print("| templates | gallery file | peak RSS of `faceprint identify` | wall time (incl. start-up) |")
    print("| --- | --- | --- | --- |")
    print(f"| {count:,} | {size:.1f} MiB | {peak:.0f} MiB | {seconds:.2f} s |")


if __name__ == "__main__":
    main()
