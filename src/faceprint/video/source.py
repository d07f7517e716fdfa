"""Frame sources: video files, image sequences, cameras and network streams, as RGB frames with timestamps.

Files keep the container's frame rate and per-frame timestamps (variable frame rate
included); streams are timed by the wall clock and reconnect after a drop.
"""

from __future__ import annotations

import glob
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InvalidImageError
from ..image import IMAGE_SUFFIXES, iter_image_files, load_image

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
#: Frame rate assumed for image sequences, and for containers that do not state one.
DEFAULT_FPS = 25.0

# faceprint reports a source it cannot open as one error naming it; OpenCV's ``[ WARN ]`` lines and
# FFmpeg's own log (``moov atom not found``) would repeat it on stderr. Set before the first capture;
# a user's own OPENCV_FFMPEG_LOGLEVEL is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: its position in the source, its time in seconds, RGB pixels."""

    index: int
    time: float
    pixels: np.ndarray


class FrameSource:
    """Iterate over ``Frame`` objects; ``fps`` and ``frame_count`` (None for live sources) describe it."""

    name: str
    fps: float
    frame_count: int | None
    live: bool = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (safe to call twice)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    spec: str | int | os.PathLike[str], *, fps: float | None = None, reconnect_attempts: int = 5
) -> FrameSource:
    """The frame source for ``spec``: a camera index (``0`` or ``"0"``), a stream URL, a folder or
    glob of images, or a video file. ``fps`` overrides the rate of image sequences."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return StreamSource(int(spec), reconnect_attempts=reconnect_attempts)
    text = str(spec)
    if text.lower().startswith(STREAM_SCHEMES):
        return StreamSource(text, reconnect_attempts=reconnect_attempts)
    if any(ch in text for ch in "*?["):
        return ImageSequenceSource(sorted(Path(p) for p in glob.glob(text)), text, fps or DEFAULT_FPS)
    path = Path(text)
    if path.is_dir():
        return ImageSequenceSource(iter_image_files(path), text, fps or DEFAULT_FPS)
    return VideoFileSource(path)


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV (FFmpeg): mp4, avi, mkv, webm, ..."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        if not path.is_file():
            raise InvalidImageError(f"{path}: no such video file")
        if path.stat().st_size == 0:
            raise InvalidImageError(f"{path}: the file is empty (0 bytes)")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise InvalidImageError(f"{path}: not a video, or a format OpenCV cannot read")
        stated = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = stated if 0 < stated < 1000 else DEFAULT_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                break
            # The container's presentation time when it gives one (variable frame rate); else index / fps.
            stamp = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            seconds = stamp if stamp > 0 or index == 0 else index / self.fps
            yield Frame(index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
        if index == 0:
            raise InvalidImageError(f"{self.name}: no frame could be decoded (corrupt or unsupported video)")

    def keyframes(self, every: float) -> Iterator[Frame]:
        """The first frame, then the first frame at or after each further ``every`` seconds. The frames between
        are decoded (a codec cannot skip them) but not converted, and seeking is not trusted: containers place
        it on the nearest key frame, differently from one backend to the next."""
        if every <= 0:
            raise ValueError(f"the keyframe interval must be positive, not {every}")
        index, due = 0, 0.0
        while self._capture.grab():
            stamp = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            seconds = stamp if stamp > 0 or index == 0 else index / self.fps
            if seconds >= due - 1e-6:
                ok, bgr = self._capture.retrieve()
                if ok:
                    yield Frame(index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    due = (math.floor(seconds / every + 1e-6) + 1) * every  # 1.2 / 0.4 is 2.999...
            index += 1
        if index == 0:
            raise InvalidImageError(f"{self.name}: no frame could be decoded (corrupt or unsupported video)")

    def close(self) -> None:
        self._capture.release()


class ImageSequenceSource(FrameSource):
    """Numbered stills (a folder or a glob), played at ``fps``."""

    def __init__(self, paths: list[Path], name: str, fps: float) -> None:
        self.name = name
        self._paths = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self._paths:
            raise InvalidImageError(f"{name}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.fps = fps
        self.frame_count = len(self._paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            yield Frame(index, index / self.fps, load_image(path).pixels)


def _open_capture(target: str | int) -> cv2.VideoCapture:
    return cv2.VideoCapture(target)


class StreamSource(FrameSource):
    """A camera (by index) or a network stream (RTSP/HTTP/...), reopened after a drop.

    After ``reconnect_attempts`` failed reopenings in a row (with a growing pause between
    them) the stream is considered over. Times are seconds since the stream was opened.
    """

    live = True

    def __init__(
        self,
        target: str | int,
        *,
        reconnect_attempts: int = 5,
        open_capture: Callable[[str | int], cv2.VideoCapture] = _open_capture,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self._target = target
        self._attempts = reconnect_attempts
        self._open = open_capture
        self._sleep = sleep
        self._capture = self._open(target)
        if not self._capture.isOpened():
            raise InvalidImageError(f"{self.name}: cannot open the camera or stream")
        stated = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = stated if 0 < stated < 1000 else DEFAULT_FPS
        self.frame_count = None
        self.reconnects = 0

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                if not self._reconnect():
                    return
                continue
            yield Frame(index, time.monotonic() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def _reconnect(self) -> bool:
        self._capture.release()
        for attempt in range(self._attempts):
            self._sleep(min(0.5 * 2**attempt, 8.0))
            self._capture = self._open(self._target)
            if self._capture.isOpened():
                self.reconnects += 1
                return True
        return False

    def close(self) -> None:
        self._capture.release()


def read_ahead(frames: Iterable[Frame], depth: int = 2) -> Iterator[Frame]:
    """``frames``, decoded up to ``depth`` frames ahead in a thread of their own: OpenCV decodes without the
    GIL, so decoding overlaps the caller's work on the next core. Errors are raised where the frame would
    have come; stopping early stops the thread."""
    ahead: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Frame | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(error)
            return
        put(None)

    reader = threading.Thread(target=read, name="faceprint-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
