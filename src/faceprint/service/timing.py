"""Where a request's time went in the server, phase by phase, sent back as a ``Server-Timing`` header (W3C).

A client's latency is the server's time plus whatever the client and the network add; the header tells the two
apart (``bench/service.py`` reads it to find what makes the latency tail). Phases: ``admit`` (API key check
and rate limit), ``queue`` (waiting for the image pipeline), ``pipeline`` (the batch the images ran in; its
size as the description), ``search`` (the collection's decision), ``audit`` (queueing the audit row), ``hops``
(handing work to a worker thread and its result back to the event loop: the loop's stalls show here),
``total`` (the request in the app, up to its answer's start) and ``process`` (which server process answered:
with ``--workers N``, a kept-alive connection stays with the process that accepted it).
Only durations and a process id: nothing about the request's content.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Timings:
    """Seconds spent per phase by one request (a phase entered twice adds up)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def add(self, phase: str, seconds: float, note: str | None = None) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
        if note is not None:
            self.notes[phase] = note

    def header(self) -> str:
        """The ``Server-Timing`` value: each phase in milliseconds, then the total so far and the process."""
        entries = [
            f"{phase};dur={seconds * 1000:.1f}" + (f';desc="{self.notes[phase]}"' if phase in self.notes else "")
            for phase, seconds in self.seconds.items()
        ]
        entries.append(f"total;dur={(time.perf_counter() - self.started) * 1000:.1f}")
        entries.append(f'process;desc="{os.getpid()}"')
        return ", ".join(entries)

    def header_item(self) -> tuple[bytes, bytes]:
        """The header as an ASGI (name, value) pair."""
        return b"server-timing", self.header().encode()


#: The timings of the request being served (set per request by the app; worker threads see it through the
#: context they are run in).
_CURRENT: ContextVar[Timings | None] = ContextVar("faceprint_request_timings", default=None)


def start() -> Timings:
    """New timings for the request served in this context."""
    timings = Timings()
    _CURRENT.set(timings)
    return timings


def record(phase: str, seconds: float, note: str | None = None) -> None:
    """``seconds`` spent in ``phase`` by the request of this context (nothing outside a request)."""
    timings = _CURRENT.get()
    if timings is not None:
        timings.add(phase, seconds, note)


@contextmanager
def timed(phase: str) -> Iterator[None]:
    """Time the block as ``phase`` of the request of this context."""
    began = time.perf_counter()
    try:
        yield
    finally:
        record(phase, time.perf_counter() - began)
