"""The process's models, loaded once in a background thread so that no request pays for them.

Apart from the web framework: ``faceprint serve --workers 1`` starts the warm-up before it imports uvicorn,
fastapi and the routes, which the warm-up's file reads, hashing and first inference (outside the GIL)
overlap (BENCHMARKS.md, "Service").
"""

from __future__ import annotations

import threading
from importlib import resources

#: Held by whatever runs the pipeline in this process: one image (or video frame) at a time. dlib's detector
#: and shape predictor are shared objects that are not safe to use from two threads at once (under load the
#: server died with "free(): corrupted unsorted chunks"); more processes (``--workers``) use more cores.
PIPELINE = threading.Lock()
_warming = threading.Lock()
#: Set once this process has run the default pipeline: its models are loaded (``/ready`` waits for it).
WARM = threading.Event()


def warm_up() -> None:
    """Load the default pipeline's models in a thread, once per process, so that no request pays for it
    (YuNet, dlib's 5-point shape predictor, dlib's ResNet and SFace: 0.5-1 s; BENCHMARKS.md, "Service")."""

    def run() -> None:
        from ..pipeline import DEFAULT_OPTIONS, process_files

        sample = resources.files("faceprint.samples") / "Kit_Harington_0001.jpg"
        with PIPELINE:
            list(process_files([sample.read_bytes()], DEFAULT_OPTIONS, workers=1))
        WARM.set()

    with _warming:
        if not any(t.name == "faceprint-warm-up" for t in threading.enumerate()) and not WARM.is_set():
            threading.Thread(target=run, name="faceprint-warm-up", daemon=True).start()
