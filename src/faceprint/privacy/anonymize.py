"""Blur, pixelate or mask faces: every face, only unknown faces, or everyone but named people.

In videos the faces are tracked, so frames between detections are covered too: every track
is hidden on every frame, including tracks coasting through a missed detection, over a box
grown by a quarter of the face plus twice the tracker's position uncertainty. Faces whose
identity is not decided yet are hidden (when in doubt, hide). ``remaining_faces`` re-detects
faces on an output frame, more thoroughly than the tracker does, to measure leaks.

``anonymize_photos`` and ``anonymize_frames`` do it from files to files (what ``faceprint
anonymize`` runs), with an optional leak check of every output.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..choices import METHODS, AnonymizeMode, DetectorName, Method
from ..detection import detect_boxes
from ..draw import save
from ..gallery import Gallery
from ..image import IMAGE_SUFFIXES, ImageSource, image_files, load_image
from ..pipeline import DEFAULT_OPTIONS, find_faces
from ..types import UNKNOWN, Box
from ..video.output import VideoWriter
from ..video.process import FrameResult, TrackedFace, VideoOptions, VideoProcessor
from ..video.source import FrameSource, open_source, read_ahead
from ..video.tracker import TrackerOptions

#: Share of the face width added on every side of the box before hiding it (hair, ears, chin).
_GROW = 0.25
#: Pixelation: blocks across the face.
_BLOCKS = 8
#: Frames a video's hiding and writing may lag behind its detection.
_AHEAD = 2
_MASK_COLOUR = (0, 0, 0)
#: Videos are searched for faces more thoroughly than for recognition (a face missed is a face
#: published): every 2nd frame and at once when something moves, at up to 1280 px with one
#: upsampling (faces down to ~40 px, like ``remaining_faces``), and a face hidden behind
#: something is kept masked at its predicted place for 2 s.
THOROUGH = VideoOptions(
    detector="hog",
    detect_every=2,
    react_after=1,
    detect_max_side=1280,
    detect_upsample=1,
    tracker=TrackerOptions(max_coast=2.0),
)
#: Several times faster, for footage whose faces are large (over ~110 px at 720p): HOG as video
#: recognition ran it before YuNet (960 px, upsampled only below 640 px), every 3rd frame.
FAST = VideoOptions(detector="hog", detect_every=3, react_after=1, tracker=TrackerOptions(max_coast=2.0))
#: YuNet on the whole frame (up to 1920 px: faces from ~20 px of a 1080p frame), every 2nd frame and at
#: once when something moves (a newcomer is hidden from its first frame: every frame in a moving crowd);
#: the tracks carry every face through the frames between detections. It keeps
#: faces down to a score of 0.3, half YuNet's usual 0.6: blurring the faces around a small, dim one can lift
#: that one's score over 0.6 (0.52 before, on the crowd clip), so the check would find what was left.
YUNET = VideoOptions(
    detector="yunet",
    detect_every=2,
    react_after=1,
    detect_max_side=1920,
    detect_min_score=0.3,
    tracker=TrackerOptions(max_coast=2.0),
)
#: The anonymizer's modes by name (``faceprint anonymize --mode``); YuNet's is the default: it left no face
#: on the test clips by HOG's or YuNet's check, and runs faster than HOG's thorough mode (BENCHMARKS.md).
ANONYMIZERS: dict[AnonymizeMode, VideoOptions] = {"yunet": YUNET, "thorough": THOROUGH, "fast": FAST}
#: The detectors ``remaining_faces`` re-detects with, each finding faces the other misses (YuNet: small and
#: turned faces; HOG: some faces YuNet scores under its threshold).
REFERENCE_DETECTORS: tuple[DetectorName, ...] = ("hog", "yunet")


@dataclass(frozen=True)
class Selection:
    """Which faces to hide: all (default), only those not recognised, or all but ``keep``."""

    only_unknown: bool = False
    keep: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.only_unknown and self.keep:
            raise ValueError("choose either only_unknown or keep (named people to leave visible), not both")

    @property
    def needs_identity(self) -> bool:
        return self.only_unknown or bool(self.keep)

    def hides(self, label: str | None, known: bool) -> bool:
        """Hide a face with this label? Undecided faces (``label`` None) are always hidden."""
        if label is None:
            return True
        if self.only_unknown:
            return not known
        return label not in self.keep


@dataclass(frozen=True, eq=False)
class AnonymizedImage:
    pixels: np.ndarray
    faces: list[Box]
    labels: list[str]
    hidden: list[bool]


@dataclass(frozen=True)
class AnonymizedVideo:
    frames: int
    tracks: int
    hidden_boxes: int


@dataclass(frozen=True)
class AnonymizedFiles:
    """What ``anonymize_photos`` / ``anonymize_frames`` wrote: the output (file or folder), frames or
    photos, hidden face boxes, tracks (videos only) and, when checked, outputs with a face left."""

    out: Path
    frames: int
    hidden: int
    tracks: int | None = None
    #: When checked: the outputs with a face left that should have been hidden, as frame numbers of the
    #: written video (from 0) or paths of the written photos.
    leaks: list[int | str] | None = None

    @property
    def frames_with_faces_left(self) -> int | None:
        return len(self.leaks) if self.leaks is not None else None

    def to_dict(self) -> dict[str, Any]:
        counts = {"out": str(self.out), "frames": self.frames, "tracks": self.tracks, "hidden": self.hidden}
        checked = {"frames_with_faces_left": self.frames_with_faces_left, "leaks": self.leaks}
        return {key: value for key, value in (counts | checked).items() if value is not None}


def hide(pixels: np.ndarray, boxes: Sequence[Box], method: Method = "blur") -> np.ndarray:
    """A copy of ``pixels`` with each box blurred, pixelated or masked out (boxes as given: grow them first)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    canvas = pixels.copy()
    height, width = canvas.shape[:2]
    for left, top, right, bottom in _merged(_on_image(boxes, width, height)):
        canvas[top:bottom, left:right] = _obscure(canvas[top:bottom, left:right], method)
    return canvas


def _on_image(boxes: Sequence[Box], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The boxes' pixels on the image (left, top, right, bottom; outward to whole pixels), empty ones left out."""
    clipped = [
        (
            max(int(box.left), 0),
            max(int(box.top), 0),
            min(int(np.ceil(box.right)), width),
            min(int(np.ceil(box.bottom)), height),
        )
        for box in boxes
    ]
    return [(left, top, right, bottom) for left, top, right, bottom in clipped if right > left and bottom > top]


def _merged(regions: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Overlapping regions replaced by the rectangle around them, until none overlap. Each face is then
    obscured once, not once per overlapping box (a crowd's ~30 boxes a frame cost 40 ms of CPU), and at least
    as strongly: a blur's strength follows its region's shorter side, which only grows."""
    merged = list(regions)
    changed = True
    while changed:
        changed = False
        for i, j in itertools.combinations(range(len(merged)), 2):
            a, b = merged[i], merged[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                del merged[j]
                changed = True
                break
    return merged


def _obscure(region: np.ndarray, method: Method) -> np.ndarray:
    if method == "mask":
        return np.full_like(region, _MASK_COLOUR)
    height, width = region.shape[:2]
    if method == "pixelate":
        blocks = (max(1, min(_BLOCKS, width)), max(1, min(_BLOCKS, height)))
        small = cv2.resize(region, blocks, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    # So strong that not even the face's outline survives (a detector still finds a face-shaped
    # blur); blurring a shrunken copy is as strong and much faster than blurring the region. OpenCV's stack
    # blur approximates the Gaussian at a cost that does not grow with its kernel (a 1080p crowd frame's
    # blurring: 34 -> 6 ms CPU); shrinking large regions further instead left faces for the leak check.
    small = cv2.resize(region, (max(1, width // 8), max(1, height // 8)), interpolation=cv2.INTER_AREA)
    sigma = max(1.0, min(small.shape[:2]) / 4)
    side = 2 * int(3 * sigma) + 1
    padded = cv2.copyMakeBorder(small, side, side, side, side, cv2.BORDER_REPLICATE)
    blurred = cv2.stackBlur(padded, (side, side))[side:-side, side:-side]
    return cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)


def grown(box: Box, uncertainty: float = 0.0) -> Box:
    """The area to hide for a face box: grown by ``_GROW`` of its width plus twice ``uncertainty`` pixels."""
    grow = _GROW * box.width + 2.0 * uncertainty
    return Box(box.left - grow, box.top - grow, box.right + grow, box.bottom + grow)


def anonymize_image(
    image: ImageSource, *, method: Method = "blur", selection: Selection = Selection(), gallery: Gallery | None = None
) -> AnonymizedImage:
    """Hide the selected faces of a photo (detected thoroughly: HOG, CNN fallback, upsampling).

    Selecting by identity (``only_unknown``, ``keep``) needs a ``gallery``.
    """
    _check(selection, gallery)
    loaded = load_image(image)
    # HOG with the CNN fallback, whatever the recognition pipeline's detector: its leak rates are the ones measured.
    options = dataclasses.replace(gallery.options if gallery is not None else DEFAULT_OPTIONS, detector="auto")
    faces = find_faces([loaded.pixels], options, embed=selection.needs_identity)[0]
    if selection.needs_identity and gallery is not None:
        found = gallery.identify_faces(faces)
        labels, known = [f.name for f in found], [f.match is not None for f in found]
    else:
        labels, known = [UNKNOWN] * len(faces), [False] * len(faces)
    hidden = [selection.hides(label, is_known) for label, is_known in zip(labels, known)]
    boxes = [grown(face.box) for face, h in zip(faces, hidden) if h]
    return AnonymizedImage(hide(loaded.pixels, boxes, method), [f.box for f in faces], labels, hidden)


def anonymize_video(
    source: FrameSource,
    write: Callable[[np.ndarray], None],
    *,
    method: Method = "blur",
    selection: Selection = Selection(),
    gallery: Gallery | None = None,
    options: VideoOptions = YUNET,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> AnonymizedVideo:
    """Hide the selected faces on every frame of ``source``, passing each output frame to ``write``.

    ``options``: ``YUNET`` (default), ``THOROUGH`` or ``FAST`` (see their comments), or your own.
    """
    _check(selection, gallery)
    options = dataclasses.replace(options, identify=selection.needs_identity)
    processor = VideoProcessor(gallery, options, fps=source.fps)
    frames = hidden_boxes = 0
    # Three stages on their own threads (OpenCV and onnxruntime release the GIL): decoding the next frames,
    # detecting and tracking on this one, hiding and writing the last ones; in order, at most _AHEAD behind.
    with ThreadPoolExecutor(1, thread_name_prefix="faceprint-hide") as hider:
        written: deque[Future[None]] = deque()
        for frame in read_ahead(source):
            result = processor.process(frame)
            boxes = [grown(face.box, face.uncertainty) for face in result.faces if _hides(face, selection)]
            written.append(hider.submit(lambda pixels, boxes: write(hide(pixels, boxes, method)), frame.pixels, boxes))
            while len(written) > _AHEAD or (written and written[0].done()):
                written.popleft().result()
            frames += 1
            hidden_boxes += len(boxes)
            if on_frame:
                on_frame(result)
        for done in written:
            done.result()
    processor.finish()
    return AnonymizedVideo(frames, processor.tracker.created, hidden_boxes)


def is_photos(path: Path) -> bool:
    """Is ``path`` a photo or a folder of photos (else a video, camera or stream for ``open_source``)?"""
    return path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir()


def anonymize_photos(
    path: Path,
    out: Path | None = None,
    *,
    method: Method = "blur",
    selection: Selection = Selection(),
    gallery: Gallery | None = None,
    check: bool = False,
) -> AnonymizedFiles:
    """Anonymize a photo into ``out`` (default ``NAME.anonymized.EXT``), or every photo of a folder
    into the same places under ``out`` (default ``FOLDER-anonymized``); with ``check``, count the
    outputs in which ``remaining_faces`` still finds a face."""
    photos = image_files([path])
    if path.is_dir():
        written = out or path.with_name(path.name + "-anonymized")
        targets = [written / photo.relative_to(path) for photo in photos]
    else:
        written = out or path.with_name(f"{path.stem}.anonymized{path.suffix}")
        targets = [written]
    hidden = 0
    leaks: list[int | str] = []
    for photo, target in zip(photos, targets):
        result = anonymize_image(photo, method=method, selection=selection, gallery=gallery)
        save(result.pixels, target)
        hidden += sum(result.hidden)
        kept = [grown(box) for box, was_hidden in zip(result.faces, result.hidden) if not was_hidden]
        if check and leaked(load_image(target).pixels, kept):  # the file as written (JPEG and all)
            leaks.append(str(target))
    return AnonymizedFiles(written, len(photos), hidden, leaks=leaks if check else None)


def anonymize_frames(
    source: FrameSource,
    out: Path | None = None,
    *,
    method: Method = "blur",
    selection: Selection = Selection(),
    gallery: Gallery | None = None,
    options: VideoOptions = YUNET,
    check: bool = False,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> AnonymizedFiles:
    """``anonymize_video`` into the video file ``out`` (default ``NAME.anonymized.mp4``, or
    ``stream.anonymized.mp4`` for a live source); with ``check``, count the output frames in which
    ``remaining_faces`` still finds a face."""
    target = out or Path(f"{Path(source.name).stem if not source.live else 'stream'}.anonymized.mp4")
    kept: list[list[Box]] = []  # per written frame, the faces left visible on purpose

    def note(result: FrameResult) -> None:
        kept.append([grown(face.box, face.uncertainty) for face in result.faces if not _hides(face, selection)])
        if on_frame:
            on_frame(result)

    with VideoWriter(target, source.fps) as writer:
        summary = anonymize_video(
            source, writer.write, method=method, selection=selection, gallery=gallery, options=options, on_frame=note
        )
    leaks = _leaks_in_video(target, kept) if check else None
    return AnonymizedFiles(target, summary.frames, summary.hidden_boxes, summary.tracks, leaks=leaks)


def _leaks_in_video(path: Path, kept: Sequence[Sequence[Box]]) -> list[int | str]:
    """The frames of the written video (decoded, as a viewer sees them) with a face that should be hidden."""
    with open_source(path) as decoded:
        return [n for n, frame in enumerate(decoded) if leaked(frame.pixels, kept[n] if n < len(kept) else [])]


def leaked(pixels: np.ndarray, kept: Sequence[Box]) -> bool:
    """Does ``pixels`` show a face (``remaining_faces``) other than those left visible on purpose (``kept``:
    a re-detected face whose centre lies in one of these boxes is one of them)?"""
    return any(not any(_centre_in(face, box) for box in kept) for face in remaining_faces(pixels))


def _centre_in(face: Box, box: Box) -> bool:
    x, y = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    return box.left <= x <= box.right and box.top <= y <= box.bottom


def _hides(face: TrackedFace, selection: Selection) -> bool:
    return selection.hides(None if face.label == "?" else face.label, face.person_id is not None)


def _check(selection: Selection, gallery: Gallery | None) -> None:
    if not selection.needs_identity:
        return
    if gallery is None:
        raise ValueError("hiding only unknown faces, or keeping named people, needs a gallery")
    for name in sorted(selection.keep):
        gallery.person(name)  # an unknown name is an error (PersonNotFoundError), not a silently hidden person


def remaining_faces(pixels: np.ndarray, detectors: Sequence[DetectorName] = REFERENCE_DETECTORS) -> list[Box]:
    """Faces still detectable on ``pixels`` by any of ``detectors``: HOG with one upsample (faces from
    ~40 px), YuNet on the whole image (faces from ~20 px). A face found by several is listed once."""
    found: list[Box] = []
    for detector in detectors:
        if detector == "yunet":
            boxes = [d.box for d in detect_boxes(pixels, detector="yunet", max_side=max(pixels.shape[:2]))]
        else:
            boxes = [d.box for d in detect_boxes(pixels, detector=detector, upsample=1)]
        found += [box for box in boxes if not any(_centre_in(box, seen) for seen in found)]
    return found
