"""The event timeline of a video: who appears when, as a file.

``.jsonl``: one JSON line per track, written as the track ends (so a stream's timeline can be
followed live). ``.json``: one document, ``timeline_summary``, written by ``finish``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import IO, Any

from ..errors import OutputError
from .process import TrackEvent, VideoProcessor
from .source import FrameSource


def timeline_summary(events: list[TrackEvent], source: FrameSource, processor: VideoProcessor) -> dict[str, Any]:
    """The whole timeline as one document: the source, its frame rate, detector runs and every event."""
    return {
        "source": source.name,
        "fps": round(source.fps, 3),
        "detections_run": processor.detections_run,
        "events": [event.to_dict() for event in events],
    }


class Timeline:
    """A timeline file, open from creation to ``close`` (a context manager); pass ``line`` as
    ``VideoProcessor``'s ``on_event``. A file that cannot be written raises ``OutputError``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live = path.suffix.lower() != ".json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[str] = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise self._error(exc) from None

    def line(self, event: TrackEvent) -> None:
        """Write an ended track's event (``.jsonl`` only)."""
        if self.live:
            self._write(json.dumps(event.to_dict()) + "\n")

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the whole timeline (``.json`` only; a ``.jsonl`` file already holds every event)."""
        if not self.live:
            self._write(json.dumps(summary, indent=2))

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError as exc:
            raise self._error(exc) from None

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the error on its way out says what went wrong; closing must not replace it
            with contextlib.suppress(OSError):
                self._handle.close()

    def _write(self, text: str) -> None:
        try:
            self._handle.write(text)
            self._handle.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(f"{self.path}: cannot write the timeline ({exc.strerror or exc})")
