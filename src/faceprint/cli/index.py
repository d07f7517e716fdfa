"""`faceprint index ...`: inspect, rebuild and check the gallery's search index."""

from __future__ import annotations

from typing import Annotated

import typer

from ..choices import Mode, Storage
from .common import DbOption, JsonOption, console, emit, handles_errors, open_gallery, print_json

app = typer.Typer(help="Inspect, rebuild and check the gallery's search index.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="index")


ModeOption = Annotated[
    Mode, typer.Option("--index", envvar="FACEPRINT_INDEX", help="Search (auto: HNSW from 50,000 templates on).")
]
StorageOption = Annotated[
    Storage | None,
    typer.Option(
        "--storage",
        envvar="FACEPRINT_INDEX_STORAGE",
        help="HNSW vector storage (f16, i8: less memory). Default: f32, and i8 in an encrypted gallery.",
        show_default=False,
    ),
]


@app.command()
@handles_errors
def stats(
    db: DbOption = None, mode: ModeOption = "auto", storage: StorageOption = None, json_output: JsonOption = False
) -> None:
    """How the gallery is searched: exact or HNSW, size, memory, saved file (opens or rebuilds it first)."""
    with open_gallery(db, create=False, index=mode, index_storage=storage) as gallery:
        found = gallery.index_stats()
    if json_output:
        print_json(found)
        return
    for key, value in found.items():
        for name, shown in value.items() if isinstance(value, dict) else [(key, value)]:
            console.print(f"{name:>15}: {shown}")


@app.command()
@handles_errors
def rebuild(db: DbOption = None, storage: StorageOption = None, json_output: JsonOption = False) -> None:
    """Build the HNSW index from the gallery anew and save it next to the gallery file."""
    with open_gallery(db, create=False, index="hnsw", index_storage=storage) as gallery:
        built = gallery.rebuild_index()
    emit(built, f"rebuilt {built['file']}: {built['templates']} templates, {built['storage']}", json_output)


@app.command()
@handles_errors
def verify(
    db: DbOption = None, mode: ModeOption = "auto", storage: StorageOption = None, json_output: JsonOption = False
) -> None:
    """Compare the index with the gallery template by template; exit code 1 on any difference."""
    with open_gallery(db, create=False, index=mode, index_storage=storage) as gallery:
        problems = gallery.verify_index()
    emit(
        {"consistent": not problems, "problems": problems},
        "\n".join(problems) or "index consistent with the gallery",
        json_output,
    )
    if problems:
        raise typer.Exit(1)
