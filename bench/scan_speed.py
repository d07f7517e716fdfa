"""Scanning a library against embedding the same photos: what the bookkeeping of ``faceprint scan`` costs.

    python bench/scan_speed.py --count 300 --rounds 2
    python bench/scan_speed.py --count 300 --rounds 2 --profile classic     # dlib's model (128-d)

Both commands run as a user runs them (fresh processes, ``--workers 2``) on the same folder of the first
``count`` faces-dev images (linked under bench/.cache/speed-N/), alternately, ``rounds`` times each: ``faceprint
embed FOLDER --out x.npz`` (every face's template) and ``faceprint scan FOLDER --db new.db`` (every face's
template, plus a thumbnail, provenance and one transaction per 64 photos), both with the same pipeline: the
default one of a new gallery (the fused model), or ``--profile``'s. Reported: photos per second of each, best
round, the CPU seconds of each run (every process it started), and the scan's overhead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common
from faceprint.choices import PROFILES
from faceprint.profiles import profile_options

ROOT = Path(__file__).resolve().parents[1]


def folder_of(count: int) -> Path:
    folder = common.CACHE_DIR / f"speed-{count}"
    if not folder.exists():
        for source in sorted((common.faces_dev() / "deepfunneled").rglob("*.jpg"))[:count]:
            (folder / source.parent.name).mkdir(parents=True, exist_ok=True)
            (folder / source.parent.name / source.name).symlink_to(source)
    return folder


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of running ``command`` (its worker processes included)."""
    start, cpu = time.perf_counter(), common.cpu_seconds()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start, common.cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=PROFILES, default=None, help="default: a new gallery's pipeline")
    args = parser.parse_args()
    folder = folder_of(args.count)
    out, db = common.CACHE_DIR / "speed.npz", common.CACHE_DIR / "speed.db"
    base = [sys.executable, "-m", "faceprint"]
    profile = ["--profile", args.profile] if args.profile else []
    seconds: dict[str, list[float]] = {"embed": [], "scan": []}
    cpu: dict[str, list[float]] = {"embed": [], "scan": []}
    for _ in range(args.rounds):
        for name in ("embed", "scan"):
            for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                leftover.unlink(missing_ok=True)
            target = ["--out", str(out)] if name == "embed" else ["--db", str(db)]
            wall, used = timed([*base, name, str(folder), *target, "--workers", "2", *profile])
            seconds[name].append(wall)
            cpu[name].append(used)
        print({k: [round(s, 1) for s in v] for k, v in seconds.items()}, flush=True)
    best = {k: min(v) for k, v in seconds.items()}
    result = {
        "photos": args.count,
        "model": profile_options(args.profile).model.model_id,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "photos_per_second": {k: args.count / s for k, s in best.items()},
        "scan_overhead": best["scan"] / best["embed"] - 1,
        "scan_cpu_overhead": min(cpu["scan"]) / min(cpu["embed"]) - 1,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
