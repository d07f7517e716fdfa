"""The video commands: video (track and identify), anonymize (hide faces), liveness (blink/turn challenge)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .. import draw
from ..errors import InvalidImageError
from ..gallery import Gallery
from ..image import IMAGE_SUFFIXES, iter_image_files
from ..liveness import CHALLENGES, check_liveness
from ..match import DEFAULT_FMR
from ..privacy import FAST, METHODS, THOROUGH, Selection, anonymize_image, anonymize_video, remaining_faces
from ..video import FrameResult, FrameSource, TrackEvent, VideoOptions, VideoProcessor, open_source
from ..video.output import VideoWriter
from .common import EXIT_NEGATIVE, DbOption, JsonOption, console, emit, err_console, handles_errors, print_json

InputArgument = Annotated[
    str, typer.Argument(help="Video file, folder or glob of frames, camera index (0) or stream URL (rtsp://...).")
]
EveryOption = Annotated[
    int, typer.Option("--every", min=1, help="Run the face detector every N frames (sooner on motion or a lost face).")
]


def register(app: typer.Typer) -> None:
    for command in (video, anonymize, liveness):
        app.command()(command)


@handles_errors
def video(
    source: InputArgument,
    out: Annotated[Path | None, typer.Option("--out", help="Annotated copy: boxes, names, track ids.")] = None,
    events: Annotated[
        Path | None, typer.Option("--events", help="Event timeline: .jsonl (one line per track, live) or .json.")
    ] = None,
    crops: Annotated[Path | None, typer.Option("--crops", help="Folder for each track's best-shot crop.")] = None,
    every: EveryOption = 5,
    no_identify: Annotated[bool, typer.Option("--no-identify", help="Track faces without naming them.")] = False,
    fmr: Annotated[float, typer.Option("--fmr", min=1e-5, max=0.1, help="Operating false-match rate.")] = DEFAULT_FMR,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Track and identify the faces of a video or stream; write a timeline of who appears when."""
    options = VideoOptions(detect_every=every, identify=not no_identify)
    options = dataclasses.replace(options, identity=dataclasses.replace(options.identity, fmr=fmr))
    with contextlib.ExitStack() as stack:
        gallery = None if no_identify else stack.enter_context(Gallery(db))
        if gallery is not None and not gallery.people():
            err_console.print(f"[yellow]warning:[/] the gallery {gallery.path} is empty: every face will be unknown")
        frames = stack.enter_context(open_source(source))
        timeline = _timeline(events, stack)
        processor = VideoProcessor(gallery, options, fps=frames.fps, on_event=timeline.line, crops_dir=crops)
        writer = stack.enter_context(VideoWriter(out, frames.fps)) if out else None
        with _progress(frames, not json_output) as tick:
            for result in _until_interrupted(processor.run(frames)):
                if writer:
                    writer.write(_annotated(result))
                tick(result)
        found = processor.finish()
        timeline.close(found, frames, processor)
    _report(found, frames, processor, json_output)


class _Timeline:
    """Events as JSON lines written as each track ends (live for streams), or one JSON file at the end."""

    def __init__(self, path: Path | None, handle: IO[str] | None) -> None:
        self.path, self.handle = path, handle

    def line(self, event: TrackEvent) -> None:
        if self.handle is not None and self.path is not None and self.path.suffix.lower() != ".json":
            self.handle.write(json.dumps(event.to_dict()) + "\n")
            self.handle.flush()

    def close(self, events: list[TrackEvent], source: FrameSource, processor: VideoProcessor) -> None:
        if self.handle is not None and self.path is not None and self.path.suffix.lower() == ".json":
            json.dump(_summary(events, source, processor), self.handle, indent=2)


def _timeline(path: Path | None, stack: contextlib.ExitStack) -> _Timeline:
    if path is None:
        return _Timeline(None, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _Timeline(path, stack.enter_context(path.open("w", encoding="utf-8")))


def _summary(events: list[TrackEvent], source: FrameSource, processor: VideoProcessor) -> dict:
    return {
        "source": source.name,
        "fps": round(source.fps, 3),
        "detections_run": processor.detections_run,
        "events": [event.to_dict() for event in events],
    }


def _until_interrupted(results: Iterator[FrameResult]) -> Iterator[FrameResult]:
    """Stop cleanly on Ctrl-C (how a stream is ended), keeping the events found so far."""
    try:
        yield from results
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted:[/] finishing the timeline")


def _annotated(result: FrameResult):
    shown = [face for face in result.faces if not face.coasting]
    labels = [f"#{face.track_id} {face.label}" for face in shown]
    return draw.annotate_boxes(
        result.frame.pixels, [f.box for f in shown], labels, [f.person_id is not None for f in shown]
    )


@contextlib.contextmanager
def _progress(source: FrameSource, enabled: bool) -> Iterator[Callable[[FrameResult], None]]:
    """A bar with ETA for files; a live frame counter with FPS for streams and cameras."""
    if not enabled:
        yield lambda result: None
        return
    columns = [
        TextColumn("{task.description}"),
        TextColumn("{task.fields[faces]} faces"),
        TextColumn("{task.fields[fps]:.1f} fps"),
    ]
    if source.frame_count:
        columns[1:1] = [
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        ]
    else:
        columns[1:1] = [TextColumn("frame {task.completed}"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(source.name, total=source.frame_count, faces=0, fps=0.0)
        start = time.monotonic()

        def tick(result: FrameResult) -> None:
            done = result.frame.index + 1
            fps = done / max(time.monotonic() - start, 1e-6)
            progress.update(task, completed=done, faces=len(result.faces), fps=fps)

        yield tick


def _report(events: list[TrackEvent], source: FrameSource, processor: VideoProcessor, json_output: bool) -> None:
    if json_output:
        print_json(_summary(events, source, processor))
        return
    table = Table("track", "who", "first seen", "last seen", "best frame", "similarity", title=source.name)
    for e in events:
        similarity = f"{e.similarity:.3f}" if e.similarity is not None else "-"
        table.add_row(
            str(e.track_id),
            e.label,
            f"{e.first_time:.2f}s (#{e.first_frame})",
            f"{e.last_time:.2f}s (#{e.last_frame})",
            str(e.best_frame if e.best_frame is not None else "-"),
            similarity,
        )
    console.print(table)
    console.print(f"{len(events)} face track(s); detector ran on {processor.detections_run} frame(s)")


@handles_errors
def anonymize(
    source: Annotated[
        str, typer.Argument(help="A photo, a folder of photos (each anonymized), or a video / camera / stream.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output file (folder for a folder of photos); default: NAME.anonymized.EXT."),
    ] = None,
    method: Annotated[str, typer.Option("--method", help=f"How to hide faces: {', '.join(METHODS)}.")] = "blur",
    only_unknown: Annotated[
        bool, typer.Option("--only-unknown", help="Hide only faces not recognised in the gallery.")
    ] = False,
    keep: Annotated[
        list[str] | None, typer.Option("--except", help="Leave this enrolled person visible (repeatable).")
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="Several times faster, but only for faces over ~110 px (at 720p); default: thorough."
        ),
    ] = False,
    check: Annotated[bool, typer.Option("--check", help="Re-detect faces on the output and report any left.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Blur, pixelate or mask faces in photos and videos (all, only unknown, or all but named people)."""
    if method not in METHODS:
        raise typer.BadParameter(f"must be one of {', '.join(METHODS)}", param_hint="--method")
    if only_unknown and keep:
        raise typer.BadParameter("use either --only-unknown or --except, not both")
    selection = Selection(only_unknown=only_unknown, keep=frozenset(keep or ()))
    with contextlib.ExitStack() as stack:
        gallery = stack.enter_context(Gallery(db)) if selection.needs_identity else None
        if gallery is not None and keep:
            for name in keep:
                gallery.person(name)  # an unknown name is an error, not a silently blurred person
        path = Path(source)
        if path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir():
            report = _anonymize_photos(path, out, method, selection, gallery, check)
        else:
            report = _anonymize_video(source, out, method, selection, gallery, fast, check, json_output)
    leaks = report.get("frames_with_faces_left")
    message = f"anonymized {report['frames']} frame(s)/photo(s) -> {report['out']}"
    if leaks is not None:
        message += f"; faces still detectable in {leaks} of them"
    emit(report, message, json_output)
    if leaks:
        raise typer.Exit(EXIT_NEGATIVE)


def _anonymize_photos(path: Path, out: Path | None, method, selection, gallery, check: bool) -> dict:
    photos = iter_image_files(path) if path.is_dir() else [path]
    if not photos:
        raise InvalidImageError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    if path.is_dir():
        target_dir = out or path.with_name(path.name + "-anonymized")
        targets = [target_dir / p.relative_to(path) for p in photos]
    else:
        targets = [out or path.with_name(f"{path.stem}.anonymized{path.suffix}")]
    faces = left = 0
    for photo, target in zip(photos, targets):
        result = anonymize_image(photo, method=method, selection=selection, gallery=gallery)
        draw.save(result.pixels, target)
        faces += sum(result.hidden)
        left += bool(check and remaining_faces(result.pixels))
    report = {
        "out": str(targets[0] if len(targets) == 1 else targets[0].parent),
        "frames": len(photos),
        "hidden": faces,
    }
    return report | ({"frames_with_faces_left": left} if check else {})


def _anonymize_video(source: str, out, method, selection, gallery, fast: bool, check: bool, json_output: bool) -> dict:
    frames = open_source(source)
    target = out or Path(f"{Path(source).stem if not frames.live else 'stream'}.anonymized.mp4")
    left = 0
    with frames, VideoWriter(target, frames.fps) as writer, _progress(frames, not json_output) as tick:

        def write(pixels) -> None:
            nonlocal left
            writer.write(pixels)
            left += bool(check and remaining_faces(pixels))

        options = FAST if fast else THOROUGH
        summary = anonymize_video(
            frames, write, method=method, selection=selection, gallery=gallery, options=options, on_frame=tick
        )
    report = {"out": str(target), "frames": summary.frames, "tracks": summary.tracks, "hidden": summary.hidden_boxes}
    return report | ({"frames_with_faces_left": left} if check else {})


@handles_errors
def liveness(
    clip: Annotated[str, typer.Argument(help="A short clip: video file, folder of frames, or camera index.")],
    challenge: Annotated[str, typer.Option("--challenge", help=f"What the person was asked: {', '.join(CHALLENGES)}.")],
    mirrored: Annotated[bool, typer.Option("--mirrored", help="The clip is mirrored (selfie preview).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Blink / head-turn challenge on a clip: stops a still photo, NOT a replayed video or a mask."""
    if challenge not in CHALLENGES:
        raise typer.BadParameter(f"must be one of {', '.join(CHALLENGES)}", param_hint="--challenge")
    result = check_liveness(clip, challenge, mirrored=mirrored)  # type: ignore[arg-type]
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    emit(result.to_dict(), f"{verdict} {challenge}: {result.reason}", json_output)
    if not result.passed:
        raise typer.Exit(EXIT_NEGATIVE)
