"""Helpers shared by the benchmark scripts: where the data is, cached embedding runs, pair scores.

The metrics themselves are the library's (``faceprint.evaluation.metrics``), so the benchmarks
and ``faceprint eval`` measure the same way.

Embeddings are cached in ``bench/.cache/`` because a run over faces-dev takes minutes; the cache
key covers everything the vectors depend on (options, file list, pipeline source code), so a
stale entry is never reused.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import faceprint
from faceprint.pipeline import PipelineOptions, process_files

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
#: faceprint modules whose code shapes a template; editing any of them invalidates cached embeddings.
_PIPELINE_MODULES = (
    *("pipeline", "detection", "align", "embedding", "resnet_onnx", "image", "models", "types", "choices"),
    *("yunet", "sface", "zoo_onnx", "int8"),
)
#: Data files that shape a template as code does (the int8 graph's activation ranges).
_PIPELINE_DATA = ("data/dlib-resnet-int8-ranges.json",)
#: Which face of an image is kept; change it whenever ``_run_faceprint`` chooses differently (it keys the cache).
FACE_CHOICE = "main face"
#: Detection is single-threaded dlib code, so one process per core; the benchmark machine has 2.
DEFAULT_WORKERS = 2

#: An embedding run's result: vectors (NaN rows where no face) and per-image status.
Computed = tuple[np.ndarray, np.ndarray]


def shared_data() -> Path:
    """``../shared/data`` next to the repository, or ``$FACEPRINT_SHARED_DATA``."""
    override = os.environ.get("FACEPRINT_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def faces_dev() -> Path:
    root = shared_data() / "faces-dev"
    if not (root / "images.csv").is_file():
        raise SystemExit(f"faces-dev not found at {root}; set FACEPRINT_SHARED_DATA to the shared data folder")
    return root


def read_images(root: Path) -> tuple[list[str], list[str]]:
    """Relative paths and identities of every image in ``images.csv``."""
    with open(root / "images.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["path"] for r in rows], [r["identity"] for r in rows]


def read_pairs(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``pairs.csv`` as (paths a, paths b, same-person flags), in file order (the fold order)."""
    with open(root / "pairs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["path_a"] for r in rows], [r["path_b"] for r in rows], np.array([r["same"] == "1" for r in rows])


@dataclass(frozen=True)
class Embeddings:
    """The main face's vector of each image (NaN row when none), with how it was found."""

    paths: list[str]
    vectors: np.ndarray
    #: per image: the detector that found the face ("hog"/"cnn"), "none", or "error" (unreadable)
    status: np.ndarray
    #: wall-clock time of the run that computed them (inflated when other work shares the cores)
    seconds: float
    #: CPU time of that run, this process and its workers together: the cost, whatever else was running
    cpu_seconds: float

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.vectors[:, 0])


def cached_embeddings(kind: str, key: dict, paths: Sequence[str], compute: Callable[[], Computed]) -> Embeddings:
    """``compute()``'s result for ``paths``, from the cache when the same run was done before."""
    digest = hashlib.sha256(json.dumps({"key": key, "paths": list(paths)}, sort_keys=True).encode()).hexdigest()
    file = CACHE_DIR / f"{kind}-{digest[:16]}.npz"
    if file.is_file():
        with np.load(file) as data:
            return Embeddings(
                list(paths), data["vectors"], data["status"], float(data["seconds"]), float(data["cpu_seconds"])
            )
    start, start_cpu = time.perf_counter(), cpu_seconds()
    vectors, status = compute()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    CACHE_DIR.mkdir(exist_ok=True)
    np.savez(file, vectors=vectors, status=status, seconds=seconds, cpu_seconds=cpu)
    return Embeddings(list(paths), vectors, status, seconds, cpu)


def fresh_process_rounds(module: str, calls: dict[str, str], rounds: int) -> dict[str, list[list[float]]]:
    """Each of ``calls`` (a name: a call of a function of ``module`` that returns numbers) run ``rounds`` times, each
    time in a fresh process (memory a process never had costs what repeated calls in one would not) and interleaved
    (the machine's load changes over a run); the numbers each run printed, by name."""
    runs: dict[str, list[list[float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            code = f"import {module}, pathlib; print(*{module}.{call})"
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
            )
            runs[name].append([float(value) for value in done.stdout.split()])
    return runs


def cpu_seconds() -> float:
    """CPU seconds of this process and of its child processes that have exited."""
    # Worker processes count once they have exited, which they have when a pool closes.
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def embed_faceprint(
    root: Path, paths: Sequence[str], options: PipelineOptions, *, label: str = "", workers: int = DEFAULT_WORKERS
) -> Embeddings:
    """faceprint templates of the main face of each image (paths relative to ``root``)."""
    code = _pipeline_code_digest()
    # Quality thresholds only flag faces; they do not change templates.
    key = {"options": repr(dataclasses.replace(options, thresholds=None)), "code": code, "face": FACE_CHOICE}

    def run() -> Computed:
        computed = _run_faceprint(root, paths, options, label, workers)
        # Workers import faceprint afresh: an edit during the run would mix two versions of the code.
        if _pipeline_code_digest() != code:
            raise SystemExit("faceprint's pipeline code changed during the run; nothing cached, run again")
        return computed

    return cached_embeddings("faceprint", key, paths, run)


def _run_faceprint(root: Path, paths: Sequence[str], options: PipelineOptions, label: str, workers: int) -> Computed:
    vectors = np.full((len(paths), options.model.dimension), np.nan, dtype=np.float32)
    status = np.full(len(paths), "none", dtype="<U5")
    sources = [str(root / p) for p in paths]
    with progress_bar(len(paths), label or repr(options)) as advance:
        for i, result in enumerate(process_files(sources, options, workers=workers, on_done=advance)):
            if result.error is not None:
                status[i] = "error"
            elif result.faces:
                # The pipeline's main face: the largest, favouring the centre (what --largest picks).
                face = result.faces[0]
                vectors[i] = face.template.vector
                status[i] = face.detector
    return vectors, status


def describe_options(options: PipelineOptions) -> str:
    """The benchmarked knobs of ``options`` in words."""
    upsample = "auto" if options.upsample is None else options.upsample
    flip = "on" if options.flip else "off"
    if options.flip and options.unflipped:
        flip += f" (not {', '.join(options.unflipped)})"
    described = (
        f"detector {options.detector}, upsample {upsample}, flip {flip}, jitter {options.jitter}, {options.backend}"
    )
    if options.precision != "fp32":
        described += f" {options.precision}"
    if options.model != PipelineOptions().model:
        points = "YuNet's" if options.alignment == "detector" and options.detector == "yunet" else "dlib 68 ->"
        described += f", model {options.model.model_id} on {points} 5 points"
    return described


def _pipeline_code_digest() -> str:
    package = Path(faceprint.__file__).parent
    files = [*(f"{name}.py" for name in _PIPELINE_MODULES), *_PIPELINE_DATA]
    sources = b"".join((package / name).read_bytes() for name in files)
    return hashlib.sha256(sources).hexdigest()


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar; yields ``advance(n)``."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def pair_scores(embeddings: Embeddings, path_a: Sequence[str], path_b: Sequence[str], metric: str) -> np.ndarray:
    """Similarity of each pair (higher = more alike); -inf where either image has no face.

    ``metric`` is "cosine" (dot product of unit vectors) or "euclidean" (negated distance).
    """
    row = {path: i for i, path in enumerate(embeddings.paths)}
    a = embeddings.vectors[[row[p] for p in path_a]].astype(np.float64)
    b = embeddings.vectors[[row[p] for p in path_b]].astype(np.float64)
    scores = np.sum(a * b, axis=1) if metric == "cosine" else -np.linalg.norm(a - b, axis=1)
    return np.where(np.isnan(scores), -np.inf, scores)
