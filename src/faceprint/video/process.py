"""The video loop: detect on some frames, track on all, identify each track once, and report events.

Detection runs every ``detect_every`` frames on a downscaled copy of the frame, and sooner
(``react_after`` frames after the last detection) when a track was missed at it, or when
something moves outside the tracked faces (a cheap frame difference on a thumbnail), so a
newcomer or a face that slipped out of its predicted box is picked up quickly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..choices import DetectorName
from ..detection import detect_boxes
from ..draw import annotate_boxes
from ..gallery import Gallery
from ..pipeline import DEFAULT_OPTIONS, PipelineOptions, locate_face
from ..types import Box, Decision
from .identity import IdentityOptions, IdentityResolver, Shot, TrackIdentity
from .output import save_crop
from .source import Frame, FrameSource
from .tracker import Track, Tracker, TrackerOptions

#: Width of the thumbnail the motion check compares frames on.
_MOTION_WIDTH = 160
#: Grey-level change that counts as motion, and the share of the thumbnail that must change.
_MOTION_LEVEL = 25
_MOTION_SHARE = 0.003


@dataclass(frozen=True)
class VideoOptions:
    """How a video is processed. ``detector``: YuNet (default: 2-4x HOG's frames/s at 720p with the same
    identity accuracy on the test clips, and it finds faces down to ~20 px and half-hidden ones, see
    ``tracker``) or dlib's HOG (``"hog"``); ``detect_max_side``: detection runs on a copy of the frame whose
    longest side is at most this (960 finds faces down to ~110 px on 1280x720 frames with HOG, ~25 px with
    YuNet); ``detect_upsample``: None upsamples working copies of 640 px or less once for HOG, as
    ``detect_boxes`` does; ``detect_min_score``: YuNet's lowest score (None: its default, 0.6);
    ``adaptive``: detect after ``react_after`` frames already when a face was lost or something moved;
    ``identify``: False tracks faces without embedding them (anonymizing every face)."""

    detect_every: int = 5
    detector: DetectorName = "yunet"
    adaptive: bool = True
    react_after: int = 2
    detect_max_side: int = 960
    detect_upsample: int | None = None
    detect_min_score: float | None = None
    identify: bool = True
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    identity: IdentityOptions = field(default_factory=IdentityOptions)
    pipeline: PipelineOptions = DEFAULT_OPTIONS

    def __post_init__(self) -> None:
        if self.detect_every < 1 or self.react_after < 1:
            raise ValueError(
                f"detect_every and react_after must be at least 1, not {self.detect_every}/{self.react_after}"
            )


@dataclass(frozen=True)
class TrackedFace:
    """A face in one frame. ``detected``: the detector saw it on this frame (else the box is the
    tracker's prediction); ``coasting``: it was not seen at the last detection (probably hidden);
    ``uncertainty``: the prediction's standard deviation in pixels."""

    track_id: int
    box: Box
    label: str
    person_id: int | None
    similarity: float | None
    detected: bool
    coasting: bool
    confirmed: bool
    uncertainty: float
    #: Named within the uncertain band: shown with a question mark.
    doubtful: bool = False


@dataclass(frozen=True, eq=False)
class FrameResult:
    frame: Frame
    faces: list[TrackedFace]
    detector_ran: bool

    def annotated(self) -> np.ndarray:
        """The frame with each face seen at the last detection boxed and labelled ``#track name``."""
        shown = [face for face in self.faces if not face.coasting]
        labels = [f"#{face.track_id} {face.label}{'?' if face.doubtful else ''}" for face in shown]
        known = [face.person_id is not None for face in shown]
        return annotate_boxes(self.frame.pixels, [face.box for face in shown], labels, known)


@dataclass(frozen=True)
class TrackEvent:
    """One appearance of one face: who, when (first/last detection), its best frame and score; ``decision``
    and ``reason`` as in ``faceprint.types.Identification``. ``event`` is ``track`` for an ended track and
    ``revision`` when a shown label was replaced (``previous_label``; ``last_frame`` is the frame it happened
    at, and the track's ``track`` event follows when it ends)."""

    track_id: int
    label: str
    person_id: int | None
    similarity: float | None
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    best_frame: int | None
    best_time: float | None
    best_quality: float | None
    detections: int
    embedded_shots: int
    revisions: int
    decided_frame: int | None
    crop: str | None = None
    decision: Decision | None = None
    reason: str | None = None
    event: Literal["track", "revision"] = "track"
    previous_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("similarity", "first_time", "last_time", "best_time", "best_quality"):
            if data[key] is not None:
                data[key] = round(data[key], 4 if key == "similarity" else 3)
        return {"event": data.pop("event"), **data}


class VideoProcessor:
    """Feed frames in order to ``process``; ended tracks become ``events`` (and ``on_event`` calls).

    ``gallery`` names the faces (None: every track gets an anonymous ``unknown-N`` label);
    with ``crops_dir``, each event's best shot is saved there as ``track-<id>-<label>.jpg``.
    """

    def __init__(
        self,
        gallery: Gallery | None = None,
        options: VideoOptions = VideoOptions(),
        *,
        fps: float = 25.0,
        on_event: Callable[[TrackEvent], None] | None = None,
        crops_dir: Path | None = None,
    ) -> None:
        self.options = options
        self.crops_dir = crops_dir
        self.fps = fps
        self.tracker = Tracker(fps, options.tracker)
        pipeline = gallery.options if gallery is not None else options.pipeline
        self.resolver = IdentityResolver(gallery, options.identity, pipeline) if options.identify else None
        self.pipeline = pipeline
        self.on_event = on_event
        self.events: list[TrackEvent] = []
        self.detections_run = 0
        self._last_detection = -(10**9)
        self._motion = _MotionCheck()
        self._times: dict[int, tuple[float, float]] = {}
        self._last_frame: Frame | None = None

    def process(self, frame: Frame) -> FrameResult:
        """Track (and when due, detect and identify) the faces of the next frame."""
        self._last_frame = frame
        tracks = self.tracker.predict()
        moved = self._motion.moved(frame.pixels, [t.box for t in tracks]) if self.options.adaptive else False
        run = self._detection_due(frame.index, tracks, moved)
        if run:
            self._detect(frame)
        return FrameResult(frame, [self._tracked_face(t, frame.index) for t in self.tracker.tracks], run)

    def finish(self) -> list[TrackEvent]:
        """End every track (the video is over) and return all events, in order of appearance."""
        if self._last_frame is not None:
            self._end(self.tracker.finish(), self._last_frame)
        return sorted(self.events, key=lambda e: (e.first_frame, e.track_id))

    def run(self, source: FrameSource) -> Iterator[FrameResult]:
        """Process every frame of ``source``; call ``finish`` afterwards for the remaining events."""
        for frame in source:
            yield self.process(frame)

    def identity(self, track_id: int) -> TrackIdentity | None:
        return self.resolver.identities.get(track_id) if self.resolver else None

    def _detection_due(self, index: int, tracks: list[Track], moved: bool) -> bool:
        since = index - self._last_detection
        if since >= self.options.detect_every:
            return True
        soon = self.options.adaptive and since >= self.options.react_after
        return soon and (moved or any(t.missed > 0 for t in tracks))

    def _detect(self, frame: Frame) -> None:
        self._last_detection = frame.index
        self.detections_run += 1
        detections = detect_boxes(
            frame.pixels,
            detector=self.options.detector,
            upsample=self.options.detect_upsample,
            max_side=self.options.detect_max_side,
            min_score=self.options.detect_min_score,
            # One process runs the video: YuNet may use every core (1.3x on 1080p frames with 2).
            threads=self.pipeline.threads,
        )
        born, ended = self.tracker.update(detections, frame.index)
        for track in born:
            self._times[track.id] = (frame.time, frame.time)
        seen = [t for t in self.tracker.tracks if t.last_detected == frame.index]
        for track in seen:
            self._times[track.id] = (self._times[track.id][0], frame.time)
        if self.resolver is not None:
            self._observe(seen, frame)
            self.resolver.resolve([t.id for t in seen], frame.index, frame.time)
            self._report_revisions(frame)
        self._end(ended, frame)

    def _observe(self, tracks: list[Track], frame: Frame) -> None:
        assert self.resolver is not None
        for track in tracks:
            identity = self.resolver.identity(track.id, frame.time)
            if track.partial:
                continue  # half a face says little about whose it is, and may outweigh the whole one
            located = locate_face(frame.pixels, track.detection, self.pipeline)
            shot = Shot(frame.index, frame.time, located, _crop(frame.pixels, track.detection.box))
            identity.observe(shot, self.options.identity)

    def _end(self, tracks: list[Track], frame: Frame) -> None:
        real = [t for t in tracks if t.hits >= self.options.tracker.min_hits]
        if self.resolver is not None:
            self.resolver.finish([t.id for t in real if t.id in self.resolver.identities], frame.index, frame.time)
            self._report_revisions(frame, ending=tracks)
        for track in real:
            event = self._event(track)
            self.events.append(event)
            if self.on_event:
                self.on_event(event)
        # Forget ended tracks (their shots hold image crops): a stream may run for days.
        for track in tracks:
            self._times.pop(track.id, None)
            if self.resolver is not None:
                self.resolver.identities.pop(track.id, None)

    def _report_revisions(self, frame: Frame, ending: Sequence[Track] = ()) -> None:
        """Each label change, as a ``revision`` event (the track's own event comes when it ends)."""
        assert self.resolver is not None
        tracks = {t.id: t for t in [*self.tracker.tracks, *ending]}
        for revision in self.resolver.revised:
            track = tracks.get(revision.track_id)
            if track is None or revision.track_id not in self._times:
                continue
            event = dataclasses.replace(
                self._event(track, crop=False),
                event="revision",
                label=revision.label,
                previous_label=revision.previous,
                last_frame=frame.index,
                last_time=frame.time,
            )
            self.events.append(event)
            if self.on_event:
                self.on_event(event)
        self.resolver.revised.clear()

    def _event(self, track: Track, *, crop: bool = True) -> TrackEvent:
        identity = self.identity(track.id)
        first_time, last_time = self._times[track.id]
        best = identity.best if identity else None
        label = identity.label if identity and identity.label else "face"
        saved = None
        if crop and self.crops_dir is not None and best is not None:
            saved = self.crops_dir / f"track-{track.id:04d}-{_safe(label)}.jpg"
            save_crop(best.crop, saved)
        return TrackEvent(
            track_id=track.id,
            label=label,
            person_id=identity.person_id if identity else None,
            similarity=identity.similarity if identity else None,
            first_frame=track.first_frame,
            first_time=first_time,
            last_frame=track.last_detected,
            last_time=last_time,
            best_frame=best.frame if best else None,
            best_time=best.time if best else None,
            best_quality=best.quality if best else None,
            detections=track.hits,
            embedded_shots=len(identity.embedded) if identity else 0,
            revisions=identity.revisions if identity else 0,
            decided_frame=identity.decided_at if identity else None,
            crop=str(saved) if saved else None,
            decision=identity.decision if identity else None,
            reason=identity.reason if identity else None,
        )

    def _tracked_face(self, track: Track, index: int) -> TrackedFace:
        identity = self.identity(track.id)
        return TrackedFace(
            track_id=track.id,
            box=track.box,
            label=identity.label if identity and identity.label else "?",
            person_id=identity.person_id if identity else None,
            similarity=identity.similarity if identity else None,
            detected=track.last_detected == index,
            coasting=track.missed > 0,
            confirmed=track.hits >= self.options.tracker.min_hits,
            uncertainty=track.uncertainty,
            doubtful=bool(identity and identity.is_known and identity.decision == "uncertain"),
        )


def _safe(label: str) -> str:
    """A label as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_") or "face"


def _crop(pixels: np.ndarray, box: Box, margin: float = 0.3) -> np.ndarray:
    grow_x, grow_y = box.width * margin, box.height * margin
    top, bottom = max(int(box.top - grow_y), 0), min(int(box.bottom + grow_y), pixels.shape[0])
    left, right = max(int(box.left - grow_x), 0), min(int(box.right + grow_x), pixels.shape[1])
    return pixels[top:bottom, left:right].copy()


class _MotionCheck:
    """Is something moving outside the tracked faces? Compares successive thumbnails."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def moved(self, pixels: np.ndarray, boxes: list[Box]) -> bool:
        scale = _MOTION_WIDTH / pixels.shape[1]
        size = (_MOTION_WIDTH, max(1, round(pixels.shape[0] * scale)))
        grey = cv2.GaussianBlur(
            cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY), (5, 5), 0
        )
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return previous is not None  # a new frame size (image sequences) is a new scene
        changed = cv2.absdiff(grey, previous) > _MOTION_LEVEL
        for box in boxes:
            # A tracked face moving inside (or just around) its box is not news.
            grow = 0.5 * box.width
            changed[
                max(int((box.top - grow) * scale), 0) : max(int((box.bottom + grow) * scale) + 1, 0),
                max(int((box.left - grow) * scale), 0) : max(int((box.right + grow) * scale) + 1, 0),
            ] = False
        return float(changed.mean()) > _MOTION_SHARE
