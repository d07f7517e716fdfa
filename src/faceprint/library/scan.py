"""Scanning a photo library: every face of every photo under a folder, stored in the gallery, incrementally.

A scan compares each file's size and modification time with what the gallery stored; a file whose stat
moved is read again only if its digest moved too. New and changed photos go through the pipeline across
worker processes (``faceprint.pipeline.process_files``) and are committed a batch at a time, so a scan
killed at any point loses at most the batch in flight and the next scan carries on. Photos gone from the
folder are forgotten with their faces (erased: ``Gallery.erase_removed``); a photo moved (same digest under a
new path) keeps its faces.

With ``videos``, video files are sampled too (``faceprint.library.keyframes``): each video in its own
transaction, after the photos; one sampled at another interval than asked is sampled again. A scan without
``videos`` leaves the videos already scanned as they are.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidImageError, ModelError
from ..gallery import Gallery
from ..image import IMAGE_SUFFIXES
from ..match import operating_point
from ..pipeline import BatchRunner, ImageResult, process_files
from ..progress import OnProgress
from ..video.source import VIDEO_SUFFIXES
from .catalog import Catalog, FileStat, PhotoRow
from .clusters import CLUSTER_FMR
from .keyframes import KEYFRAME_EVERY, scan_video

#: Side in pixels of the JPEG thumbnail kept of each face (about 3 KB each).
THUMBNAIL_SIDE = 96
#: Photos committed per transaction: what a killed scan can lose at most.
BATCH_SIZE = 64


@dataclass(frozen=True)
class ScanPlan:
    """What a scan has to do, from comparing the folder with the gallery."""

    #: New and changed files (photos and, when scanning videos, videos).
    to_process: list[FileStat]
    #: Photos whose stat or path moved but whose content did not: ``(photo id, new stat)``.
    restat: list[tuple[int, FileStat]]
    unchanged: int
    changed: int
    deleted: list[int]


@dataclass(frozen=True)
class ScanSummary:
    """What a scan found and did."""

    folder: str
    photos: int
    new: int
    changed: int
    unchanged: int
    moved: int
    deleted: int
    faces: int
    #: Videos sampled, their keyframes, and the faces found in them that repeated a face kept (not stored).
    videos: int = 0
    keyframes: int = 0
    repeats: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "errors": [{"image": path, "error": error} for path, error in self.errors]}


def scan(
    gallery: Gallery,
    folder: str | os.PathLike,
    *,
    workers: int | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: OnProgress | None = None,
    runner: BatchRunner = process_files,
    videos: bool = False,
    keyframe_every: float | None = None,
    keep_repeats: bool = False,
) -> ScanSummary:
    """Bring the gallery's record of the photos under ``folder`` up to date (see the module docstring).
    ``runner``: where the pipeline runs (default: worker processes here; ``faceprint.library.distributed.RayRunner``
    for a Ray cluster). ``videos``: sample video files every ``keyframe_every`` seconds too (None:
    ``KEYFRAME_EVERY``); ``keep_repeats``: store every face of every keyframe rather than the best of each run."""
    started = time.perf_counter()
    keyframe_every = KEYFRAME_EVERY if keyframe_every is None else keyframe_every
    if keyframe_every <= 0:
        raise ValueError(f"the keyframe interval must be positive, not {keyframe_every}")
    root = _folder(folder)
    catalog = Catalog(gallery)
    _check_model(catalog)
    known = catalog.photos_under(root)
    if not videos:
        known = {path: row for path, row in known.items() if row.keyframe_every is None}
    plan = plan_scan(root, known, keyframe_every if videos else None)
    catalog.restat(plan.restat)
    catalog.forget(plan.deleted)
    photos = [stat for stat in plan.to_process if not is_video(stat.path)]
    faces, errors = _process(gallery, catalog, photos, workers, batch_size, on_progress, runner)
    sampled = _sample_videos(
        gallery,
        catalog,
        [stat for stat in plan.to_process if is_video(stat.path)],
        keyframe_every,
        None if keep_repeats else operating_point(gallery.model_id, fmr=CLUSTER_FMR).threshold,
        on_progress,
    )
    errors += sampled.errors
    if plan.deleted or plan.changed:
        gallery.erase_removed()  # the faces of photos gone or changed: zeroed in the file, and out of the WAL
    return ScanSummary(
        folder=root,
        photos=len(plan.to_process) + len(plan.restat) + plan.unchanged,
        new=len(plan.to_process) - plan.changed,
        changed=plan.changed,
        unchanged=plan.unchanged,
        moved=len(plan.restat),
        deleted=len(plan.deleted),
        faces=faces + sampled.faces,
        videos=sampled.videos,
        keyframes=sampled.keyframes,
        repeats=sampled.repeats,
        errors=errors,
        seconds=time.perf_counter() - started,
    )


def plan_scan(root: str, known: dict[str, PhotoRow], keyframe_every: float | None = None) -> ScanPlan:
    """Compare the image files under ``root`` (and the video files, with ``keyframe_every``: the interval
    they are to be sampled at) with the photos the gallery holds there."""
    present = list_files(root, videos=keyframe_every is not None)
    seen = {stat.path for stat in present}
    gone = {row.sha256: row for path, row in known.items() if path not in seen and row.sha256}
    to_process: list[FileStat] = []
    restat: list[tuple[int, FileStat]] = []
    unchanged = changed = 0
    for stat in present:
        row = known.get(stat.path)
        wanted = keyframe_every if is_video(stat.path) else None  # how the file's faces are to be found
        if row is not None and row.keyframe_every != wanted:
            changed += 1
            to_process.append(stat)
        elif row is not None and (row.stat.size, row.stat.mtime_ns) == (stat.size, stat.mtime_ns):
            unchanged += 1
        elif row is not None and row.sha256 is not None and row.sha256 == file_digest(stat.path):
            restat.append((row.id, stat))
        elif row is None and (digest := _gone_digest(stat.path, gone)) and gone[digest].keyframe_every == wanted:
            restat.append((gone.pop(digest).id, stat))  # moved or renamed: its faces (and decisions) stay
        else:
            changed += row is not None
            to_process.append(stat)
    moved = {photo_id for photo_id, _ in restat}
    deleted = [row.id for path, row in known.items() if path not in seen and row.id not in moved]
    return ScanPlan(to_process, restat, unchanged, changed, deleted)


def _gone_digest(path: str, gone: dict[str, PhotoRow]) -> str | None:
    """The digest of ``path`` when it is that of a file gone from the folder (read only if any is gone)."""
    digest = file_digest(path) if gone else None
    return digest if digest in gone else None


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


def list_files(root: str, *, videos: bool = False) -> list[FileStat]:
    """Every image file under ``root`` (and every video file, with ``videos``), recursively, following links to
    files, sorted by path."""
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES if videos else IMAGE_SUFFIXES
    found: list[FileStat] = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() not in suffixes:
                continue
            path = os.path.join(directory, name)
            try:
                info = os.stat(path)
            except OSError:
                continue  # a dangling link, or a file removed while walking
            found.append(FileStat(path, info.st_size, info.st_mtime_ns))
    return sorted(found, key=lambda stat: stat.path)


def file_digest(path: str) -> str | None:
    """The sha256 of a file's bytes, as ``faceprint.image.load_image`` computes it (None if unreadable)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _folder(folder: str | os.PathLike) -> str:
    path = Path(folder)
    if not path.is_dir():
        raise InvalidImageError(f"{folder}: not a folder")
    # Absolute but not resolved: links under distinct names are distinct photos.
    return os.path.abspath(path)


def _check_model(catalog: Catalog) -> None:
    others = [model for model in catalog.face_models() if model != catalog.model_id]
    if others:
        raise ModelError(
            f"{catalog.store.path}: its photo library holds faces of model {others[0]!r}, not {catalog.model_id!r}; "
            "scan with the gallery's own model (without --profile)"
        )


def _process(
    gallery: Gallery,
    catalog: Catalog,
    files: Sequence[FileStat],
    workers: int | None,
    batch_size: int,
    on_progress: OnProgress | None,
    runner: BatchRunner,
) -> tuple[int, list[tuple[str, str]]]:
    """Run the pipeline over ``files`` and commit the results a batch at a time: ``(faces stored, errors)``."""
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if on_progress:
            on_progress("scanning photos", done, len(files))

    advance(0)
    results = runner(
        [stat.path for stat in files], gallery.options, workers=workers, on_done=advance, thumbnail_side=THUMBNAIL_SIDE
    )
    faces = 0
    errors: list[tuple[str, str]] = []
    batch: list[tuple[FileStat, ImageResult]] = []
    for result, stat in zip(results, files):  # results first: its generator runs to its end (last progress)
        batch.append((stat, result))
        if result.error is not None:
            errors.append((stat.path, str(result.error)))
        if len(batch) >= batch_size:
            faces += catalog.record(batch)
            batch = []
    if batch:
        faces += catalog.record(batch)
    return faces, errors


@dataclass
class _Sampled:
    """What sampling the videos of a scan gave."""

    videos: int = 0
    keyframes: int = 0
    faces: int = 0
    repeats: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _sample_videos(
    gallery: Gallery,
    catalog: Catalog,
    files: Sequence[FileStat],
    every: float,
    link_threshold: float | None,
    on_progress: OnProgress | None,
) -> _Sampled:
    """Sample each video and store its faces, a video at a time (its own transaction). The keyframes are decoded
    and go through the pipeline here, with a Ray runner too: shipping each batch of frames to a cluster would
    cost more than it saves."""
    sampled = _Sampled()
    for done, stat in enumerate(files):
        if on_progress:
            on_progress("sampling videos", done, len(files))
        digest = file_digest(stat.path)
        video = scan_video(
            stat.path,
            gallery.options,
            every=every,
            link_threshold=link_threshold,
            thumbnail_side=THUMBNAIL_SIDE,
        )
        found = [(f.face, f.thumbnail, f.frame_index, f.frame_time) for f in video.faces]
        stored = catalog.record_video(stat, digest, every, found, video.error)
        sampled.videos += video.error is None
        sampled.keyframes += video.keyframes
        sampled.faces += stored
        sampled.repeats += video.found - stored
        if video.error is not None:
            sampled.errors.append((stat.path, video.error))
    if on_progress and files:
        on_progress("sampling videos", len(files), len(files))
    return sampled
