"""Challenge-response liveness on a short clip: blink, or turn the head left or right.

The person is asked to do something a still picture cannot: blink (found from the eye
aspect ratio of the 68-point landmarks, Soukupová & Čech 2016) or turn their head (yaw from
the landmarks, as in ``faceprint.quality``). The answer is pass/fail with the evidence: the
frames of each blink and the eye-openness values, or the yaw at the start and at the peak.

**What it defeats, and what it does not.** It stops a printed photo (or a photo on a screen)
held up to the camera: the eyes of a still picture do not close and its head does not turn.
It does **not** stop a replayed video of the person, a deepfake, or a 3D mask with eye holes:
those blink and turn. Use it as one layer against casual spoofing, not as proof of presence.

Directions are the person's own: ``turn-left`` means they turn towards their left, which in an
unmirrored recording is towards the image's right (positive yaw). Pass ``mirrored=True`` for
clips recorded mirrored (some front cameras do).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .choices import CHALLENGES, Challenge
from .detection import detect_boxes
from .pipeline import DEFAULT_OPTIONS, locate_face
from .video.source import Frame, FrameSource, open_source

#: 68-point indices of each eye's six points (corner, two upper lids, corner, two lower lids).
_EYES = (slice(36, 42), slice(42, 48))
#: A blink: the eyes close to below this share of their open level, then reopen above ``_REOPEN``.
_CLOSED = 0.7
_REOPEN = 0.85
#: Eyes closed longer than this are not a blink (a person, or a photo, with eyes shut).
_MAX_BLINK_SECONDS = 0.6
#: Turn challenge: start within this yaw of frontal, then turn at least ``_MIN_TURN`` degrees.
_FRONTAL = 20.0
_MIN_TURN = 20.0
#: Share of frames that must show a face.
_MIN_FACE_SHARE = 0.8
#: Faces are detected on a copy of at most this size (longest side), without upsampling: the
#: face must span at least ~1/6 of the frame, as it does in a selfie or door-camera challenge.
_WORKING_SIDE = 480


@dataclass(frozen=True)
class Measure:
    """What one frame shows: eye aspect ratio (mean of both eyes) and yaw in degrees; None: no face."""

    frame: int
    time: float
    ear: float | None
    yaw: float | None


@dataclass(frozen=True)
class Blink:
    start_frame: int
    end_frame: int
    min_ear: float


@dataclass(frozen=True)
class LivenessResult:
    """Pass or fail, why, and the per-frame evidence."""

    challenge: Challenge
    passed: bool
    reason: str
    frames: int
    frames_with_face: int
    open_ear: float | None = None
    blinks: tuple[Blink, ...] = ()
    start_yaw: float | None = None
    peak_yaw: float | None = None
    peak_frame: int | None = None
    measures: tuple[Measure, ...] = dataclasses.field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "challenge": self.challenge,
            "passed": self.passed,
            "reason": self.reason,
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "open_ear": rounded(self.open_ear),
            "blinks": [dataclasses.asdict(b) | {"min_ear": rounded(b.min_ear)} for b in self.blinks],
            "start_yaw": rounded(self.start_yaw),
            "peak_yaw": rounded(self.peak_yaw),
            "peak_frame": self.peak_frame,
            "per_frame": [
                {"frame": m.frame, "time": rounded(m.time), "ear": rounded(m.ear), "yaw": rounded(m.yaw)}
                for m in self.measures
            ],
        }


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) of one eye's six landmarks: ~0.3 open, under ~0.15 shut."""
    vertical = float(np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4]))
    horizontal = float(np.linalg.norm(eye[0] - eye[3]))
    return vertical / (2.0 * max(horizontal, 1e-6))


def eyes_openness(landmarks68: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes from dlib's 68 landmarks."""
    return float(np.mean([eye_aspect_ratio(landmarks68[eye]) for eye in _EYES]))


def check_liveness(
    clip: str | int | os.PathLike[str] | FrameSource,
    challenge: Challenge,
    *,
    mirrored: bool = False,
    max_frames: int = 600,
) -> LivenessResult:
    """Run ``challenge`` on a clip (video file, image folder, camera index or a ``FrameSource``).

    >>> check_liveness("tests/data/faces-hires/Rose_Leslie", "blink").passed  # two still photos
    False
    """
    source = clip if isinstance(clip, FrameSource) else open_source(clip)
    with source:
        return judge(measure_frames(source, max_frames=max_frames), challenge, mirrored=mirrored)


def measure_frames(frames: Iterable[Frame], *, max_frames: int = 600) -> list[Measure]:
    """Eye openness and yaw of the main face of each frame (at most ``max_frames`` frames)."""
    options = dataclasses.replace(DEFAULT_OPTIONS, landmarks68=True)
    measures = []
    for frame in itertools.islice(frames, max_frames):
        found = detect_boxes(frame.pixels, detector="hog", upsample=0, max_side=_WORKING_SIDE)
        if not found:
            measures.append(Measure(frame.index, frame.time, None, None))
            continue
        face = locate_face(frame.pixels, found[0], options).face
        assert face.landmarks68 is not None  # asked for in the options
        measures.append(Measure(frame.index, frame.time, eyes_openness(face.landmarks68), face.quality.yaw))
    return measures


def judge(measures: Sequence[Measure], challenge: Challenge, *, mirrored: bool = False) -> LivenessResult:
    """Decide a challenge from per-frame measures (see ``measure_frames``)."""
    if challenge not in CHALLENGES:
        raise ValueError(f"challenge must be one of {CHALLENGES}, not {challenge!r}")
    with_face = [m for m in measures if m.ear is not None]
    if not measures or len(with_face) < _MIN_FACE_SHARE * len(measures):
        reason = f"a face was found in only {len(with_face)} of {len(measures)} frames"
        return LivenessResult(challenge, False, reason, len(measures), len(with_face), measures=tuple(measures))
    if challenge == "blink":
        return _judge_blink(measures, with_face)
    return _judge_turn(challenge, mirrored, measures, with_face)


def _judge_blink(measures: Sequence[Measure], with_face: Sequence[Measure]) -> LivenessResult:
    ears = np.array([m.ear for m in with_face])
    open_level = float(np.percentile(ears, 90))
    blinks = tuple(find_blinks(measures, open_level))
    if blinks:
        reason = f"{len(blinks)} blink(s): eyes closed to {min(b.min_ear for b in blinks):.2f} from {open_level:.2f}"
    else:
        reason = f"no blink: eye aspect ratio stayed between {ears.min():.2f} and {ears.max():.2f}"
    return LivenessResult(
        "blink", bool(blinks), reason, len(measures), len(with_face), open_ear=open_level, blinks=blinks,
        measures=tuple(measures),
    )  # fmt: skip


def find_blinks(measures: Sequence[Measure], open_level: float) -> list[Blink]:
    """Runs of frames whose eyes close below ``_CLOSED`` x ``open_level`` and reopen above
    ``_REOPEN`` x ``open_level`` within ``_MAX_BLINK_SECONDS``; frames without a face break a run."""
    blinks: list[Blink] = []
    start: int | None = None
    was_open = False
    for i, m in enumerate(measures):
        if m.ear is None:
            start, was_open = None, False
        elif m.ear < _CLOSED * open_level:
            if start is None and was_open:
                start = i
        elif m.ear >= _REOPEN * open_level:
            if start is not None and m.time - measures[start].time <= _MAX_BLINK_SECONDS:
                closed = measures[start:i]
                blinks.append(Blink(closed[0].frame, closed[-1].frame, min(c.ear for c in closed if c.ear is not None)))
            start, was_open = None, True
    return blinks


def _judge_turn(
    challenge: Challenge, mirrored: bool, measures: Sequence[Measure], with_face: Sequence[Measure]
) -> LivenessResult:
    # The person's left is the image's right (positive yaw) unless the clip is mirrored.
    sign = (1.0 if challenge == "turn-left" else -1.0) * (-1.0 if mirrored else 1.0)
    yaws = np.array([m.yaw for m in with_face], dtype=float) * sign
    start = float(np.median(yaws[: max(1, min(5, len(yaws) // 4))]))
    peak = int(np.argmax(yaws))
    turned = float(yaws[peak]) - start
    direction = challenge.removeprefix("turn-")
    passed = abs(start) <= _FRONTAL and turned >= _MIN_TURN
    if abs(start) > _FRONTAL:
        reason = f"the clip must start facing the camera (yaw {start * sign:+.0f} deg, limit {_FRONTAL:.0f})"
    elif passed:
        reason = f"head turned {turned:.0f} deg to the {direction} (frame {with_face[peak].frame})"
    else:
        reason = f"no turn to the {direction}: at most {max(turned, 0.0):.0f} deg, {_MIN_TURN:.0f} needed"
    return LivenessResult(
        challenge, passed, reason, len(measures), len(with_face), start_yaw=start * sign,
        peak_yaw=float(yaws[peak]) * sign, peak_frame=with_face[peak].frame, measures=tuple(measures),
    )  # fmt: skip
