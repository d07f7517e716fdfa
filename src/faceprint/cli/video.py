"""The video commands: video (track and identify), anonymize (hide faces), liveness (blink/turn challenge)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..choices import AnonymizeMode, Challenge, DetectorName, Method
from .common import (
    EXIT_NEGATIVE,
    DbOption,
    FpirOption,
    JsonOption,
    console,
    emit,
    err_console,
    handles_errors,
    open_gallery,
    print_json,
    warn_if_empty,
    warn_if_stale,
)

if TYPE_CHECKING:
    from ..gallery import Gallery
    from ..privacy import AnonymizedFiles, Selection
    from ..video import FrameResult, FrameSource, TrackEvent, VideoProcessor
    from ..video.output import VideoWriter

InputArgument = Annotated[
    str, typer.Argument(help="Video file, folder or glob of frames, camera index (0) or stream URL (rtsp://...).")
]
EveryOption = Annotated[
    int, typer.Option("--every", min=1, help="Run the face detector every N frames (sooner on motion or a lost face).")
]
VideoDetectorOption = Annotated[
    DetectorName | None,
    typer.Option("--detector", help="Face detector (default: the video default, YuNet; hog: dlib's HOG)."),
]
EventsOption = Annotated[
    Path | None, typer.Option("--events", help="Event timeline: .jsonl (one line per track, live) or .json.")
]
AnonymizeInput = Annotated[
    str, typer.Argument(help="A photo, a folder of photos (each anonymized), or a video / camera / stream.")
]
AnonymizedOutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Output file (folder for a folder of photos); default: NAME.anonymized.EXT."),
]
MethodOption = Annotated[Method, typer.Option("--method", help="How to hide faces.")]
OnlyUnknownOption = Annotated[
    bool, typer.Option("--only-unknown", help="Hide only faces not recognised in the gallery.")
]
ExceptOption = Annotated[
    list[str] | None, typer.Option("--except", help="Leave this enrolled person visible (repeatable).")
]
AnonymizeModeOption = Annotated[
    AnonymizeMode,
    typer.Option(
        "--mode",
        help="How videos are searched for faces: yunet (whole frame, faces from ~20 px), thorough (HOG, slow) "
        "or fast (HOG, faces over ~110 px at 720p).",
    ),
]
FastOption = Annotated[bool, typer.Option("--fast", help="Same as --mode fast.")]


def register(app: typer.Typer) -> None:
    for command in (video, anonymize, liveness):
        app.command()(command)


@handles_errors
def video(
    source: InputArgument,
    out: Annotated[Path | None, typer.Option("--out", help="Annotated copy: boxes, names, track ids.")] = None,
    events: EventsOption = None,
    crops: Annotated[Path | None, typer.Option("--crops", help="Folder for each track's best-shot crop.")] = None,
    every: EveryOption = 5,
    detector: VideoDetectorOption = None,
    no_identify: Annotated[bool, typer.Option("--no-identify", help="Track faces without naming them.")] = False,
    fpir: FpirOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Track and identify the faces of a video or stream; write a timeline of who appears when."""
    from ..video import IdentityOptions, Timeline, VideoOptions, VideoProcessor, open_source, timeline_summary
    from ..video.output import VideoWriter

    options = VideoOptions(detect_every=every, identify=not no_identify, identity=IdentityOptions(fpir=fpir))
    options = dataclasses.replace(options, detector=detector or options.detector)  # None: the library's default
    with contextlib.ExitStack() as stack:
        gallery = None if no_identify else _naming_gallery(stack, db)
        frames = stack.enter_context(open_source(source))
        timeline = stack.enter_context(Timeline(events)) if events else None
        on_event = timeline.line if timeline else None
        processor = VideoProcessor(gallery, options, fps=frames.fps, on_event=on_event, crops_dir=crops)
        writer = stack.enter_context(VideoWriter(out, frames.fps)) if out else None
        found = _run(processor, frames, writer, not json_output)
        summary = timeline_summary(found, frames, processor)
        if timeline:
            timeline.finish(summary)
    _report(found, summary, json_output)


def _naming_gallery(stack: contextlib.ExitStack, db: str | None) -> Gallery:
    """The gallery that names the faces, open for the rest of the command; a warning when it is empty, and a note
    when it decides with the bound for its size (the run's rule is fixed at its start: it would not use a
    measurement made meanwhile)."""
    gallery = stack.enter_context(open_gallery(db))
    warn_if_empty(gallery, "every face will be unknown")
    warn_if_stale(gallery, db)
    return gallery


def _run(processor: VideoProcessor, frames: FrameSource, writer: VideoWriter | None, show: bool) -> list[TrackEvent]:
    """Every frame through ``processor`` (and ``writer``), until the end or Ctrl-C; then every event."""
    with _progress(frames, show) as tick:
        for result in _until_interrupted(processor.run(frames)):
            if writer:
                writer.write(result.annotated())
            tick(result)
    return processor.finish()


def _until_interrupted(results: Iterator[FrameResult]) -> Iterator[FrameResult]:
    """Stop cleanly on Ctrl-C (how a stream is ended), keeping the events found so far."""
    try:
        yield from results
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted:[/] finishing the timeline")


@contextlib.contextmanager
def _progress(source: FrameSource, enabled: bool) -> Iterator[Callable[[FrameResult], None]]:
    """A bar with ETA for files; a live frame counter with FPS for streams and cameras."""
    if not enabled:
        yield lambda result: None
        return
    columns: list[ProgressColumn] = [
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


def _report(events: list[TrackEvent], summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(summary)
        return
    table = Table("track", "who", "first seen", "last seen", "best frame", "similarity", title=summary["source"])
    for e in events:
        similarity = f"{e.similarity:.3f}" if e.similarity is not None else "-"
        table.add_row(
            str(e.track_id),
            e.label if e.event == "track" else f"{e.previous_label} -> {e.label} (revised)",
            f"{e.first_time:.2f}s (#{e.first_frame})",
            f"{e.last_time:.2f}s (#{e.last_frame})",
            str(e.best_frame if e.best_frame is not None else "-"),
            similarity,
        )
    console.print(table)
    tracks = sum(e.event == "track" for e in events)
    console.print(
        f"{tracks} face track(s), {len(events) - tracks} revision(s); "
        f"detector ran on {summary['detections_run']} frame(s)"
    )


@handles_errors
def anonymize(
    source: AnonymizeInput,
    out: AnonymizedOutOption = None,
    method: MethodOption = "blur",
    only_unknown: OnlyUnknownOption = False,
    keep: ExceptOption = None,
    mode: AnonymizeModeOption = "yunet",
    fast: FastOption = False,
    check: Annotated[bool, typer.Option("--check", help="Re-detect faces on the output and report any left.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Blur, pixelate or mask faces in photos and videos (all, only unknown, or all but named people)."""
    from ..privacy import Selection, anonymize_photos, is_photos

    if only_unknown and keep:
        raise typer.BadParameter("use either --only-unknown or --except, not both")
    selection = Selection(only_unknown=only_unknown, keep=frozenset(keep or ()))
    with open_gallery(db) if selection.needs_identity else contextlib.nullcontext() as gallery:
        if is_photos(Path(source)):
            photos = Path(source)
            report = anonymize_photos(photos, out, method=method, selection=selection, gallery=gallery, check=check)
        else:
            report = _anonymize_video(
                source, out, method, selection, gallery, "fast" if fast else mode, check, not json_output
            )
    _report_anonymized(report, json_output)


def _anonymize_video(
    source: str,
    out: Path | None,
    method: Method,
    selection: Selection,
    gallery: Gallery | None,
    mode: AnonymizeMode,
    check: bool,
    show: bool,
) -> AnonymizedFiles:
    from ..privacy import ANONYMIZERS, anonymize_frames
    from ..video import open_source

    with open_source(source) as frames, _progress(frames, show) as tick:
        options = ANONYMIZERS[mode]
        return anonymize_frames(
            frames,
            out,
            method=method,
            selection=selection,
            gallery=gallery,
            options=options,
            check=check,
            on_frame=tick,
        )


def _report_anonymized(report: AnonymizedFiles, json_output: bool) -> None:
    message = f"anonymized {report.frames} frame(s)/photo(s) -> {report.out}"
    if report.leaks is not None:
        shown = ", ".join(map(str, report.leaks[:10])) + (", ..." if len(report.leaks) > 10 else "")
        message += f"; a face meant to be hidden is still detectable in {len(report.leaks)} of them" + (
            f" ({'frames' if report.tracks is not None else 'photos'} {shown})" if report.leaks else ""
        )
    emit(report.to_dict(), message, json_output)
    if report.frames_with_faces_left:
        raise typer.Exit(EXIT_NEGATIVE)


@handles_errors
def liveness(
    clip: Annotated[str, typer.Argument(help="A short clip: video file, folder of frames, or camera index.")],
    challenge: Annotated[Challenge, typer.Option("--challenge", help="What the person was asked.")],
    mirrored: Annotated[bool, typer.Option("--mirrored", help="The clip is mirrored (selfie preview).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Blink / head-turn challenge on a clip: stops a still photo, NOT a replayed video or a mask."""
    from ..liveness import check_liveness

    result = check_liveness(clip, challenge, mirrored=mirrored)
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    emit(result.to_dict(), f"{verdict} {challenge}: {result.reason}", json_output)
    if not result.passed:
        raise typer.Exit(EXIT_NEGATIVE)
