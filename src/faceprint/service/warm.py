"""The process's models, loaded once in a background thread so that no request pays for them.

Apart from the web framework: ``faceprint serve --workers 1`` first forks a start-up helper process
(:func:`start_helper`) that loads the models on the second core while this process imports uvicorn, fastapi and
the routes (all of it under the GIL: a thread could not overlap it). The first requests' images go to the helper;
this process loads its own models once the helper has answered (or ``HELPER_GRACE`` seconds after the app started),
and the helper exits when they are loaded (BENCHMARKS.md, "Service").
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import threading
from importlib import resources
from multiprocessing.connection import Connection
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
#: Set once the start-up helper has answered a batch: this process loads its own models from then on.
HELPED = threading.Event()
#: Seconds after the app starts at which this process loads its own models even if no image came.
HELPER_GRACE = 2.0


def warm_up(after: threading.Event | None = None, at_most: float = 0.0) -> None:
    """Load the default pipeline's models in a thread, once per process, so that no request pays for it
    (YuNet, dlib's 5-point shape predictor, dlib's ResNet and SFace: 0.5-1 s; BENCHMARKS.md, "Service"); with
    ``after``, the thread waits for that event (at most ``at_most`` seconds) before it starts loading."""

    def run() -> None:
        if after is not None:
            after.wait(at_most)
        with PIPELINE:
            _run_sample()
        WARM.set()

    with _warming:
        if not any(t.name == "faceprint-warm-up" for t in threading.enumerate()) and not WARM.is_set():
            threading.Thread(target=run, name="faceprint-warm-up", daemon=True).start()


def _run_sample() -> None:
    from ..pipeline import DEFAULT_OPTIONS, process_files

    sample = resources.files("faceprint.samples") / "Kit_Harington_0001.jpg"
    list(process_files([sample.read_bytes()], DEFAULT_OPTIONS, workers=1))


class StartHelper:
    """A process forked at the start that loads the default pipeline's models at once and runs batches of images
    through the pipeline, one at a time, until this process has its own models (``retire``)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")  # before any thread of this process starts: fork is safe
        self._connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_helper_main, args=(theirs, self._connection), name="faceprint-start-helper"
        )
        self.process.daemon = True
        self.process.start()
        theirs.close()

    def images(self, sources: list[bytes], options: PipelineOptions, embed: bool) -> list[ImageResult] | None:
        """The pipeline's results for ``sources`` from the helper, or None where the pipeline raised there (the
        caller runs the batch itself, for the error to be its own); ``OSError`` (``EOFError`` included) or a
        pickling error where the helper is gone or its answer cannot be read."""
        self._connection.send((sources, options, embed))
        results: list[ImageResult] | None = self._connection.recv()
        return results

    def retire(self) -> None:
        self._connection.close()  # the helper reads the end of its pipe and exits
        self.process.join(timeout=5)


def _helper_main(connection: Connection, servers_end: Connection) -> None:
    servers_end.close()  # else the pipe would stay open after the server closes its end: no end of file to read
    gc.enable()  # `faceprint serve` turned it off for its own start-up
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which then closes the pipe
    from ..pipeline import process_files

    _run_sample()
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


def start_helper() -> None:
    """Fork the start-up helper (``faceprint serve --workers 1``, before uvicorn, fastapi and the routes import)."""
    global _helper
    _helper = StartHelper()


def helper() -> StartHelper | None:
    """The start-up helper while this process's own models are not loaded yet; None after (it is retired then)."""
    global _helper
    if _helper is not None and WARM.is_set():
        _helper.retire()
        _helper = None
    return _helper


def helper_failed() -> None:
    global _helper
    _helper = None
    HELPED.set()
