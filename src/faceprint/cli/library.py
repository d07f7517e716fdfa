"""`faceprint scan`: a photo library into the gallery, incrementally."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DbOption,
    JsonOption,
    ProfileOption,
    WorkersOption,
    console,
    handles_errors,
    open_gallery,
    print_json,
    progress_reporter,
)


def register(app: typer.Typer) -> None:
    app.command()(scan)


@handles_errors
def scan(
    folder: Annotated[Path, typer.Argument(help="The photo library: every image under it, recursively.")],
    profile: ProfileOption = None,
    workers: WorkersOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Find every face of every photo under FOLDER and store it (template, box, quality, thumbnail) in the
    gallery. Only new and changed photos are processed; photos gone are forgotten. Safe to interrupt."""
    from ..library import scan as scan_library

    with open_gallery(db, profile=profile) as gallery, progress_reporter(not json_output) as on_progress:
        summary = scan_library(gallery, folder, workers=workers, on_progress=on_progress)
    if json_output:
        print_json(summary.to_dict())
        return
    console.print(
        f"{summary.photos} photos in {summary.folder}: {summary.new} new, {summary.changed} changed, "
        f"{summary.moved} moved, {summary.unchanged} unchanged, {summary.deleted} gone; "
        f"{summary.faces} faces stored ({summary.seconds:.1f} s)"
    )
    for _, error in summary.errors:
        console.print(f"[yellow]skipped:[/] {error}", highlight=False)
