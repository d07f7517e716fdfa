"""The process's models, loaded once in a background thread so that no request pays for them.

``faceprint serve --workers 1`` first forks a start-up helper process (:func:`start_helper`) that loads the models
on another core while this process imports uvicorn, fastapi and the routes: a thread could not overlap that work,
nearly all of it holds the GIL (BENCHMARKS.md, "Service"). The images of the first requests go to the helper; this
process loads its own models ``HELPER_GRACE`` seconds after its app started (while the helper still answers), and
the helper exits once they are loaded.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
from importlib import resources
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pipeline import ImageResult, PipelineOptions

#: Held by whatever runs the pipeline in this process: one image (or video frame) at a time. dlib's detector
#: and shape predictor are shared objects that are not safe to use from two threads at once (under load the
#: server died with "free(): corrupted unsorted chunks"); more processes (``--workers``) use more cores.
PIPELINE = threading.Lock()
_warming = threading.Lock()
#: Set once this process has run the default pipeline: its models are loaded (``/ready`` waits for it).
WARM = threading.Event()
#: Seconds between the app's start and this process loading its own models, where a start-up helper answers
#: meanwhile: loading them holds the GIL for ~0.4 s, which the first requests would wait for.
HELPER_GRACE = 2.0


def warm_up(delay: float = 0.0) -> None:
    """Load the default pipeline's models in a thread (after ``delay`` seconds), once per process, so that no
    request pays for it (YuNet, dlib's 5-point shape predictor, dlib's ResNet and SFace: 0.5-1 s); then retire the
    start-up helper, if any."""

    def run() -> None:
        time.sleep(delay)
        with PIPELINE:
            _run_sample()
        WARM.set()
        retire_helper()

    with _warming:
        if not any(t.name == "faceprint-warm-up" for t in threading.enumerate()) and not WARM.is_set():
            threading.Thread(target=run, name="faceprint-warm-up", daemon=True).start()


def _run_sample() -> None:
    from ..pipeline import DEFAULT_OPTIONS, process_files

    sample = resources.files("faceprint.samples") / "Kit_Harington_0001.jpg"
    list(process_files([sample.read_bytes()], DEFAULT_OPTIONS, workers=1))


class StartHelper:
    """A process forked at the start that loads the default pipeline's models at once, then runs batches of images
    through the pipeline, one at a time, until the server closes its end of the pipe (``retire``)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")  # before any thread of this process starts: fork is safe
        self._connection, theirs = context.Pipe()
        #: Set by the helper once its models are loaded.
        self.ready = context.Event()
        self.process = context.Process(
            target=_helper_main, args=(theirs, self._connection, self.ready), name="faceprint-start-helper"
        )
        self.process.daemon = True
        self.process.start()
        theirs.close()

    def images(self, sources: list[bytes], options: PipelineOptions, embed: bool) -> list[ImageResult] | None:
        """The pipeline's results for ``sources`` from the helper, or None where the pipeline raised there (the
        server runs the batch itself, for the error to be its own); ``OSError`` (``EOFError`` included) or a
        pickling error where the helper is gone or its answer cannot be read."""
        self._connection.send((sources, options, embed))
        results: list[ImageResult] | None = self._connection.recv()
        return results

    def retire(self) -> None:
        self._connection.close()  # the helper reads the end of its pipe and exits
        self.process.join(timeout=5)


def _helper_main(connection: Connection, servers_end: Connection, ready: Event) -> None:
    servers_end.close()  # else the pipe would stay open after the server closes its end: no end of file to read
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which then closes the pipe
    from ..pipeline import process_files

    _run_sample()
    ready.set()
    gc.freeze()  # as the server's lifespan does: the collector was off for the start-up (`faceprint serve`)
    gc.enable()
    while True:
        try:
            sources, options, embed = connection.recv()
        except (EOFError, OSError):
            return
        try:
            results: list[ImageResult] | None = list(
                process_files(sources, options, workers=1, embed=embed, chunk_size=len(sources))
            )
        except Exception:  # the server's process runs the batch again and answers with the error
            results = None
        connection.send(results)


_helper: StartHelper | None = None
_helper_lock = threading.Lock()


def load_models_early() -> None:
    """Start loading the models before the web stack imports: in a forked helper process where a second core can run
    it (the imports hold the GIL: a thread could not overlap them), else in a thread."""
    if len(os.sched_getaffinity(0)) > 1:
        start_helper()
    else:
        warm_up()


def start_helper() -> None:
    """Fork the start-up helper (``faceprint serve --workers 1``, before uvicorn, fastapi and the routes import),
    once the pipeline's modules are imported: the server needs them as well, and the helper inherits them instead
    of importing them again (numpy, OpenCV, dlib, Pillow: ~0.25 s of CPU less in all)."""
    global _helper
    from .. import pipeline  # noqa: F401

    _helper = StartHelper()


def has_helper() -> bool:
    return _helper is not None


def models_loaded() -> bool:
    """This process's models are loaded, or its start-up helper's are (``/ready``: requests are served at full
    speed either way)."""
    helper = _helper
    return WARM.is_set() or (helper is not None and helper.ready.is_set())


def helper_images(sources: list[bytes], options: PipelineOptions, embed: bool) -> list[ImageResult] | None:
    """The pipeline's results for ``sources`` from the start-up helper, or None where there is none (any more) or
    it did not answer them: the server then runs them itself. A helper that fails is not asked again."""
    global _helper
    with _helper_lock:
        if _helper is None:
            return None
        try:
            return _helper.images(sources, options, embed)
        except Exception:  # gone (killed, crashed) or unreadable
            _helper = None
            return None


def retire_helper() -> None:
    global _helper
    with _helper_lock:
        if _helper is not None:
            _helper.retire()
            _helper = None
