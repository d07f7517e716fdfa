"""`faceprint demo`: enroll the bundled sample people and identify a bundled group photo."""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOption, console, handles_errors, print_json

#: Sample photos shipped in faceprint/samples (MIT, from the face_recognition project).
SAMPLE_PEOPLE = {
    "Kit Harington": "Kit_Harington_0001.jpg",
    "Rose Leslie": "Rose_Leslie_0001.jpg",
    "Barack Obama": "Barack_Obama_0004.jpg",
    "Alex Lacamoire": "Alex_Lacamoire_0002.jpg",
}
SAMPLE_GROUP_PHOTO = "kit_harington_and_rose_leslie.jpg"


def register(app: typer.Typer) -> None:
    app.command()(demo)


@handles_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write the annotated group photo.")] = Path(
        "faceprint-demo.jpg"
    ),
    json_output: JsonOption = False,
) -> None:
    """Enroll four sample people in a throw-away gallery, then name the faces of a group photo."""
    from .. import draw
    from ..gallery import Gallery

    samples = resources.files("faceprint.samples")
    with tempfile.TemporaryDirectory() as folder, resources.as_file(samples) as sample_dir:
        with Gallery(Path(folder) / "demo.db") as gallery:
            for name, file in SAMPLE_PEOPLE.items():
                gallery.enroll(name, [sample_dir / file])
                if not json_output:
                    console.print(f"enrolled [bold]{name}[/] from samples/{file}")
            photo = sample_dir / SAMPLE_GROUP_PHOTO
            answers = gallery.identify(photo)
        draw.save_annotated(photo, [a.face for a in answers], [a.name for a in answers], out)
    if json_output:
        print_json({"image": SAMPLE_GROUP_PHOTO, "annotated": str(out), "faces": [a.to_dict() for a in answers]})
        return
    table = Table("face", "name", "similarity", "threshold", title=f"samples/{SAMPLE_GROUP_PHOTO}")
    for n, a in enumerate(answers):
        score = f"{a.match.similarity:.3f}" if a.match else "-"
        table.add_row(str(n), a.name, score, f"{a.threshold:.3f}")
    console.print(table)
    console.print(f"annotated photo written to {out}")
