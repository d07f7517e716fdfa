"""What every command shares: the --db/--json options, output, progress bars and exit codes.

Exit codes: 0 success; 1 a negative answer (verify: no match, identify: nobody known);
2 usage error (also an --fmr outside the calibrated range, or a person's name that cannot be stored);
3 unreadable input; 4 face problem (none, several, low quality; also a partial enrollment);
5 gallery problem; 6 model problem; 7 an output (--out, --events, --crops...) that cannot be written.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..choices import DetectorName, Disclosure, ProfileName
from ..errors import (
    AccessError,
    DatasetError,
    FaceprintError,
    GalleryError,
    InvalidImageError,
    InvalidNameError,
    LowQualityError,
    ManyFacesError,
    ModelError,
    NoFaceError,
    OutputError,
    UnsupportedFMRError,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn, TaskID

    from ..gallery import Gallery
    from ..pipeline import BatchRunner, PipelineOptions

EXIT_NEGATIVE = 1
EXIT_USAGE = 2
EXIT_FACE = 4
EXIT_OUTPUT = 7

#: The one table from library errors to exit codes; the first class an error is an instance of wins.
EXIT_CODES: tuple[tuple[type[FaceprintError], int], ...] = (
    (UnsupportedFMRError, EXIT_USAGE),
    (InvalidNameError, EXIT_USAGE),
    (AccessError, EXIT_USAGE),
    (InvalidImageError, 3),
    (DatasetError, 3),
    (NoFaceError, EXIT_FACE),
    (ManyFacesError, EXIT_FACE),
    (LowQualityError, EXIT_FACE),
    (GalleryError, 5),
    (ModelError, 6),
    (OutputError, EXIT_OUTPUT),
)

#: Line width written to a pipe or a file: wide enough that no table cell or sentence is cut or wrapped.
PIPED_WIDTH = 10_000


def _rich_console(stderr: bool) -> Console:
    """A Rich console that is as wide as the terminal, and PIPED_WIDTH when its stream is not one (Rich's
    own default there is 80 columns, which cut tables written to a file). ``COLUMNS`` still overrides both."""
    from rich.console import Console, ConsoleDimensions

    class WideConsole(Console):
        @property
        def size(self) -> ConsoleDimensions:
            size = super().size
            piped = not self.is_terminal and self._width is None and "COLUMNS" not in os.environ
            return ConsoleDimensions(PIPED_WIDTH, size.height) if piped else size

        @size.setter
        def size(self, new_size: tuple[int, int]) -> None:
            self._width, self._height = new_size

    return WideConsole(stderr=stderr)


class _LazyConsole:
    """The Rich console of stdout or stderr, made (and Rich imported) at its first use: a command that prints
    no table, such as `faceprint serve`, does not pay for Rich's import (~40 ms of the service's start-up;
    BENCHMARKS.md, "Service start-up")."""

    def __init__(self, stderr: bool = False) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)

    def _made(self) -> Console:
        if self._console is None:
            object.__setattr__(self, "_console", _rich_console(self._stderr))
        return self._console  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._made(), name, value)

    # Special methods are looked up on the type, not through __getattr__: Rich's Live enters its console.
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._made().__exit__(*exc_info)


console: Console = _LazyConsole()  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="FACEPRINT_DB",
        help="Gallery: an SQLite file (default: per-user data dir), milvus://host:19530/collection, "
        "or a Milvus Lite file (milvus-lite:///path.db or *.milvus.db).",
        show_default=False,
    ),
]
FmrOption = Annotated[
    float | None,
    typer.Option(
        "--fmr",
        help="Operating false-match rate (default: the one the gallery was calibrated at, else 1e-3); "
        "it must lie in the calibrated range, which an error states.",
        show_default=False,
    ),
]
FpirOption = Annotated[
    float | None,
    typer.Option(
        "--fpir",
        help="False-positive identification rate: the chance that someone not enrolled is given a name, "
        "kept at this gallery's size (default: 1e-2). A rate the calibration cannot promise at this size "
        "answers 'uncertain' and says why.",
        show_default=False,
    ),
]
AnnotatedOutOption = Annotated[Path | None, typer.Option("--out", help="Annotated copy (single image only).")]
AttributesListOption = Annotated[
    str | None,
    typer.Option("--attributes", help="Also estimate these face attributes (e.g. age,gender,expression,pose)."),
]
DiscloseOption = Annotated[
    Disclosure,
    typer.Option(
        "--disclose",
        help="Show every score, each only as the calibration band it passes (e.g. fmr<=0.0001), or the decisions "
        "alone (against score-based attacks on the templates).",
    ),
]
DetectorOption = Annotated[
    DetectorName,
    typer.Option("--detector", help="Face detector (auto: HOG, then CNN when HOG finds none; yunet: fast)."),
]
PipelineDetectorOption = Annotated[
    DetectorName | None,
    typer.Option(
        "--detector",
        help="Face detector (auto: HOG, then CNN when HOG finds none; yunet: fast); default: the profile's.",
        show_default=False,
    ),
]
ProfileOption = Annotated[
    ProfileName | None,
    typer.Option(
        "--profile",
        help="Pipeline: accurate (YuNet, dlib's ResNet and SFace fused: the default for new galleries), fast "
        "(YuNet + dlib's ResNet as int8) or classic (HOG/CNN + dlib's ResNet, the former default); "
        "default: the gallery's model, else accurate.",
        show_default=False,
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Worker processes for batches (default: one per core).")
]

RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Run the pipeline on a Ray cluster: its address (host:6379, ray://host:10001) or `auto` "
        "(needs faceprint[ray] on every node and the photos at the same paths).",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(command: F) -> F:
    """Turn faceprint errors into a one-line message (or JSON) and the matching exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_output = bool(kwargs.get("json_output"))
        try:
            return command(*args, **kwargs)
        except FaceprintError as error:
            _print_error(type(error).__name__, str(error), json_output)
            raise typer.Exit(exit_code_for(error)) from None
        except OSError as error:  # a write the library did not wrap (the library reports unreadable inputs itself)
            _print_error("OutputError", f"{error.filename or ''}: {error.strerror or error}", json_output)
            raise typer.Exit(EXIT_OUTPUT) from None

    return wrapper  # type: ignore[return-value]


def exit_code_for(error: FaceprintError) -> int:
    """The exit code of a library error (see the module docstring; a test keeps the table complete)."""
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), 1)


def _print_error(kind: str, message: str, json_output: bool) -> None:
    if json_output:
        print_json({"error": kind, "message": message})
    else:
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def emit(data: Any, message: str, json_output: bool) -> None:
    """``data`` as JSON with --json, else the human ``message``."""
    if json_output:
        print_json(data)
    else:
        console.print(message)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _columns(*after_count: ProgressColumn) -> tuple[ProgressColumn, ...]:
    """A bar's columns: description, bar, done of total, ``after_count``, elapsed time and ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *after_count,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar with ETA on stderr; yields ``advance(n)``. Hidden for tiny batches."""
    if not enabled or total < 4:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(*_columns(), console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _rate_column() -> ProgressColumn:
    """Units finished per second (photos/s), once Rich has measured it."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:.1f}/s" if task.speed else "", style="progress.data.speed")

    return RateColumn()


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar with rate and ETA on stderr, driven by a library ``on_progress(description, done,
    total)`` callback (``faceprint.progress``): one bar per description, each gone when it is complete."""
    from rich.progress import Progress

    tasks: dict[str, TaskID] = {}
    with Progress(*_columns(_rate_column()), console=err_console, transient=True, disable=not enabled) as progress:

        def report(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], completed=done, total=total)

        yield report


def batch_runner(ray_address: str | None) -> BatchRunner:
    """Where a batch command runs the pipeline: worker processes here, or the Ray cluster at ``ray_address``."""
    from ..pipeline import process_files

    if ray_address is None:
        return process_files
    if importlib.util.find_spec("ray") is None:
        raise typer.BadParameter("needs Ray: pip install 'faceprint[ray]'", param_hint="--ray-address")
    from ..library.distributed import RayRunner

    return RayRunner(ray_address)


def pipeline_options(profile: ProfileName | None, detector: DetectorName | None) -> PipelineOptions:
    """The pipeline of ``profile`` (default: ``pipeline.DEFAULT_OPTIONS``), detecting with ``detector`` when given."""
    from ..profiles import profile_options  # here, not at the top: see faceprint.cli

    options = profile_options(profile)
    return options if detector is None else dataclasses.replace(options, detector=detector)


def warn_if_empty(gallery: Gallery, consequence: str) -> None:
    if not gallery.template_count():
        err_console.print(f"[yellow]warning:[/] the gallery {gallery.path} is empty: {consequence}")


def warn_if_stale(gallery: Gallery, db: str | Path | None) -> None:
    """Say once that identification decided with the size bound, because the gallery's own measurement is
    missing or stale (a short run does not wait for it to be made anew), and how to refresh it."""
    why = gallery.stale_measurement()
    if why is not None:
        option = f" --db {db}" if db is not None else ""
        err_console.print(
            f"[yellow]note:[/] the gallery {gallery.path} decided with the bound for its size, strict (fewer names), "
            f"not with its own calibration: {why}. Refresh it with: faceprint calibrate --gallery{option}",
            highlight=False,
            soft_wrap=True,
        )


def open_gallery(
    db: str | Path | None,
    *,
    create: bool = True,
    profile: ProfileName | None = None,
    detector: DetectorName | None = None,
    **options: Any,
) -> Gallery:
    """``Gallery(db, create=create, **options)`` with the pipeline of ``profile`` (default: the one of the
    gallery's model) and ``detector`` (default: that pipeline's), that shows building its search index as a
    progress bar on stderr (only in a terminal, and from 10,000 templates: smaller builds take a few seconds).
    Commands that only read a gallery pass ``create=False``: a mistyped --db is an error, not a new gallery. A
    command does not measure a large gallery in the background (``measure_in_background=False``): the measurement
    would be dropped when the command ends; ``warn_if_stale`` tells the user instead."""
    from rich.progress import MofNCompleteColumn, Progress

    bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=err_console, transient=True)
    tasks: dict[str, TaskID] = {}

    def on_progress(description: str, done: int, total: int) -> None:
        if total < 10_000 or not err_console.is_terminal:
            return
        if not tasks:
            bar.start()
        if description not in tasks:
            tasks[description] = bar.add_task(description, total=total)
        bar.update(tasks[description], completed=done)
        if done >= total:
            bar.remove_task(tasks.pop(description))
            if not tasks:
                bar.stop()

    from ..gallery import Gallery  # here, not at the top: see faceprint.cli

    pipeline = pipeline_options(profile, detector) if profile is not None else None
    gallery = Gallery(
        db,
        options=pipeline,
        on_progress=on_progress,
        create=create,
        measure_in_background=False,
        **options,
    )
    if profile is None and detector is not None:  # the gallery's own pipeline, detecting with --detector
        gallery.options = dataclasses.replace(gallery.options, detector=detector)
    return gallery
