"""Multi-face tracking between detections: a constant-velocity Kalman filter per face, and
Hungarian assignment of detections to predicted boxes (IoU, with a centre-distance fallback
for tracks coasting through an occlusion, whose prediction may have drifted off the face).

A detection much narrower than its height says (its track's widest recent shape) is a *partial*
view: a face half hidden behind something at its side (YuNet still finds those; HOG's square boxes
never are). Its visible edge is the one nearer the prediction; the track is corrected with a box
of the face's whole width on that edge, so the hidden part neither shrinks the track nor slows it
down (it would otherwise lag behind the face and lose it where it comes out on the other side),
and ``partial`` tells the identity not to take that view as evidence.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..detection import Detection
from ..types import Box

_NO_MATCH = 1e6
#: A detection narrower than this share of the width its height gives at its track's widest recent shape
#: (height / width, the lowest of the last ``_SHAPES`` whole views) is a partial view. On the occlusion clip
#: YuNet's boxes of Kit's face are 0.95-1.0 of that width in the open and 0.55-0.88 at the pillar's edges
#: (BENCHMARKS.md, "Issue 13: speed").
PARTIAL_WIDTH = 0.9
_SHAPES = 10
#: The narrowest shape (height / width) of a whole face's box: YuNet's main face on 420 faces-dev and faces-hires
#: photos is 1.12-1.53 (99th percentile), 1.8 at most; its boxes of half-hidden faces on the synthetic clips
#: 1.9-2.25 (HOG's boxes are square). A track starting on a narrower box starts on a partial view.
NARROWEST_WHOLE_SHAPE = 1.8


@dataclass(frozen=True)
class TrackerOptions:
    """How tracks are kept: ``max_coast`` seconds without a detection before a track ends,
    ``min_iou`` to pair a detection with a prediction, ``min_hits`` detections before a
    track counts as a real face (a single detector hit may be a false alarm)."""

    max_coast: float = 1.0
    min_iou: float = 0.2
    min_hits: int = 2


class Track:
    """One face followed through the video: a Kalman state over (centre x, centre y, width)."""

    def __init__(self, track_id: int, detection: Detection, frame_index: int) -> None:
        self.id = track_id
        box = detection.box
        self.aspect = box.height / max(box.width, 1.0)
        #: Shapes (height / width) of the last whole views.
        self.shapes = deque([min(self.aspect, NARROWEST_WHOLE_SHAPE)], maxlen=_SHAPES)
        self.kalman = _kalman(box)
        self.hits = 1
        self.first_frame = frame_index
        self.last_detected = frame_index
        self.detection = detection
        self.box = box
        #: Detection rounds in a row that did not see this face.
        self.missed = 0
        #: The last detection saw only part of the face (see the module docstring).
        self.partial = self.aspect > NARROWEST_WHOLE_SHAPE

    def predict(self) -> Box:
        """Advance the state one frame; ``box`` becomes the predicted box."""
        state = self.kalman.predict()
        self.box = self._box_of(state)
        return self.box

    @property
    def uncertainty(self) -> float:
        """Standard deviation (pixels) of the predicted centre: how far the face may be from ``box``."""
        covariance = self.kalman.errorCovPre
        return float(np.sqrt(max(covariance[0, 0], covariance[1, 1])))

    def update(self, detection: Detection, frame_index: int) -> None:
        box = detection.box
        whole_width = box.height / min(self.shapes)
        self.partial = box.width < PARTIAL_WIDTH * whole_width
        if self.partial:
            box = _whole_face(box, self.box, whole_width)
        else:
            self.shapes.append(box.height / max(box.width, 1.0))
        centre = np.array([[(box.left + box.right) / 2], [(box.top + box.bottom) / 2], [box.width]], np.float32)
        state = self.kalman.correct(centre)
        self.aspect = box.height / max(box.width, 1.0)
        self.box = self._box_of(state)
        self.hits += 1
        self.missed = 0
        self.last_detected = frame_index
        self.detection = detection

    def coast(self) -> None:
        """Missed by a detection round: keep the motion but stop extrapolating the size, which a
        face being covered (detected smaller and smaller) would otherwise shrink to nothing."""
        self.missed += 1
        self.kalman.statePost[5, 0] = 0.0

    def frames_unseen(self, frame_index: int) -> int:
        return frame_index - self.last_detected

    def _box_of(self, state: np.ndarray) -> Box:
        cx, cy, width = float(state[0, 0]), float(state[1, 0]), max(float(state[2, 0]), 1.0)
        height = width * self.aspect
        return Box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def _whole_face(seen: Box, predicted: Box, width: float) -> Box:
    """A partial view grown to ``width`` from its edge nearer the prediction (the other is the hidden side)."""
    if abs(seen.left - predicted.left) <= abs(seen.right - predicted.right):
        return Box(seen.left, seen.top, seen.left + width, seen.bottom)
    return Box(seen.right - width, seen.top, seen.right, seen.bottom)


def _kalman(box: Box) -> cv2.KalmanFilter:
    """State (cx, cy, w, vx, vy, vw), one step per frame; measurements (cx, cy, w)."""
    kalman = cv2.KalmanFilter(6, 3)
    kalman.transitionMatrix = np.eye(6, dtype=np.float32) + np.eye(6, k=3, dtype=np.float32)
    kalman.measurementMatrix = np.eye(3, 6, dtype=np.float32)
    # Noise scaled to the face size: a 200 px face jitters and accelerates more, in pixels, than a 40 px one.
    scale = max(box.width, 10.0) / 100.0
    kalman.processNoiseCov = np.diag([1, 1, 0.5, 0.5, 0.5, 0.1]).astype(np.float32) * scale**2
    kalman.measurementNoiseCov = np.diag([4, 4, 9]).astype(np.float32) * scale**2
    kalman.errorCovPost = np.diag([10, 10, 10, 100, 100, 25]).astype(np.float32) * scale**2
    kalman.statePost = np.array(
        [[(box.left + box.right) / 2], [(box.top + box.bottom) / 2], [box.width], [0], [0], [0]], np.float32
    )
    return kalman


@dataclass
class Tracker:
    """Keeps face tracks across frames. Call ``predict`` on every frame and ``update`` on
    frames where the detector ran; tracks that coast too long end and are returned by ``update``."""

    fps: float
    options: TrackerOptions = field(default_factory=TrackerOptions)
    tracks: list[Track] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        #: Tracks started so far.
        self.created = 0

    def predict(self) -> list[Track]:
        """Advance every track to the next frame."""
        for track in self.tracks:
            track.predict()
        return self.tracks

    def update(self, detections: Sequence[Detection], frame_index: int) -> tuple[list[Track], list[Track]]:
        """Pair ``detections`` with tracks; returns (new tracks, ended tracks)."""
        pairs, unmatched = self._associate(detections)
        matched = {id(track) for track, _ in pairs}
        for track in self.tracks:
            if id(track) not in matched:
                track.coast()
        for track, detection in pairs:
            track.update(detection, frame_index)
        born = [Track(next(self._ids), detections[i], frame_index) for i in unmatched]
        self.created += len(born)
        for track in born:
            track.predict()
        self.tracks.extend(born)
        return born, self._expire(frame_index)

    def finish(self) -> list[Track]:
        """End every remaining track (the video is over)."""
        ended, self.tracks = self.tracks, []
        return ended

    def _associate(self, detections: Sequence[Detection]) -> tuple[list[tuple[Track, Detection]], list[int]]:
        if not self.tracks or not detections:
            return [], list(range(len(detections)))
        from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs ~0.3 s to import

        cost = np.array([[self._cost(t, d.box) for d in detections] for t in self.tracks])
        rows, cols = linear_sum_assignment(cost)
        pairs = [(self.tracks[r], detections[c]) for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH]
        matched = {c for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH}
        return pairs, [i for i in range(len(detections)) if i not in matched]

    def _cost(self, track: Track, box: Box) -> float:
        overlap = track.box.iou(box)
        if overlap >= self.options.min_iou:
            return 1.0 - overlap
        if track.missed == 0:
            return _NO_MATCH
        # Coasting through an occlusion: accept a face of about the size last seen, near the
        # prediction, at a cost above any overlapping pair so that overlaps win.
        predicted, seen_width = track.box, max(track.detection.box.width, 1.0)
        distance = np.hypot(
            (predicted.left + predicted.right - box.left - box.right) / 2,
            (predicted.top + predicted.bottom - box.top - box.bottom) / 2,
        )
        reach = max(0.75 * seen_width, 3.0 * track.uncertainty)
        if distance <= reach and 0.5 <= box.width / seen_width <= 2.0:
            return 1.0 + distance / reach
        return _NO_MATCH

    def _expire(self, frame_index: int) -> list[Track]:
        limit = max(1, round(self.options.max_coast * self.fps))
        ended = [t for t in self.tracks if t.frames_unseen(frame_index) > limit]
        self.tracks = [t for t in self.tracks if t.frames_unseen(frame_index) <= limit]
        return ended
