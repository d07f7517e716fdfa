"""The one pipeline every front end uses: image -> faces -> templates.

``find_faces`` runs detect -> landmarks -> align -> quality -> embed for a batch of images
with a single embedding call; ``process_files`` does the same for many files across
worker processes (detection and landmarks are single-threaded dlib code, so processes are
what use every core).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from . import align, attributes, quality
from .choices import AlignmentPoints, AttributeName, Backend, DetectorName, Precision
from .detection import DEFAULT_MAX_SIDE, Detection, detect_boxes
from .embedding import Chip, embed_chips, embedder
from .errors import FaceprintError, ManyFacesError, NoFaceError
from .image import MAX_PIXELS, ImageSource, LoadedImage, describe, face_thumbnail, load_image
from .models import DEFAULT_MODEL, SFACE, EmbeddingModel
from .pose import head_pose
from .quality import DEFAULT_THRESHOLDS, QualityThresholds
from .types import Face, Template


@dataclass(frozen=True)
class PipelineOptions:
    """Every knob of the pipeline, with the defaults measured to work best (see BENCHMARKS.md).

    The defaults are YuNet detection and the fused model (dlib's ResNet and SFace, SFace aligned on YuNet's
    5 points): 99.85% on faces-dev, and at FPIR 1e-2 FNIR 0.9% at 10,000 templates with one photo per person
    (dlib's ResNet alone: 40%). :data:`DEFAULT_OPTIONS`, the default pipeline, runs dlib's part as its int8
    graph (``precision``). ``faceprint.profiles.CLASSIC`` is the former default (HOG/CNN + dlib's ResNet,
    128-d, face_recognition's model), which galleries of that model keep using.
    """

    detector: DetectorName = "yunet"
    upsample: int | None = None
    max_side: int = DEFAULT_MAX_SIDE
    landmarks68: bool = False
    flip: bool = True
    #: Models (a fused model's parts) embedded without the mirror image even with ``flip``, where it measured no
    #: gain for its cost: SFace's, in the fused default (3x dlib's cost, 3 pairs wrong either way; BENCHMARKS.md,
    #: issue 13 speed). SFace alone keeps it (``profiles.options_for_model``).
    unflipped: tuple[str, ...] = (SFACE.model_id,)
    jitter: int = 0
    backend: Backend = "onnx"
    #: dlib's ResNet on onnxruntime as its float graph or its int8 one (about twice as fast, the same accuracy
    #: and model id; BENCHMARKS.md, "Issue 13: int8"). SFace runs in float either way. Float here, so that a
    #: pipeline spelled out (the classic one: face_recognition's descriptors) stays dlib's own numbers;
    #: :data:`DEFAULT_OPTIONS` and ``profiles.FAST`` ask for int8.
    precision: Precision = "fp32"
    #: onnxruntime threads per process (None: every core for the embedding, 1 for the small attribute
    #: models; worker processes use 1 each).
    threads: int | None = None
    max_pixels: int = MAX_PIXELS
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS
    model: EmbeddingModel = DEFAULT_MODEL
    #: The 5 points a model on the ArcFace template (SFace) aligns by: the detector's (YuNet's) where it
    #: gives them, else dlib's 68 reduced to 5 ("detector"); or always dlib's ("dlib68").
    alignment: AlignmentPoints = "detector"
    #: Face attributes to estimate (see faceprint.attributes); none by default, at no cost.
    attributes: tuple[AttributeName, ...] = ()


#: The default pipeline (the accurate profile): dlib's part of the fused model as its int8 graph, which keeps the
#: fused model's accuracy (99.85% on faces-dev), calibration and model id at 8 ms less CPU per image
#: (BENCHMARKS.md, "Issue 13: speed, both profiles against the classic one").
DEFAULT_OPTIONS = PipelineOptions(precision="int8")


def find_faces(
    images: Sequence[np.ndarray], options: PipelineOptions = DEFAULT_OPTIONS, *, embed: bool = True
) -> list[list[Face]]:
    """Faces of each RGB image, main face first; templates computed in one batch when ``embed``."""
    per_image = [_locate(pixels, options) for pixels in images]
    if options.attributes:
        per_image = _with_attributes(images, per_image, options)
    if not embed:
        return [[face for face, _ in faces] for faces in per_image]
    embedded = iter(embed_located([located for faces in per_image for located in faces], options))
    return [[next(embedded) for _ in faces] for faces in per_image]


def faces_in(image: ImageSource, options: PipelineOptions = DEFAULT_OPTIONS, *, embed: bool = True) -> list[Face]:
    """``find_faces`` for one image source (file, bytes, array...), loaded within ``options.max_pixels``."""
    return find_faces([load_image(image, max_pixels=options.max_pixels).pixels], options, embed=embed)[0]


def locate_face(pixels: np.ndarray, detection: Detection, options: PipelineOptions = DEFAULT_OPTIONS) -> LocatedFace:
    """Landmarks, quality and aligned chip of one detected face (no template yet).

    Front ends that detect on their own schedule (video tracking) call this, then
    ``embed_located`` for the few faces worth a template.
    """
    fit = align.shape(pixels, detection.landmark_box, 5)
    points = align.FacePoints(pixels, detection.landmark_box, fit, detection.landmarks)
    landmarks = align.points_array(fit)
    chip = embedder(options.model).chip(points, options.alignment)
    # The head pose attribute is solved from the 68 points; the quality report then shares it.
    want68 = options.landmarks68 or "pose" in options.attributes
    landmarks68 = points.dlib68 if want68 else None
    size = (pixels.shape[1], pixels.shape[0])
    pose = head_pose(landmarks68 if landmarks68 is not None else landmarks, size)
    if landmarks68 is None and abs(pose.yaw) > options.thresholds.max_abs_yaw:
        # The 5-point estimate overshoots on turned heads (+57 deg where the 68 points give +35): a face it
        # would refuse gets the solved pose (a 68-point fit, ~3 ms) before the quality gate judges it.
        pose = head_pose(points.dlib68, size)
    face = Face(
        box=detection.box,
        confidence=detection.confidence,
        detector=detection.detector,
        landmarks=landmarks,
        # Quality is judged on dlib's chip whatever the model: one set of thresholds for every model.
        quality=quality.assess(points.dlib_chip, landmarks, detection.box, options.thresholds, pose),
        landmarks68=landmarks68,
    )
    return LocatedFace(face, chip)


def embed_located(located: Sequence[LocatedFace], options: PipelineOptions = DEFAULT_OPTIONS) -> list[Face]:
    """The faces with their templates, computed in one batched call."""
    vectors = embed_chips(
        [item.chip for item in located],
        flip=options.flip,
        unflipped=options.unflipped,
        jitter=options.jitter,
        backend=options.backend,
        threads=options.threads,
        model=options.model,
        precision=options.precision,
    )
    return [
        dataclasses.replace(item.face, template=Template(vector, options.model.model_id))
        for item, vector in zip(located, vectors)
    ]


def single_face(faces: Sequence[Face], name: str, *, largest: bool = False) -> Face:
    """The one face of an image; with ``largest``, the main one of several (largest, favouring the centre)."""
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    if len(faces) > 1 and not largest:
        raise ManyFacesError(f"{name}: {len(faces)} faces found where one was expected (use largest=True / --largest)")
    return faces[0]


def template_of(
    item: ImageSource | Face | Template, *, largest: bool = False, options: PipelineOptions = DEFAULT_OPTIONS
) -> Template:
    """The template of an image's single face (or of a face or template already computed)."""
    if isinstance(item, Template):
        return item
    if isinstance(item, Face):
        if item.template is None:
            raise ValueError("this face has no template: get it from faceprint.embedding(), not detect()")
        return item.template
    loaded = load_image(item, max_pixels=options.max_pixels)
    return template_of(single_face(find_faces([loaded.pixels], options)[0], loaded.name, largest=largest))


class LocatedFace(NamedTuple):
    """A face before embedding, with the aligned chip its template will be computed from."""

    face: Face
    chip: Chip


def _with_attributes(
    images: Sequence[np.ndarray], per_image: list[list[LocatedFace]], options: PipelineOptions
) -> list[list[LocatedFace]]:
    found = attributes.compute(
        images, [[item.face for item in faces] for faces in per_image], options.attributes, threads=options.threads
    )
    return [
        [LocatedFace(dataclasses.replace(face, attributes=a), chip) for (face, chip), a in zip(faces, image_attributes)]
        for faces, image_attributes in zip(per_image, found)
    ]


def _locate(pixels: np.ndarray, options: PipelineOptions) -> list[LocatedFace]:
    """Detected faces with landmarks and quality, each with its aligned chip."""
    return [
        locate_face(pixels, detection, options)
        for detection in detect_boxes(
            pixels, detector=options.detector, upsample=options.upsample, max_side=options.max_side
        )
    ]


@dataclass(frozen=True, eq=False)
class ImageResult:
    """What the pipeline made of one input of a batch: its faces, or the error it raised."""

    source: str
    sha256: str | None
    faces: list[Face]
    error: FaceprintError | None = None
    #: A small JPEG of each face, in the order of ``faces`` (when ``process_files`` was asked for them).
    thumbnails: list[bytes] = dataclasses.field(default_factory=list)


class BatchRunner(Protocol):
    """What runs the pipeline over a batch of inputs: ``process_files`` here, across worker processes, or
    ``faceprint.library.distributed.RayRunner`` across a Ray cluster; the same results, in order."""

    def __call__(
        self,
        sources: Sequence[ImageSource],
        options: PipelineOptions = ...,
        *,
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
        chunk_size: int = 8,
        embed: bool = True,
        thumbnail_side: int = 0,
    ) -> Iterator[ImageResult]: ...


def process_files(
    sources: Sequence[ImageSource],
    options: PipelineOptions = DEFAULT_OPTIONS,
    *,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
    chunk_size: int = 8,
    embed: bool = True,
    thumbnail_side: int = 0,
) -> Iterator[ImageResult]:
    """Run the pipeline over many inputs, in order, in up to ``workers`` processes.

    Bad inputs do not stop the batch: their ``ImageResult.error`` says what went wrong.
    ``on_done(n)`` is called as each chunk of ``n`` inputs finishes (for progress bars).
    Without ``embed``, faces come without templates (e.g. for attributes only). With ``thumbnail_side``,
    each face also comes as a JPEG thumbnail of that many pixels a side (made where the pixels are decoded).
    """
    chunks = [list(sources[i : i + chunk_size]) for i in range(0, len(sources), chunk_size)]
    workers = _worker_count(workers, len(chunks))
    if workers == 1:
        results: Iterator[list[ImageResult]] = (
            process_chunk(chunk, options, embed, thumbnail_side) for chunk in chunks
        )
        yield from _with_progress(results, on_done)
        return
    # One onnxruntime thread per process: the processes already fill the cores.
    work = functools.partial(
        process_chunk, options=dataclasses.replace(options, threads=1), embed=embed, thumbnail_side=thumbnail_side
    )
    # This process is one of the ``workers``: one process fewer to start (each costs about a second of CPU, 2 ms
    # per image over 600 images where the fast profile's marginal cost is 13; BENCHMARKS.md, "Issue 13: speed,
    # both profiles against the classic one in the same run").
    # spawn, not fork: workers must not inherit the parent's threads or open galleries.
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from _with_progress(_shared_with_pool(chunks, work, pool, workers - 1), on_done)


def _shared_with_pool(
    chunks: list[list[ImageSource]],
    work: Callable[[list[ImageSource]], list[ImageResult]],
    pool: Executor,
    pool_size: int,
) -> Iterator[list[ImageResult]]:
    """Each chunk's results, in order, the chunks run by the pool and by this process: the pool is kept one chunk
    ahead of its processes, and this process takes the next chunk whenever the one due is not ready yet."""
    started: dict[int, Future[list[ImageResult]] | list[ImageResult]] = {}
    taken = 0
    try:
        for due in range(len(chunks)):
            while True:
                running = sum(1 for item in started.values() if isinstance(item, Future) and not item.done())
                for _ in range(min(pool_size + 1 - running, len(chunks) - taken)):
                    started[taken], taken = pool.submit(work, chunks[taken]), taken + 1
                ready = started[due]
                if taken == len(chunks) or not isinstance(ready, Future) or ready.done():
                    break
                started[taken], taken = work(chunks[taken]), taken + 1
            finished = started.pop(due)
            yield finished.result() if isinstance(finished, Future) else finished
    finally:  # the caller stopped early or a chunk failed: start no more
        for item in started.values():
            if isinstance(item, Future):
                item.cancel()


def _worker_count(requested: int | None, chunks: int) -> int:
    wanted = requested if requested is not None else (os.cpu_count() or 1)
    # Starting a worker costs about a second; not worth it for a couple of chunks.
    return max(1, min(wanted, chunks if chunks >= 3 else 1))


def _with_progress(
    chunk_results: Iterator[list[ImageResult]], on_done: Callable[[int], None] | None
) -> Iterator[ImageResult]:
    for results in chunk_results:
        yield from results
        if on_done:
            on_done(len(results))


def process_chunk(
    sources: list[ImageSource], options: PipelineOptions, embed: bool = True, thumbnail_side: int = 0
) -> list[ImageResult]:
    """``process_files`` for one chunk of inputs in this process (what each worker runs)."""
    loaded: list[LoadedImage | FaceprintError] = []
    for source in sources:
        try:
            loaded.append(load_image(source, max_pixels=options.max_pixels))
        except FaceprintError as exc:
            loaded.append(exc)
    images = [item for item in loaded if isinstance(item, LoadedImage)]
    faces = iter(find_faces([image.pixels for image in images], options, embed=embed))
    return [
        _image_result(item, next(faces), thumbnail_side)
        if isinstance(item, LoadedImage)
        else ImageResult(describe(source), None, [], item)
        for source, item in zip(sources, loaded)
    ]


def _image_result(image: LoadedImage, faces: list[Face], thumbnail_side: int) -> ImageResult:
    thumbnails = [face_thumbnail(image.pixels, face.box, thumbnail_side) for face in faces] if thumbnail_side else []
    return ImageResult(image.name, image.sha256, faces, thumbnails=thumbnails)
