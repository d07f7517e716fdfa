"""Face templates from aligned chips, batched, with optional test-time augmentation.

Each embedding model is an :class:`Embedder`: it owns its alignment (the chip it takes from a
face's points) and its runtime. dlib's ResNet (``dlib-resnet-v1``) embeds dlib's 150 px chip;
two runtimes compute it: ``"onnx"`` (default; dlib's weights converted by
``faceprint.resnet_onnx`` and run by onnxruntime, about 20x faster on a CPU) and ``"dlib"``
(dlib-bin's own code, the reference). Their descriptors agree to ~1e-6, so templates carry
one model id whichever runtime made them. On onnxruntime it also runs at ``precision="int8"``
(faceprint.int8: about twice as fast; templates within cosine ~0.9995 of the float ones, the same
accuracy, so they keep the model id too). SFace (``sface-2021dec``) embeds a 112 px ArcFace
chip on onnxruntime (faceprint.sface). The fused model (``dlib-resnet-v1+sface-2021dec``) takes
both chips of a face and joins the two unit templates, each scaled by the square root of its
weight: the inner product of two fused templates is the weighted sum of the two cosines, so
search and calibration treat it as any other model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from . import align, models
from .choices import BACKENDS, AlignmentPoints, Backend, Precision
from .models import DEFAULT_MODEL, EmbeddingModel

# Jitter, as dlib's jitter_image: up to 3 degrees of rotation, 3% of scale and 2% of shift,
# and a mirror image half of the time. Seeded per chip: the same face gives the same template.
_JITTER_DEGREES = 3.0
_JITTER_SCALE = 0.03
_JITTER_SHIFT = 0.02
_JITTER_SEED = 20240611

#: What a model embeds a face from: an aligned RGB uint8 chip, or a fused model's chips of its parts.
Chip = np.ndarray | tuple[np.ndarray, ...]


def embed_chips(
    chips: Sequence[Chip],
    *,
    flip: bool = False,
    jitter: int = 0,
    backend: Backend = "onnx",
    threads: int | None = None,
    model: EmbeddingModel = DEFAULT_MODEL,
    unflipped: Collection[str] = (),
    precision: Precision = "fp32",
) -> np.ndarray:
    """L2-normalised ``(N, dimension)`` float32 templates for aligned chips, in one batched call.

    ``flip`` adds each chip's mirror image and ``jitter`` adds that many slightly rotated,
    scaled and shifted copies; a template is the mean over all these views. ``unflipped``: ids of
    models (a fused model's parts) that skip the mirror image even with ``flip``. ``threads`` caps
    the onnxruntime threads (default: every core). ``precision="int8"`` runs dlib's ResNet (alone or as a
    fused model's part) quantized; SFace has no int8 graph and runs in float.
    """
    if precision == "int8" and models.DLIB_RESNET.model_id not in _network_ids(model):
        raise ValueError(f"precision 'int8' needs dlib's ResNet: model {model.model_id!r} has no int8 graph")
    if not chips:
        return np.zeros((0, model.dimension), dtype=np.float32)
    flips = frozenset() if not flip else frozenset(_network_ids(model)) - frozenset(unflipped)
    runtime = Runtime(backend, threads, precision)
    return embedder(model).templates(chips, flips=flips, jitter=jitter, runtime=runtime)


class Runtime(NamedTuple):
    """How the networks run: dlib's code or onnxruntime (``backend``), its threads, dlib's ResNet's precision."""

    backend: Backend = "onnx"
    threads: int | None = None
    precision: Precision = "fp32"


class Embedder(Protocol):
    """An embedding model at work: how it aligns a face, and how it computes unit templates of chips."""

    model: EmbeddingModel

    def chip(self, points: align.FacePoints, source: AlignmentPoints) -> Chip:
        """What a face is embedded from; ``source`` says which 5 points align on the ArcFace template."""
        ...

    def templates(self, chips: Sequence[Chip], *, flips: frozenset[str], jitter: int, runtime: Runtime) -> np.ndarray:
        """L2-normalised templates of (non-empty) chips, in one batched call per network; the networks whose
        model id is in ``flips`` add each chip's mirror image."""
        ...


class _Network(ABC):
    """A single network: its template is the mean of its raw vectors over the chip's views, normalised."""

    model: EmbeddingModel

    @abstractmethod
    def descriptors(self, chips: Sequence[np.ndarray], runtime: Runtime) -> np.ndarray:
        """Raw (not normalised) vectors of chips, in one batched call."""

    def templates(self, chips: Sequence[Chip], *, flips: frozenset[str], jitter: int, runtime: Runtime) -> np.ndarray:
        arrays = [np.asarray(chip) for chip in chips]
        views = [arrays]
        if self.model.model_id in flips:
            views.append([np.ascontiguousarray(c[:, ::-1]) for c in arrays])
        views += [list(batch) for batch in zip(*(jittered(c, jitter) for c in arrays))] if jitter else []
        raw = self.descriptors([chip for view in views for chip in view], runtime)
        return normalise(raw.reshape(len(views), len(arrays), -1).mean(axis=0))


class DlibResnet(_Network):
    """dlib's ResNet: dlib's 150 px chip from dlib's 5-point fit."""

    model = models.DLIB_RESNET

    def chip(self, points: align.FacePoints, source: AlignmentPoints) -> np.ndarray:
        return points.dlib_chip

    def descriptors(self, chips: Sequence[np.ndarray], runtime: Runtime) -> np.ndarray:
        return descriptors(chips, backend=runtime.backend, threads=runtime.threads, precision=runtime.precision)


class SFace(_Network):
    """SFace: the 112 px ArcFace chip from the detector's 5 points (YuNet's) or from dlib's 68."""

    model = models.SFACE

    def chip(self, points: align.FacePoints, source: AlignmentPoints) -> np.ndarray:
        if source == "detector" and points.detector is not None:
            return align.arcface_chip(points.pixels, points.detector)
        return align.arcface_chip(points.pixels, align.five_from_68(points.dlib68))

    def descriptors(self, chips: Sequence[np.ndarray], runtime: Runtime) -> np.ndarray:
        if runtime.backend != "onnx":
            raise ValueError(f"SFace runs on onnxruntime only (backend 'onnx'), not {runtime.backend!r}")
        from .sface import shared_sface  # onnx and onnxruntime load only when a template is computed

        return shared_sface(runtime.threads).embed(chips)


class Fused:
    """Several models' templates of a face joined into one, each part scaled by the square root of its weight."""

    def __init__(self, model: EmbeddingModel, parts: Sequence[Embedder]) -> None:
        self.model = model
        self.parts = list(parts)
        self.weights = [weight for _, weight in model.parts]

    def chip(self, points: align.FacePoints, source: AlignmentPoints) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(part.chip(points, source)) for part in self.parts)

    def templates(self, chips: Sequence[Chip], *, flips: frozenset[str], jitter: int, runtime: Runtime) -> np.ndarray:
        blocks = [
            np.sqrt(weight) * part.templates([chip[i] for chip in chips], flips=flips, jitter=jitter, runtime=runtime)
            for i, (part, weight) in enumerate(zip(self.parts, self.weights))
        ]
        # Unit parts with weights summing to 1 already give unit length; renormalising removes rounding.
        return normalise(np.hstack(blocks))


_DLIB_RESNET, _SFACE = DlibResnet(), SFace()
EMBEDDERS: dict[str, Embedder] = {
    runtime.model.model_id: runtime for runtime in (_DLIB_RESNET, _SFACE, Fused(models.FUSED, [_DLIB_RESNET, _SFACE]))
}


def _network_ids(model: EmbeddingModel) -> list[str]:
    """The ids of the single networks a model runs: its parts' for a fused model, else its own."""
    return [part.model_id for part, _ in model.parts] or [model.model_id]


def part_templates(vectors: np.ndarray, model: EmbeddingModel) -> list[np.ndarray]:
    """The unit templates of each part of a fused model's templates (``(N, dimension)``), in its parts' order."""
    ends = np.cumsum([part.dimension for part, _ in model.parts])[:-1]
    blocks = np.split(np.asarray(vectors, dtype=np.float32), ends, axis=-1)
    return [normalise(block) for block in blocks]


def embedder(model: EmbeddingModel) -> Embedder:
    """The runtime of an embedding model; ValueError for a model faceprint cannot run."""
    runtime = EMBEDDERS.get(model.model_id)
    if runtime is None or runtime.model != model:
        raise ValueError(f"no runtime for embedding model {model.model_id!r}")
    return runtime


def descriptors(
    chips: Sequence[np.ndarray], *, backend: Backend = "onnx", threads: int | None = None, precision: Precision = "fp32"
) -> np.ndarray:
    """dlib's raw (not normalised) ResNet descriptors of 150x150 RGB chips."""
    if backend == "onnx":
        from .resnet_onnx import shared_resnet  # onnx and onnxruntime load only when a template is computed

        return shared_resnet(threads, precision).embed(chips)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r} runs on onnxruntime only (backend 'onnx'), not {backend!r}")
    if backend == "dlib":
        batch = [np.ascontiguousarray(c) for c in chips]
        return np.array(models.dlib_embedder().compute_face_descriptor(batch), dtype=np.float32)
    raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")


def dlib_face_descriptors(
    chips: Sequence[np.ndarray], *, num_jitters: int = 1, backend: Backend = "onnx", threads: int | None = None
) -> np.ndarray:
    """dlib's raw descriptors as its ``compute_face_descriptor(image, faces, num_jitters)`` gives them, batched.

    With ``num_jitters`` > 1, a face's descriptor is the mean over that many views from dlib's own
    ``jitter_image``: its random generator starts from the same seed as compute_face_descriptor's,
    so a process draws the same views, face after face, as dlib's own code would in its place.
    """
    if num_jitters <= 1:
        return descriptors(chips, backend=backend, threads=threads)
    import dlib

    views = [view for chip in chips for view in dlib.jitter_image(np.ascontiguousarray(chip), num_jitters)]
    raw = descriptors(views, backend=backend, threads=threads)
    return raw.reshape(len(chips), num_jitters, raw.shape[-1]).mean(axis=1)


def jittered(chip: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` randomly perturbed copies of ``chip`` (deterministic for a given chip size)."""
    rng = np.random.default_rng(_JITTER_SEED)
    size = chip.shape[1], chip.shape[0]
    centre = (size[0] / 2, size[1] / 2)
    copies = []
    for _ in range(count):
        angle = rng.uniform(-_JITTER_DEGREES, _JITTER_DEGREES)
        scale = 1 + rng.uniform(-_JITTER_SCALE, _JITTER_SCALE)
        matrix = np.asarray(cv2.getRotationMatrix2D(centre, angle, scale), dtype=np.float64)
        matrix[:, 2] += rng.uniform(-_JITTER_SHIFT, _JITTER_SHIFT, 2) * size
        copy = cv2.warpAffine(chip, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        copies.append(np.ascontiguousarray(copy[:, ::-1]) if rng.random() < 0.5 else copy)
    return copies


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
