"""Start-up cost: ``import faceprint`` against ``import numpy``, ``faceprint --help`` / ``--version``, and a
fresh process's first ``faceprint.embed`` (the default pipeline's models loaded from their cache).

Each figure is the median of ``--runs`` fresh interpreters (imports are timed inside the process,
commands as whole processes from outside), so the operating system's file cache is warm and the
figures say what a user waits for at every call.

    python bench/startup.py            # 10 runs each
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: What ``import faceprint`` must not load (issue: "import faceprint is cheap").
HEAVY = ("cv2", "dlib", "onnxruntime", "faiss", "rich", "matplotlib", "scipy")
#: A committed photo of one face.
PHOTO = Path(__file__).parents[1] / "src" / "faceprint" / "samples" / "Kit_Harington_0001.jpg"
EMBED = "import sys, faceprint; assert len(faceprint.embed(sys.argv[1])) == 1"


def import_seconds(module: str) -> float:
    """Wall time of importing ``module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def loaded_after_import() -> list[str]:
    code = f"import sys, faceprint; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def command_seconds(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True)
    return time.perf_counter() - started


def first_embed_seconds() -> float:
    """A whole process that embeds one photo: the default pipeline's start-up as a script sees it."""
    return command_seconds(sys.executable, "-c", EMBED, str(PHOTO))


def median(measure: Callable[[], float], runs: int) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("faceprint"))
    numpy = median(lambda: import_seconds("numpy"), args.runs)
    faceprint = median(lambda: import_seconds("faceprint"), args.runs)
    first_embed_seconds()  # a first run converts and caches the models' graphs where none are cached yet
    rows = [
        ("import numpy", numpy),
        ("import faceprint", faceprint),
        ("faceprint --help", median(lambda: command_seconds(cli, "--help"), args.runs)),
        ("faceprint --version", median(lambda: command_seconds(cli, "--version"), args.runs)),
        ("python: import faceprint, first faceprint.embed", median(first_embed_seconds, args.runs)),
    ]
    print(f"| what | median of {args.runs} (s) |\n| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"\nimport faceprint - import numpy: {faceprint - numpy:+.3f} s (target: at most +0.100 s)")
    print(f"heavy modules loaded by import faceprint: {loaded_after_import() or 'none'}")


if __name__ == "__main__":
    main()
