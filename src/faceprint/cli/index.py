"""`faceprint index ...`: inspect, rebuild and check the gallery's search index."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import GalleryError
from ..gallery import Gallery
from ..index.hnsw import STORAGES
from ..index.synced import MODES, SyncedIndex
from .common import DbOption, JsonOption, console, emit, handles_errors, print_json

app = typer.Typer(help="Inspect, rebuild and check the gallery's search index.", no_args_is_help=True)

ModeOption = Annotated[
    str,
    typer.Option(
        "--index", envvar="FACEPRINT_INDEX", help=f"Search: {', '.join(MODES)} (auto: HNSW from 50,000 templates on)."
    ),
]
StorageOption = Annotated[
    str,
    typer.Option("--storage", envvar="FACEPRINT_INDEX_STORAGE", help=f"HNSW vector storage: {', '.join(STORAGES)}."),
]


def _open(db: str | None, mode: str, storage: str) -> tuple[Gallery, SyncedIndex]:
    if mode not in MODES:
        raise typer.BadParameter(f"must be one of {', '.join(MODES)}", param_hint="--index")
    if storage not in STORAGES:
        raise typer.BadParameter(f"must be one of {', '.join(STORAGES)}", param_hint="--storage")
    gallery = Gallery(db, index=mode, index_storage=storage)  # type: ignore[arg-type]
    if gallery.index is None:
        gallery.close()
        raise GalleryError(f"{gallery.path}: this gallery is searched by Milvus's own index; nothing to manage here")
    return gallery, gallery.index


@app.command()
@handles_errors
def stats(
    db: DbOption = None, mode: ModeOption = "auto", storage: StorageOption = "f32", json_output: JsonOption = False
) -> None:
    """How the gallery is searched: exact or HNSW, size, memory, saved file (opens or rebuilds it first)."""
    gallery, index = _open(db, mode, storage)
    with gallery:
        found = index.stats()
    if json_output:
        print_json(found)
        return
    for key, value in found.items():
        console.print(f"{key:>15}: {value}")


@app.command()
@handles_errors
def rebuild(db: DbOption = None, storage: StorageOption = "f32", json_output: JsonOption = False) -> None:
    """Build the HNSW index from the gallery anew and save it next to the gallery file."""
    gallery, index = _open(db, "hnsw", storage)
    with gallery:
        built = index.rebuild()
        found = {"templates": len(built), "storage": built.storage, "file": str(index.path)}
    emit(found, f"rebuilt {index.path}: {found['templates']} templates, {found['storage']}", json_output)


@app.command()
@handles_errors
def verify(
    db: DbOption = None, mode: ModeOption = "auto", storage: StorageOption = "f32", json_output: JsonOption = False
) -> None:
    """Compare the index with the gallery template by template; exit code 1 on any difference."""
    gallery, index = _open(db, mode, storage)
    with gallery:
        problems = index.verify()
    emit(
        {"consistent": not problems, "problems": problems},
        "\n".join(problems) or "index consistent with the gallery",
        json_output,
    )
    if problems:
        raise typer.Exit(1)
