"""Video speed and accuracy: tracking + identity per track vs detect-and-embed-every-frame, and anonymization leaks.

    flock /tmp/faceprint-bench.lock python bench/video_speed.py [--frames 150]

Clips: 1280x720 synthetic clips made from the committed real photos (tests/video_clips.py:
a face walking behind a pillar past a stranger, two people crossing), written to mp4 and
decoded back, so decoding is timed too and who is where is known exactly; plus the two real
videos of ../shared/data/video when present (no ground truth: speed and track counts only).

For each clip, faceprint's ``VideoProcessor`` runs with identification on at detection
intervals 1, 5 and 10, and the naive loop runs in the same process: every frame detected,
every face embedded and identified (what face_recognition's webcam examples do), with the
same detector settings and embedding runtime, so the ratio isolates what tracking saves.
Identity accuracy counts, over every frame where a person's face is visible: frames where a
shown box covers the face and carries the right name (correct), a wrong name (wrong), or no
decision yet (pending), or no box on it (missed); flicker counts changes of the name shown on
a person's face from one decided frame to the next.
Anonymization leak rate: the share of output frames on which HOG with one upsample (finer than
the anonymizer's own detector) still finds a face.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.video_clips import Clip, crossing_clip, make_gallery, occlusion_clip  # noqa: E402

from faceprint import Gallery  # noqa: E402
from faceprint.choices import DetectorName, ProfileName  # noqa: E402
from faceprint.pipeline import find_faces  # noqa: E402
from faceprint.privacy import FAST, THOROUGH, YUNET, anonymize_video, remaining_faces  # noqa: E402
from faceprint.profiles import PROFILES  # noqa: E402
from faceprint.types import Box  # noqa: E402
from faceprint.video import VideoOptions, VideoProcessor, open_source  # noqa: E402
from faceprint.video.source import Frame  # noqa: E402

SHARED_VIDEO = Path(os.environ.get("FACEPRINT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "video"
INTERVALS = (1, 5, 10)
#: The anonymizer's modes (faceprint anonymize --mode).
ANONYMIZERS: dict[str, VideoOptions] = {"yunet (default)": YUNET, "thorough": THOROUGH, "fast": FAST}
#: The detectors that look for faces left on anonymized frames, each on its own.
REFERENCES: tuple[DetectorName, ...] = ("hog", "yunet")


@dataclass
class Score:
    correct: int = 0
    wrong: int = 0
    pending: int = 0
    missed: int = 0
    flicker: int = 0


@dataclass
class Run:
    frames: int
    seconds: float
    detections: int
    embeddings: int
    score: Score | None


def shown(labels_per_frame: list[list[tuple[Box, str]]], clip: Clip) -> Score:
    """Score the (box, label) pairs shown on each frame against the clip's ground truth."""
    score = Score()
    for name, boxes in clip.truth.items():
        names_shown = []
        for index, truth in enumerate(boxes):
            if truth is None:
                continue
            best = max(labels_per_frame[index], key=lambda item: item[0].iou(truth), default=None)
            if best is None or best[0].iou(truth) < 0.4:
                score.missed += 1
                continue
            if best[1] == "?":
                score.pending += 1
                continue
            names_shown.append(best[1])
            stranger = name not in _ENROLLED_NAMES and best[1].startswith("unknown")
            if best[1] == name or stranger:
                score.correct += 1
            else:
                score.wrong += 1
        # Flicker: how often the name shown on this person's face changes.
        score.flicker += sum(a != b for a, b in itertools.pairwise(names_shown))
    return score


_ENROLLED_NAMES = {"Kit Harington", "Rose Leslie"}


def run_tracked(path: Path, gallery: Gallery, every: int, clip: Clip | None, detector: DetectorName = "hog") -> Run:
    with open_source(path) as source:
        processor = VideoProcessor(gallery, VideoOptions(detect_every=every, detector=detector), fps=source.fps)
        per_frame = []
        start = time.perf_counter()
        for result in processor.run(source):
            per_frame.append([(f.box, f.label) for f in result.faces if not f.coasting])
        processor.finish()
        seconds = time.perf_counter() - start
    embeddings = processor.resolver.embeddings if processor.resolver else 0
    return Run(len(per_frame), seconds, processor.detections_run, embeddings, shown(per_frame, clip) if clip else None)


def run_naive(path: Path, gallery: Gallery, clip: Clip | None) -> Run:
    """Detect, embed and identify every face of every frame (no tracking), same detector settings."""
    options = VideoOptions()
    pipeline = dataclasses.replace(
        gallery.options, detector="hog", upsample=options.detect_upsample, max_side=options.detect_max_side
    )
    per_frame, embeddings = [], 0
    with open_source(path) as source:
        start = time.perf_counter()
        for frame in source:
            faces = find_faces([frame.pixels], pipeline)[0]
            embeddings += len(faces)
            named = gallery.identify_faces(faces)
            per_frame.append([(n.face.box, n.name if n.match else "unknown") for n in named])
        seconds = time.perf_counter() - start
    return Run(len(per_frame), seconds, len(per_frame), embeddings, shown(per_frame, clip) if clip else None)


def leak_rate(frames: Iterator[Frame], fps: float, options: VideoOptions) -> tuple[int, dict[str, int], float]:
    """(frames, frames with a face left per reference detector, seconds spent anonymizing) for the anonymizer
    (blur)."""

    class Source:
        def __init__(self) -> None:
            self.fps, self.name = fps, "bench"

        def __iter__(self) -> Iterator[Frame]:
            return frames

    out: list[np.ndarray] = []
    start = time.perf_counter()
    anonymize_video(Source(), out.append, options=options)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    leaked = {detector: sum(1 for pixels in out if remaining_faces(pixels, (detector,))) for detector in REFERENCES}
    return len(out), leaked, seconds


def frames_of_clip(clip: Clip) -> Iterator[Frame]:
    return (Frame(i, i / clip.fps, pixels) for i, pixels in enumerate(clip.frames))


def frames_of_file(path: Path) -> Iterator[Frame]:
    with open_source(path) as source:
        yield from source


def fps_row(label: str, run: Run, clip_fps: float) -> str:
    fps = run.frames / run.seconds
    score = run.score
    accuracy = "–"
    if score:
        decided = score.correct + score.wrong
        accuracy = (
            f"{score.correct / max(decided, 1):.1%} ({score.correct}/{decided}) | {score.wrong} | {score.pending} | "
            f"{score.missed} | {score.flicker}"
        )
    else:
        accuracy = "– | – | – | – | –"
    counts = f"{run.frames} | {fps:.1f} | {fps / clip_fps:.2f}x | {run.detections} | {run.embeddings}"
    return f"| {label} | {counts} | {accuracy} |"


def leak_row(label: str, frames: int, leaked: dict[str, int], seconds: float) -> str:
    rates = " | ".join(f"{leaked[detector]} ({leaked[detector] / frames:.1%})" for detector in REFERENCES)
    return f"| {label} | {frames} | {rates} | {frames / seconds:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="Frames per synthetic clip (25 fps).")
    parser.add_argument("--parts", nargs="+", choices=("speed", "leaks"), default=["speed", "leaks"])
    parser.add_argument("--detectors", nargs="+", choices=("hog", "yunet"), default=["hog", "yunet"])
    parser.add_argument("--intervals", nargs="+", type=int, default=list(INTERVALS))
    parser.add_argument("--no-naive", action="store_true", help="Skip the detect-and-embed-every-frame loop.")
    parser.add_argument(
        "--profiles",
        nargs="+",
        choices=list(PROFILES),
        default=["accurate"],
        help="Speed: the galleries' pipelines (accurate: the default; fast and classic: dlib's ResNet).",
    )
    parser.add_argument("--anonymizers", nargs="+", choices=list(ANONYMIZERS), default=list(ANONYMIZERS))
    parser.add_argument("--only-real", action="store_true", help="Leaks: only the real videos.")
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", file=sys.stderr)
    clips = {
        "occlusion 1280x720": occlusion_clip(scale=2, frames=args.frames),
        "crossing 1280x720": crossing_clip(scale=2, frames=args.frames),
    }
    find_faces([clips["crossing 1280x720"].frames[0]])  # load every model before timing
    if "speed" in args.parts:
        for profile in args.profiles:
            speed(clips, args.detectors, args.intervals, not args.no_naive, profile)
    if "leaks" in args.parts:
        leaks(args.frames, clips, {name: ANONYMIZERS[name] for name in args.anonymizers}, args.only_real)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", file=sys.stderr)


def speed(
    clips: dict[str, Clip],
    detectors: Sequence[DetectorName],
    intervals: Sequence[int],
    naive: bool,
    profile: ProfileName = "accurate",
) -> None:
    work = Path(tempfile.mkdtemp(prefix="faceprint-video-bench-"))
    gallery = make_gallery(work / "gallery.db", PROFILES[profile])
    # Rows name the gallery's profile unless it is the default one.
    shown_profile = "" if profile == "accurate" else f", {profile} gallery"
    paths = {name: clip.write(work / f"{name.split()[0]}.mp4") for name, clip in clips.items()}
    print(
        "| clip, method | frames | frames/s | real-time factor | detector runs | faces embedded | "
        "identity accuracy (decided frames) | wrong | pending | missed | flicker |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for name, clip in clips.items():
        for detector, every in itertools.product(detectors, intervals):
            print(f"  {name} {detector} every {every} ...", file=sys.stderr, flush=True)
            run = run_tracked(paths[name], gallery, every, clip, detector)
            label = f"{name}, tracked, {detector}{shown_profile}, detect every {every}"
            print(fps_row(label, run, clip.fps), flush=True)
        if naive:
            print(f"  {name} naive ...", file=sys.stderr, flush=True)
            run = run_naive(paths[name], gallery, clip)
            print(fps_row(f"{name}, naive: detect + embed every frame", run, clip.fps), flush=True)
    for video in sorted(SHARED_VIDEO.glob("*.mp4")):
        with open_source(video) as source:
            fps, size = source.fps, f"{source.width}x{source.height}"
        print(f"  {video.name} ...", file=sys.stderr, flush=True)
        for detector in detectors:
            run = run_tracked(video, gallery, 5, None, detector)
            label = f"{video.name} ({size}, real), tracked, {detector}{shown_profile}, detect every 5"
            print(fps_row(label, run, fps), flush=True)
        if naive:
            run = run_naive(video, gallery, None)
            print(fps_row(f"{video.name} ({size}, real), naive", run, fps), flush=True)


def leaks(frame_count: int, clips: dict[str, Clip], anonymizers: dict[str, VideoOptions], only_real: bool) -> None:
    print(
        "\n| clip | anonymizer | frames | frames with a face left, HOG (leak rate) | frames with a face left, YuNet "
        "(leak rate) | anonymizing frames/s |\n| --- | --- | --- | --- | --- | --- |"
    )
    sources: dict[str, tuple[Callable[[], Iterator[Frame]], float]] = {}
    synthetic = {
        "occlusion 640x360": occlusion_clip(frames=frame_count),
        "crossing 640x360": crossing_clip(frames=frame_count),
        "occlusion 1280x720": clips["occlusion 1280x720"],
    }
    for name, clip in {} if only_real else synthetic.items():
        raw = sum(1 for pixels in clip.frames if remaining_faces(pixels))
        sources[f"{name} (synthetic; {raw} frames with a detectable face before)"] = (
            functools.partial(frames_of_clip, clip),
            clip.fps,
        )
    for video in sorted(SHARED_VIDEO.glob("*.mp4")):
        raw = sum(1 for frame in frames_of_file(video) if remaining_faces(frame.pixels))
        with open_source(video) as source:
            sources[f"{video.name} (real; {raw} frames with a detectable face before)"] = (
                functools.partial(frames_of_file, video),
                source.fps,
            )
    for name, (frames, fps) in sources.items():
        for label, options in anonymizers.items():
            print(f"  leaks {name} {label} ...", file=sys.stderr, flush=True)
            count, leaked, seconds = leak_rate(frames(), fps, options)
            print(f"| {name} {leak_row(label, count, leaked, seconds)}", flush=True)


if __name__ == "__main__":
    main()
