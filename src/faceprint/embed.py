"""Face templates from aligned chips: dlib's ResNet, batched, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import models
from .models import DEFAULT_MODEL, EmbeddingModel


def embed_chips(
    chips: Sequence[np.ndarray], *, flip: bool = False, jitter: int = 0, model: EmbeddingModel = DEFAULT_MODEL
) -> np.ndarray:
    """L2-normalised ``(N, dimension)`` float32 templates for aligned chips, in one batched call.

    ``flip`` averages each chip with its mirror image; ``jitter`` > 1 averages that many
    random crops/colour shifts per chip (dlib's ``num_jitters``, costs ``jitter`` x time).
    """
    if model != models.DLIB_RESNET:
        raise ValueError(f"no runtime for embedding model {model.model_id!r}")
    if not chips:
        return np.zeros((0, model.dimension), dtype=np.float32)
    batch = [np.ascontiguousarray(c) for c in chips]
    if flip:
        batch += [np.ascontiguousarray(c[:, ::-1]) for c in chips]
    raw = np.array(models.dlib_embedder().compute_face_descriptor(batch, num_jitters=jitter), dtype=np.float32)
    if flip:
        raw = raw[: len(chips)] + raw[len(chips) :]
    return normalise(raw)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
