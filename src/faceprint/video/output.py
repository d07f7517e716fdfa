"""Writing frames out: annotated or anonymized videos, and best-shot crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError

#: Codec per container; mp4v plays everywhere OpenCV's bundled FFmpeg can write without licences.
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".webm": "VP80"}


class VideoWriter:
    """Write RGB frames to a video file; the frame size is taken from the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        if path.suffix.lower() not in _FOURCC:
            raise OutputError(f"{path}: cannot write this video format; use one of {', '.join(sorted(_FOURCC))}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, pixels: np.ndarray) -> None:
        if self._writer is None:
            height, width = pixels.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise OutputError(f"{self.path}: OpenCV cannot open this file for writing")
        self._writer.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_crop(pixels: np.ndarray, path: Path) -> None:
    """Save an RGB crop (best shot) as an image; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)):
        raise OutputError(f"{path}: cannot write the image")
