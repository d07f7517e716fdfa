"""SFace, the OpenCV Zoo's 128-d face recogniser, on onnxruntime (faceprint.zoo_onnx converts it).

Input: 112x112 ArcFace-template chips (``align.arcface_chip``), RGB, float 0-255, NCHW: the
graph normalises them itself. Output: raw 128-d features, compared by cosine.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .align import ARCFACE_SIZE
from .models import SFACE
from .resnet_onnx import LazySession
from .zoo_onnx import sface_graph_path, sface_onnx_bytes


class OnnxSFace:
    """SFace on onnxruntime; ``threads`` defaults to every core (CUDA where onnxruntime has it), the session
    is built on first use."""

    def __init__(self, *, threads: int | None = None, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._session = LazySession(sface_onnx_bytes, threads, None, sface_graph_path)

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, 128)`` float32 raw features of 112x112 uint8 RGB chips."""
        if not chips:
            return np.zeros((0, SFACE.dimension), dtype=np.float32)
        for chip in chips:
            if chip.shape != (ARCFACE_SIZE, ARCFACE_SIZE, 3) or chip.dtype != np.uint8:
                raise ValueError(f"SFace chips must be (112, 112, 3) uint8 RGB arrays, got {chip.shape} {chip.dtype}")
        batch = np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2)
        return self._session.run(np.ascontiguousarray(batch), self.batch_size)


@functools.cache
def shared_sface(threads: int | None = None) -> OnnxSFace:
    """The process's one :class:`OnnxSFace` per thread count."""
    return OnnxSFace(threads=threads)
