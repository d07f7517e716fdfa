"""Video jobs: a clip stored in a folder, run later through the video loop into a JSONL event timeline.

A job's folder holds ``clip`` (the uploaded bytes), ``events.jsonl`` (one line per ended track, written as
the job runs, the format of ``faceprint video --events``) and ``status.json`` (state, frames done, events,
error), each status written whole and renamed into place, so a reader never sees half of one. A job is run by
the process that queued it (``owner``); one left queued or running by a process that is gone reads as
``failed`` (interrupted), never as waiting forever.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..errors import FaceprintError, InvalidImageError
from ..gallery import Gallery
from ..gallery.refresh import process_alive
from .identity import IdentityOptions
from .process import VideoOptions, VideoProcessor
from .source import open_source
from .timeline import Timeline

_NOTHING_HELD = nullcontext()
JobState = Literal["queued", "running", "done", "failed"]
CLIP, EVENTS, STATUS = "clip", "events.jsonl", "status.json"

#: The leading bytes of the containers a job accepts: MP4/MOV ("ftyp" at 4), Matroska/WebM, AVI.
_VIDEO_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (8, b"AVI "))


def sniff_video(data: bytes) -> bool:
    """Is ``data`` an MP4/MOV, Matroska/WebM or AVI file (by its first bytes, not its name)?"""
    return any(data[offset : offset + len(head)] == head for offset, head in _VIDEO_SIGNATURES)


@dataclass(frozen=True)
class JobStatus:
    id: str
    collection: str
    state: JobState
    fpir: float | None
    created_at: str
    #: The process that queued the job and runs it.
    owner: int
    frames: int = 0
    events: int = 0
    error: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VideoJobs:
    """The jobs under one folder (a tenant's ``jobs``): each a sub-folder named by its id."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, collection: str, clip: bytes, *, fpir: float | None = None) -> JobStatus:
        """Store a clip as a queued job (``InvalidImageError`` when it is no video container faceprint reads)."""
        if not sniff_video(clip):
            raise InvalidImageError("the upload is not an MP4, MOV, WebM, Matroska or AVI video (by its content)")
        job = JobStatus(uuid.uuid4().hex, collection, "queued", fpir, _now(), os.getpid())
        folder = self.root / job.id
        folder.mkdir(parents=True)
        (folder / CLIP).write_bytes(clip)
        self._write(job)
        return job

    def status(self, job_id: str) -> JobStatus:
        """The job's status; ``FileNotFoundError`` when there is none of that id."""
        if not job_id.isalnum():
            raise FileNotFoundError(job_id)
        job = JobStatus(**json.loads((self.root / job_id / STATUS).read_text()))
        if job.state in ("queued", "running") and not process_alive(job.owner):
            return replace(job, state="failed", error="interrupted: the server process running it stopped")
        return job

    def events_path(self, job_id: str) -> Path:
        self.status(job_id)
        return self.root / job_id / EVENTS

    def run(
        self,
        job_id: str,
        gallery: Gallery,
        *,
        exclusive: AbstractContextManager[Any] = _NOTHING_HELD,
        on_frame_every: int = 25,
    ) -> JobStatus:
        """Run a queued job to its end: track and identify the clip's faces at the job's FPIR, each ended track
        a line of ``events.jsonl``; ``done``, or ``failed`` with the reason. The clip is removed afterwards.
        ``exclusive`` is held around each frame's work (a server that runs the pipeline in several threads
        takes turns on dlib's models, which two threads must not use at once)."""
        job = replace(self.status(job_id), state="running")
        self._write(job)
        folder = self.root / job_id
        options = VideoOptions(identity=IdentityOptions(fpir=job.fpir))
        try:
            with open_source(folder / CLIP) as frames, Timeline(folder / EVENTS) as timeline:
                processor = VideoProcessor(gallery, options, fps=frames.fps, on_event=timeline.line)
                for frame in frames:
                    with exclusive:
                        result = processor.process(frame)
                    job = replace(job, frames=result.frame.index + 1, events=len(processor.events))
                    if job.frames % on_frame_every == 0:
                        self._write(job)
                with exclusive:
                    found = processor.finish()
                job = replace(job, state="done", events=len(found))
        except FaceprintError as error:
            job = replace(job, state="failed", error=str(error).replace(str(folder / CLIP), "the clip"))
        (folder / CLIP).unlink(missing_ok=True)
        job = replace(job, finished_at=_now())
        self._write(job)
        return job

    def fail(self, job_id: str, reason: str) -> JobStatus:
        """Mark a job failed (its runner could not run it), with the reason."""
        job = replace(self.status(job_id), state="failed", error=reason, finished_at=_now())
        (self.root / job_id / CLIP).unlink(missing_ok=True)
        self._write(job)
        return job

    def _write(self, job: JobStatus) -> None:
        path = self.root / job.id / STATUS
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(job.to_dict()))
        os.replace(partial, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
