"""Video keyframes in a photo library: a video is sampled every few seconds, and each keyframe's faces go
through the pipeline as a photo's do.

A person on screen for a minute would otherwise be stored thirty times: near-identical faces that add nothing
to their cluster, and turn a passer-by seen once into a cluster of many faces for the owner to sort out
(``bench/video_keyframes.py``: on the real test clips, 7 clusters from 119 faces against 4 from 42). So a face
that links (as clustering would link it, at the clusters' FMR) to a face of the previous keyframe that showed
faces is the same appearance, a *run*; only each run's best face is kept, one per ``RUN_SPAN`` seconds of a
long run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceprintError
from ..pipeline import PipelineOptions, process_files
from ..types import Face
from ..video.source import Frame, VideoFileSource
from .catalog import faces_with_thumbnails

#: Seconds between the keyframes sampled from a video, unless asked otherwise.
KEYFRAME_EVERY = 2.0
#: Keyframes decoded and sent through the pipeline at a time (what a long video holds in memory).
KEYFRAME_BATCH = 16
#: A run longer than this (seconds) keeps a face for each such stretch: a long shot is not one moment.
RUN_SPAN = 30.0


@dataclass(frozen=True, eq=False)
class KeyframeFace:
    """A face found in a keyframe of a video, with the frame it is in."""

    face: Face
    thumbnail: bytes | None
    frame_index: int
    frame_time: float


@dataclass(frozen=True)
class VideoScan:
    """What sampling one video gave: the faces kept, the keyframes read and the faces found in them."""

    faces: list[KeyframeFace]
    keyframes: int
    found: int
    error: str | None = None


def scan_video(
    path: str,
    options: PipelineOptions,
    *,
    every: float,
    link_threshold: float | None,
    thumbnail_side: int,
) -> VideoScan:
    """The faces of one video's keyframes, the best of each run kept (see the module docstring; every face
    with ``link_threshold`` None). A file that is not a video OpenCV can read gives a ``VideoScan`` with its
    ``error``."""
    found: list[KeyframeFace] = []
    keyframes = 0
    try:
        source = VideoFileSource(Path(path))
        try:
            for batch in _batches(source.keyframes(every)):
                keyframes += len(batch)
                found.extend(_batch_faces(batch, options, thumbnail_side))
        finally:
            source.close()
    except FaceprintError as exc:
        return VideoScan([], 0, 0, str(exc))
    kept = found if link_threshold is None else best_of_runs(found, link_threshold)
    return VideoScan(kept, keyframes, len(found))


def _batches(frames: Iterator[Frame]) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == KEYFRAME_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _batch_faces(frames: list[Frame], options: PipelineOptions, thumbnail_side: int) -> Iterator[KeyframeFace]:
    # In this process: the frames are decoded here, and a pool of workers per batch would cost more than it saves.
    results = process_files([frame.pixels for frame in frames], options, workers=1, thumbnail_side=thumbnail_side)
    for frame, result in zip(frames, results):
        for face, thumbnail in faces_with_thumbnails(result):
            yield KeyframeFace(face, thumbnail, frame.index, frame.time)


def best_of_runs(faces: Sequence[KeyframeFace], link_threshold: float, span: float = RUN_SPAN) -> list[KeyframeFace]:
    """One face per run: faces of successive keyframes (of those showing faces) whose templates link (similarity
    at least ``link_threshold``), each paired with at most one face of the keyframe before, the most similar
    pairs first; a run reaching ``span`` seconds starts anew. The face kept is the run's best: passing the
    quality gate first, then by quality score."""
    runs: list[list[KeyframeFace]] = []
    previous: list[int] = []  # the runs that reached the keyframe before
    for frame in sorted({face.frame_index for face in faces}):
        here = [face for face in faces if face.frame_index == frame]
        joined = _pair(here, [runs[r][-1] for r in previous], link_threshold)
        current = []
        for i, face in enumerate(here):
            run = previous[joined[i]] if i in joined else -1
            if run < 0 or face.frame_time - runs[run][0].frame_time >= span:
                runs.append([])
                run = len(runs) - 1
            runs[run].append(face)
            current.append(run)
        previous = current
    return sorted((max(run, key=_goodness) for run in runs), key=lambda f: (f.frame_index, f.face.box.left))


def _pair(faces: list[KeyframeFace], before: list[KeyframeFace], threshold: float) -> dict[int, int]:
    """``{face position: position in before}`` for the linked pairs, greedily by similarity."""
    if not faces or not before:
        return {}
    similarity = _vectors(faces) @ _vectors(before).T
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for flat in np.argsort(-similarity, axis=None):
        i, j = np.unravel_index(flat, similarity.shape)
        if similarity[i, j] < threshold:
            break
        if int(i) not in pairs and int(j) not in taken:
            pairs[int(i)] = int(j)
            taken.add(int(j))
    return pairs


def _vectors(faces: Sequence[KeyframeFace]) -> np.ndarray:
    vectors = []
    for face in faces:
        if face.face.template is None:
            raise ValueError("a keyframe face needs its template")
        vectors.append(face.face.template.vector)
    return np.asarray(vectors, dtype=np.float32)


def _goodness(face: KeyframeFace) -> tuple[bool, float]:
    return face.face.quality.acceptable, face.face.quality.score
