"""Synthetic video clips made from the committed real photos, with exact ground truth.

Each person is a face cut from a real photo (with hair and chin), pasted on a textured
background along a known path, so which face is where in which frame is known to the pixel.
Occluders (a pillar) are drawn over the faces. Used by tests/test_video.py and bench/video_speed.py.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceprint import detect, load_image
from faceprint.types import Box

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT / "tests" / "data" / "faces-hires"
#: The sprite is the face box grown by this fraction of its width on every side.
_SPRITE_MARGIN = 0.45


@dataclass(frozen=True)
class Walker:
    """A face moving in a straight line from ``start`` to ``end`` (face-box centres, in frame
    pixels) between frames ``enter`` and ``leave``, its face box ``size`` px wide, growing to
    ``size * grow`` (walking towards the camera). ``photo`` is relative to faces-hires."""

    name: str
    photo: str
    start: tuple[float, float]
    end: tuple[float, float]
    size: float
    enter: int
    leave: int
    grow: float = 1.0

    def box(self, frame: int) -> Box | None:
        if not self.enter <= frame < self.leave:
            return None
        t = (frame - self.enter) / max(self.leave - 1 - self.enter, 1)
        cx = self.start[0] + t * (self.end[0] - self.start[0])
        cy = self.start[1] + t * (self.end[1] - self.start[1])
        half = self.size * (1 + t * (self.grow - 1)) / 2
        return Box(cx - half, cy - half, cx + half, cy + half)


@dataclass(frozen=True)
class Clip:
    """Frames (RGB) and, per walker, the face box in each frame (None: absent or hidden)."""

    frames: list[np.ndarray]
    fps: float
    walkers: tuple[Walker, ...]
    truth: dict[str, list[Box | None]] = field(repr=False)

    def write(self, path: Path) -> Path:
        """Save as an mp4 video (OpenCV's mp4v codec)."""
        height, width = self.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        for frame in self.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        return path

    def visible_frames(self, name: str) -> list[int]:
        return [i for i, box in enumerate(self.truth[name]) if box is not None]


def make_clip(
    walkers: Sequence[Walker],
    *,
    size: tuple[int, int] = (640, 360),
    frames: int = 60,
    fps: float = 25.0,
    pillars: Sequence[tuple[int, int]] = (),
    seed: int = 7,
) -> Clip:
    """Render the walkers (later ones in front) over a background; ``pillars`` are (x, width)
    vertical bars drawn in front of everyone. A face counts as hidden when a pillar or a walker
    in front of it covers more than a third of its box."""
    width, height = size
    background = _background(width, height, seed)
    truth: dict[str, list[Box | None]] = {w.name: [] for w in walkers}
    rendered = []
    for index in range(frames):
        canvas = background.copy()
        covers = [Box(x, 0, x + bar, height) for x, bar in pillars]
        for walker in reversed(walkers):  # front to back: each face is hidden by what is in front of it
            box = walker.box(index)
            hidden = box is None or any(_covered(box, cover) > 1 / 3 for cover in covers)
            truth[walker.name].append(None if hidden else _clip_box(box, width, height))
            if box is not None:
                covers.append(_sprite_box(walker.photo, box))
        for walker in walkers:
            box = walker.box(index)
            if box is not None:
                _paste(canvas, walker.photo, box)
        for x, bar in pillars:
            canvas[:, x : x + bar] = (90, 70, 50)
        rendered.append(canvas)
    return Clip(rendered, fps, tuple(walkers), truth)


def _covered(box: Box, cover: Box) -> float:
    """Share of ``box`` that ``cover`` hides."""
    width = max(0.0, min(box.right, cover.right) - max(box.left, cover.left))
    height = max(0.0, min(box.bottom, cover.bottom) - max(box.top, cover.top))
    return width * height / box.area


def _clip_box(box: Box, width: int, height: int) -> Box:
    return Box(max(box.left, 0.0), max(box.top, 0.0), min(box.right, float(width)), min(box.bottom, float(height)))


def _background(width: int, height: int, seed: int) -> np.ndarray:
    """Soft coloured blobs over a gradient: texture for the motion check, no face-like structure."""
    rng = np.random.default_rng(seed)
    blobs = cv2.resize(
        rng.integers(60, 200, (9, 16, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC
    )
    ramp = np.linspace(0.8, 1.1, width, dtype=np.float32)[None, :, None]
    return np.clip(blobs.astype(np.float32) * ramp, 0, 255).astype(np.uint8)


@functools.cache
def sprite(photo: str) -> tuple[np.ndarray, Box]:
    """The face of ``photo`` with a margin around it, and the face box within that sprite."""
    pixels = load_image(HIRES / photo).pixels
    face = detect(pixels)[0].box
    grow = _SPRITE_MARGIN * face.width
    left, top = max(int(face.left - grow), 0), max(int(face.top - grow), 0)
    right, bottom = min(int(face.right + grow), pixels.shape[1]), min(int(face.bottom + grow), pixels.shape[0])
    inner = Box(face.left - left, face.top - top, face.right - left, face.bottom - top)
    return pixels[top:bottom, left:right].copy(), inner


def _sprite_box(photo: str, box: Box) -> Box:
    """Where the sprite whose face lands on ``box`` covers the frame."""
    pixels, inner = sprite(photo)
    scale = box.width / inner.width
    left, top = box.left - inner.left * scale, box.top - inner.top * scale
    return Box(left, top, left + pixels.shape[1] * scale, top + pixels.shape[0] * scale)


def _paste(canvas: np.ndarray, photo: str, box: Box) -> None:
    """Draw the sprite scaled so that its face box lands exactly on ``box`` (clipped at the frame edges)."""
    pixels, inner = sprite(photo)
    scale = box.width / inner.width
    scaled = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    left, top = round(box.left - inner.left * scale), round(box.top - inner.top * scale)
    height, width = canvas.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + scaled.shape[1], width), min(top + scaled.shape[0], height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]


KIT = "Kit_Harington/Kit_Harington_0002.jpg"
ROSE = "Rose_Leslie/Rose_Leslie_0002.jpg"
ALEX = "Alex_Lacamoire/Alex_Lacamoire_0002.jpg"
#: Photos enrolled in the test gallery (different photos of the same people than the sprites).
ENROLLED = {"Kit Harington": "Kit_Harington/Kit_Harington_0001.jpg", "Rose Leslie": "Rose_Leslie/Rose_Leslie_0001.jpg"}


def occlusion_clip(scale: float = 1.0, frames: int = 60) -> Clip:
    """Kit walks left to right behind a pillar (hidden ~6 frames) while growing; a stranger
    (Alex, not enrolled) appears on the right at frame 11, between two detections."""
    w, h = 640 * scale, 360 * scale
    walkers = [
        Walker("Kit Harington", KIT, (0.15 * w, 0.4 * h), (0.7 * w, 0.35 * h), 0.2 * w, 0, frames, grow=1.15),
        Walker("Alex Lacamoire", ALEX, (0.87 * w, 0.78 * h), (0.86 * w, 0.77 * h), 0.16 * w, 11, frames),
    ]
    return make_clip(walkers, size=(round(w), round(h)), frames=frames, pillars=[(round(0.45 * w), round(0.09 * w))])


def crossing_clip(scale: float = 1.0, frames: int = 50) -> Clip:
    """Kit walks right, Rose walks left in front of him; they cross mid-clip."""
    w, h = 640 * scale, 360 * scale
    walkers = [
        Walker("Kit Harington", KIT, (0.15 * w, 0.45 * h), (0.85 * w, 0.45 * h), 0.19 * w, 0, frames),
        Walker("Rose Leslie", ROSE, (0.85 * w, 0.5 * h), (0.15 * w, 0.5 * h), 0.19 * w, 0, frames),
    ]
    return make_clip(walkers, size=(round(w), round(h)), frames=frames, seed=11)


def make_gallery(path: Path, options=None):
    """A gallery with the ``ENROLLED`` people (their other photo than the clips' sprites); ``options``: its
    pipeline (None: the default)."""
    from faceprint import Gallery

    gallery = Gallery(path, options=options)
    for name, photo in ENROLLED.items():
        gallery.enroll(name, [HIRES / photo])
    return gallery


def frames_of(clip: Clip):
    """The clip as a frame source (index, time from the clip's fps)."""
    from faceprint.video import Frame

    return [Frame(i, i / clip.fps, pixels) for i, pixels in enumerate(clip.frames)]


def returning_stranger_clip(frames: int = 70) -> Clip:
    """Alex (not enrolled) walks through, leaves for 1.6 s, comes back; Lin (not enrolled) stands by."""
    walkers = [
        Walker("Alex first", ALEX, (100, 130), (250, 140), 120, 0, 15),
        Walker("Alex again", ALEX, (250, 140), (120, 130), 120, 55, frames),
        Walker("Lin", "Lin-Manuel_Miranda/Lin-Manuel_Miranda_0001.png", (500, 220), (505, 220), 110, 20, 45),
    ]
    return make_clip(walkers, frames=frames, seed=5)
