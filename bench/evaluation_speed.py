"""Speed of `faceprint eval` once embeddings are cached: 6,000 faces-dev pairs, stage by stage.

Builds 6,000 pairs over faces-dev (3,000 same-identity, 3,000 different, seeded; written to
``bench/out/pairs-6000.csv`` with absolute paths), embeds their images once (the evaluation
cache in the user cache folder), then times each stage over repeated runs (median):
cache look-up (file SHA-256 + SQLite), vectorised scoring, all metrics without and with
1,000 bootstrap resamples, the report (3 PNGs, HTML, JSON), and the whole CLI in a fresh process.

    python bench/evaluation_speed.py
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import common
from faceprint.evaluation import EvaluationSettings, read_pairs, verify_pairs
from faceprint.evaluation.cache import EmbeddingCache, embed_images
from faceprint.evaluation.evaluate import score_pairs, verification_summary
from faceprint.evaluation.report import write_report
from faceprint.pipeline import DEFAULT_OPTIONS

PAIRS = 6_000
REPEATS = 5
SEED = 20261123
OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    root = common.faces_dev()
    pairs_file = build_pairs(root)
    pairs = read_pairs(pairs_file)
    cache = EmbeddingCache()
    with common.progress_bar(len(pairs.images()), "embedding (first run only)") as advance:
        embed_images(pairs.images(), DEFAULT_OPTIONS, workers=common.DEFAULT_WORKERS, cache=cache, on_done=advance)
    images = embed_images(pairs.images(), DEFAULT_OPTIONS, cache=cache)
    scores = score_pairs(images, pairs)
    run = verify_pairs(pairs, EvaluationSettings(cache=cache))
    stages = {
        f"cache look-up of {len(images.paths):,} images": lambda: embed_images(
            pairs.images(), DEFAULT_OPTIONS, cache=cache
        ),
        f"scoring {PAIRS:,} pairs": lambda: score_pairs(images, pairs),
        "metrics, no bootstrap": lambda: verification_summary(scores, pairs.same, pairs.folds, resamples=0),
        "metrics with 1,000 bootstrap resamples": lambda: verification_summary(scores, pairs.same, pairs.folds),
        "report (3 PNG, HTML, JSON)": lambda: write_report(run, OUT / "report-6000"),
        "whole `faceprint eval` (fresh process)": lambda: subprocess.run(
            [sys.executable, "-m", "faceprint", "eval", str(pairs_file), "--out", str(OUT / "cli-6000")],
            check=True,
            capture_output=True,
        ),
    }
    print("| stage | median (ms) |\n| --- | --- |")
    for name, stage in stages.items():
        print(f"| {name} | {1000 * median_seconds(stage):,.1f} |")
    print(f"\naccuracy {run.summary['accuracy']['mean']:.2%} ± {run.summary['accuracy']['std']:.2%}")


def build_pairs(root: Path) -> Path:
    paths, identities = common.read_images(root)
    by_identity = defaultdict(list)
    for path, identity in zip(paths, identities):
        by_identity[identity].append(str(root / path))
    rng = random.Random(SEED)
    several = sorted(name for name, files in by_identity.items() if len(files) >= 2)
    names = sorted(by_identity)
    rows = []
    for i in range(PAIRS):
        if i % 2 == 0:
            a, b = rng.sample(by_identity[rng.choice(several)], 2)
            rows.append(f"{a},{b},1")
        else:
            first, second = rng.sample(names, 2)
            rows.append(f"{rng.choice(by_identity[first])},{rng.choice(by_identity[second])},0")
    OUT.mkdir(exist_ok=True)
    file = OUT / f"pairs-{PAIRS}.csv"
    file.write_text("path_a,path_b,same\n" + "\n".join(rows) + "\n")
    return file


def median_seconds(stage) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        stage()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if __name__ == "__main__":
    main()
