"""What a gallery's own measurement (``Gallery.measure_identification``) costs as the gallery grows, and what
searches and enrollments meet while a stale gallery measures itself in the background.

    python bench/refresh.py --sizes 1000 2000 5000 10000 20000    # cost of measuring at once, per size
    python bench/refresh.py --sizes 100000 --background            # and the background refresh at 100k

The galleries are those of ``bench/open_set.py`` (faces-dev people plus distractor people, one photo each; built
and cached by it under bench/.cache), copied to a temporary folder so that nothing here changes the cache.
``measure`` times a measurement made at once (wall and CPU seconds; the searches it makes: up to 20,000). With
``--background``, the gallery is then made stale (11% more templates: fresh distractor people) and searched one
template at a time: the first search starts the background measurement, and searches (and an enrollment about
every second) go on until it is stored; their latencies are compared with the same searches before it began (the
search index takes the 11% in before the first of them: that is the index's cost, not the measurement's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import distractors
import open_set
from faceprint import Gallery, Template
from faceprint.gallery.refresh import MEASURING
from faceprint.pipeline import DEFAULT_OPTIONS

#: Searches timed before the background measurement, as the baseline.
BASELINE_SEARCHES = 200


def copied_gallery(size: int, folder: Path) -> Path:
    """The open-set benchmark's gallery of ``size`` templates (built and cached if needed), with its saved search
    index, copied into ``folder``."""
    model = DEFAULT_OPTIONS.model
    split = open_set.make_split(model, size, 1, 0)
    cached, _ = open_set.build_gallery(model, split, size, 1)
    with Gallery(cached) as gallery:
        gallery.index_stats()  # builds and saves the index once, in the cache
    for source in cached.parent.glob(cached.name + "*"):
        if not source.name.endswith(("-wal", "-shm")):
            shutil.copy(source, folder / source.name)
    return folder / cached.name


def measure_at_once(path: Path) -> dict:
    with Gallery(path, measure_in_background=False) as gallery:
        gallery.index_stats()  # opens the index: not part of the measurement
        wall, cpu = time.perf_counter(), time.process_time()
        tail = gallery.measure_identification()
        return {
            "templates": tail.templates,
            "searches": tail.searches,
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
        }


def percentiles(latencies: list[float]) -> dict:
    ms = np.array(latencies) * 1000
    return {
        "count": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def background_refresh(path: Path) -> dict:
    """Searches and enrollments while a stale gallery measures itself in the background."""
    model = DEFAULT_OPTIONS.model
    generator = distractors.Generator.fit(distractors.real_templates(model), model)
    rng = np.random.default_rng(1)
    with Gallery(path, measure_at_once=0) as gallery:
        gallery.index_stats()
        probes = generator.sample(BASELINE_SEARCHES, 1, rng)[0]
        baseline = []
        for probe in probes:
            start = time.perf_counter()
            gallery.rank_people(probe[None], 1)
            baseline.append(time.perf_counter() - start)
        grown = int(0.11 * gallery.template_count())
        newcomers = generator.sample(grown, 1, rng)[0]
        for n, vector in enumerate(newcomers):
            gallery.add_templates(f"new{n}", [Template(vector, gallery.model_id)])
        gallery.search_templates(probes[:1], 1)  # the index takes the newcomers in first: not what is measured here
        searches, enrollments, bound = [], [], 0
        start = time.perf_counter()
        last_enrollment = start
        while True:
            probe = probes[len(searches) % len(probes)]
            began = time.perf_counter()
            answer = gallery.identify_templates(probe[None])[0]
            searches.append(time.perf_counter() - began)
            bound += MEASURING in (answer.basis or "")
            if began - last_enrollment >= 1.0:
                vector = generator.sample(1, 1, rng)[0][0]
                last_enrollment = time.perf_counter()
                gallery.add_templates(f"during{len(enrollments)}", [Template(vector, gallery.model_id)])
                enrollments.append(time.perf_counter() - last_enrollment)
            assert gallery.background is not None
            if not gallery.background.running:
                break
        refresh_s = time.perf_counter() - start
        tail = gallery.measured_tail()
        assert tail is not None and gallery.background.error is None, gallery.background.error
        return {
            "templates_when_stale": gallery.template_count() - len(enrollments),
            "refresh_wall_s": round(refresh_s, 1),
            "measured_at": tail.templates,
            "measurement_s": tail.seconds,
            "search_before": percentiles(baseline),
            "search_during": percentiles(searches),
            "enrollment_during": percentiles(enrollments) if enrollments else None,
            "searches_with_the_bound": bound,
            "basis_after": gallery.identification_point().basis,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--background", action="store_true", help="also the background refresh (largest size)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = copied_gallery(size, Path(folder))
            row = {"size": size, "measure": measure_at_once(path)}
            if args.background and size == max(args.sizes):
                row["background"] = background_refresh(path)
            rows.append(row)
            print(json.dumps(row), flush=True)
            for file in Path(folder).iterdir():
                file.unlink()


if __name__ == "__main__":
    main()
