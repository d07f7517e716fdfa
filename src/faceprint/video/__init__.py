"""Faces in video: frame sources, tracking, identity per track, and the event timeline.

    >>> from faceprint.video import VideoOptions, VideoProcessor, open_source

``VideoProcessor`` detects every ``detect_every`` frames (sooner when a face is lost or
something moves), tracks faces in between, decides each track's identity once from its
best shots, and turns each ended track into a ``TrackEvent``; a ``Timeline`` writes those
events to a file.
"""

from .identity import IdentityOptions
from .process import FrameResult, TrackedFace, TrackEvent, VideoOptions, VideoProcessor
from .source import Frame, FrameSource, open_source
from .timeline import Timeline, timeline_summary
from .tracker import TrackerOptions

__all__ = [
    "Frame",
    "FrameResult",
    "FrameSource",
    "IdentityOptions",
    "Timeline",
    "TrackEvent",
    "TrackedFace",
    "TrackerOptions",
    "VideoOptions",
    "VideoProcessor",
    "open_source",
    "timeline_summary",
]
