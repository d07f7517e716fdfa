"""`faceprint analyze`: age, gender, expression and head pose of every face."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..choices import ATTRIBUTES, AttributeName, check_names
from .common import (
    EXIT_FACE,
    AnnotatedOutOption,
    DetectorOption,
    JsonOption,
    WorkersOption,
    console,
    handles_errors,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:
    from ..pipeline import ImageResult
    from ..types import Face

ALL_ATTRIBUTES = ",".join(ATTRIBUTES)
AttributesOption = Annotated[
    str, typer.Option("--attributes", help=f"Comma-separated attributes to estimate, from: {','.join(ATTRIBUTES)}.")
]


def register(app: typer.Typer) -> None:
    app.command()(analyze)


def parse_attributes(text: str) -> tuple[AttributeName, ...]:
    """``--attributes`` as checked names; a usage error names any unknown one."""
    try:
        names = check_names(part for part in text.split(",") if part.strip())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--attributes") from None
    if not names:
        raise typer.BadParameter(f"name at least one of {', '.join(ATTRIBUTES)}", param_hint="--attributes")
    return names


@handles_errors
def analyze(
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    attributes: AttributesOption = ALL_ATTRIBUTES,
    out: AnnotatedOutOption = None,
    detector: DetectorOption = "auto",
    workers: WorkersOption = None,
    json_output: JsonOption = False,
) -> None:
    """Estimate apparent age, gender, expression and head pose of every face (appearance-based guesses)."""
    from .. import draw
    from ..image import image_files
    from ..pipeline import PipelineOptions, process_files

    options = PipelineOptions(detector=detector, attributes=parse_attributes(attributes))
    paths = image_files(inputs)
    if out is not None and len(paths) != 1:
        raise typer.BadParameter("--out needs exactly one input image")
    with progress_bar(len(paths), "analyzing", enabled=not json_output) as advance:
        results = list(process_files(paths, options, workers=workers, on_done=advance, embed=False))
    if len(results) == 1 and results[0].error:
        raise results[0].error
    if out is not None:
        faces = results[0].faces
        draw.save_annotated(paths[0], faces, [f.attributes.summary() if f.attributes else None for f in faces], out)
    _report(results, json_output)
    if not any(r.faces for r in results):
        raise typer.Exit(EXIT_FACE)


def _report(results: list[ImageResult], json_output: bool) -> None:
    if json_output:
        print_json(
            [
                {"image": r.source, "error": str(r.error) if r.error else None, "faces": [f.to_dict() for f in r.faces]}
                for r in results
            ]
        )
        return
    table = Table("image", "face", "age", "gender", "expression", "yaw / pitch / roll")
    for result in results:
        if result.error or not result.faces:
            table.add_row(result.source, "-", f"[yellow]{result.error or 'no face'}[/]", "", "", "")
        for n, face in enumerate(result.faces):
            table.add_row(result.source, str(n), *attribute_cells(face))
    console.print(table)


def attribute_cells(face: Face) -> tuple[str, str, str, str]:
    """Age, gender, expression and pose of a face as table cells (blank when not computed)."""
    a = face.attributes
    if a is None:
        return ("", "", "", "")
    age = f"{a.age.years:.0f} ({a.age.low:.0f}-{a.age.high:.0f})" if a.age else ""
    gender = f"{a.gender.label} {a.gender.confidence:.0%}" if a.gender else ""
    expression = f"{a.expression.label} {a.expression.confidence:.0%}" if a.expression else ""
    pose = ""
    if a.pose:
        pitch = "?" if a.pose.pitch is None else f"{a.pose.pitch:+.0f}"
        pose = f"{a.pose.yaw:+.0f} / {pitch} / {a.pose.roll:+.0f}"
    return (age, gender, expression, pose)
