"""`faceprint scan` (a photo library into the gallery, incrementally) and `faceprint clusters ...` (its
unknown faces grouped into people, named, merged, split, ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import (
    DbOption,
    JsonOption,
    ProfileOption,
    RayAddressOption,
    WorkersOption,
    batch_runner,
    console,
    emit,
    err_console,
    handles_errors,
    open_gallery,
    print_json,
    progress_reporter,
)

if TYPE_CHECKING:
    from ..library import Clusters, ScanSummary


def register(app: typer.Typer) -> None:
    app.command()(scan)
    app.add_typer(clusters_app, name="clusters")


@handles_errors
def scan(
    folder: Annotated[Path, typer.Argument(help="The photo library: every image under it, recursively.")],
    profile: ProfileOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    videos: Annotated[bool, typer.Option("--videos", help="Also sample the video files into keyframes.")] = False,
    keyframe_every: Annotated[
        float | None,
        typer.Option("--keyframe-every", min=0.01, help="Seconds between a video's keyframes [default: 2]."),
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Find every face of every photo under FOLDER (and, with --videos, of every video's keyframes) and store
    it (template, box, quality, thumbnail) in the gallery. Only new and changed files are processed; files
    gone are forgotten. Safe to interrupt."""
    from ..library import scan as scan_library

    with open_gallery(db, profile=profile) as gallery, progress_reporter(not json_output) as on_progress:
        runner = batch_runner(ray_address)
        summary = scan_library(
            gallery, folder, workers=workers, on_progress=on_progress, runner=runner, videos=videos,
            keyframe_every=keyframe_every,
        )  # fmt: skip
    emit(summary.to_dict(), _scanned(summary, videos), json_output)
    for _, error in [] if json_output else summary.errors:
        console.print(f"[yellow]skipped:[/] {error}", highlight=False)


def _scanned(summary: ScanSummary, videos: bool) -> str:
    sampled = f"{summary.videos} videos sampled ({summary.keyframes} keyframes); " if videos else ""
    return (
        f"{summary.photos} files in {summary.folder}: {summary.new} new, {summary.changed} changed, "
        f"{summary.moved} moved, {summary.unchanged} unchanged, {summary.deleted} gone; {sampled}"
        f"{summary.faces} faces stored ({summary.seconds:.1f} s)"
    )


clusters_app = typer.Typer(
    help="Group the faces of a scanned library into people, and name them.", no_args_is_help=True
)

ClusterArg = Annotated[int, typer.Argument(help="A cluster id (see `faceprint clusters list`).")]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write a contact sheet: each cluster as a grid of its faces.")
]


@clusters_app.command()
@handles_errors
def update(db: DbOption = None, json_output: JsonOption = False) -> None:
    """Recognise enrolled people among the new faces and cluster the others (incrementally)."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery, progress_reporter(not json_output) as on_progress:
        summary = Clusters(gallery).update(on_progress=on_progress)
    emit(
        summary.to_dict(),
        f"{summary.waiting_before} faces waiting: {summary.recognised} recognised as enrolled people, "
        f"{summary.joined} joined clusters, {summary.founded} formed {summary.new_clusters} new clusters, "
        f"{summary.waiting} still waiting; {summary.below_quality} below the quality gate "
        f"({summary.seconds:.1f} s)",
        json_output,
    )


@clusters_app.command("list")
@handles_errors
def list_clusters(
    ignored: Annotated[bool, typer.Option("--ignored", help="Include the ignored clusters.")] = False,
    html: HtmlOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every cluster, largest first, with its name once named."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        clusters = Clusters(gallery)
        found = clusters.all_clusters(ignored=ignored)
        _write_sheet(clusters, [c.id for c in found], html)
    if json_output:
        print_json([c.to_dict() for c in found])
        return
    table = Table("cluster", "name", "faces", "cover face", "ignored", title=f"{len(found)} clusters")
    for c in found:
        table.add_row(str(c.id), c.name or "", str(c.faces), str(c.cover_face or ""), "yes" if c.ignored else "")
    console.print(table)


@clusters_app.command()
@handles_errors
def show(cluster: ClusterArg, html: HtmlOption = None, db: DbOption = None, json_output: JsonOption = False) -> None:
    """One cluster's faces, best first: face id, photo, box and quality."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        clusters = Clusters(gallery)
        found, faces = clusters.cluster(cluster), clusters.faces(cluster)
        _write_sheet(clusters, [found.id], html)
    if json_output:
        print_json({**found.to_dict(), "face_list": [f.to_dict() for f in faces]})
        return
    console.print(f"[bold]cluster {found.id}[/]: {found.name or 'unnamed'}, {found.faces} faces")
    table = Table("face", "photo or video", "box", "quality", "pinned")
    for f in faces:
        box = ", ".join(f"{v:.0f}" for v in f.box)
        table.add_row(str(f.id), f.source, box, f"{f.quality:.2f}", "yes" if f.pinned else "")
    console.print(table)


@clusters_app.command()
@handles_errors
def name(
    cluster: ClusterArg,
    person: Annotated[str, typer.Argument(help="The person's name.")],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Name a cluster: its best faces are enrolled as PERSON, who is then recognised everywhere."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        found = Clusters(gallery).name(cluster, person)
    emit(found.to_dict(), f"cluster {found.id} is {found.name} ({found.faces} faces)", json_output)


@clusters_app.command()
@handles_errors
def merge(into: ClusterArg, other: ClusterArg, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Merge cluster OTHER into cluster INTO (one person); later updates keep them together."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        found = Clusters(gallery).merge(into, other)
    emit(found.to_dict(), f"cluster {other} merged into {found.id} ({found.faces} faces)", json_output)


@clusters_app.command()
@handles_errors
def split(
    cluster: ClusterArg,
    faces: Annotated[list[int], typer.Argument(help="Face ids to move out (see `faceprint clusters show`).")],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move faces out of a cluster into a new one ("not this person"); they never join it again."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        found = Clusters(gallery).split(cluster, faces)
    emit(found.to_dict(), f"{found.faces} faces moved from cluster {cluster} to new cluster {found.id}", json_output)


@clusters_app.command()
@handles_errors
def ignore(
    cluster: ClusterArg,
    undo: Annotated[bool, typer.Option("--undo", help="List the cluster again.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Set a cluster aside: not listed, and faces like its own join it rather than coming back."""
    from ..library import Clusters

    with open_gallery(db, create=False) as gallery:
        found = Clusters(gallery).ignore(cluster, not undo)
    emit(found.to_dict(), f"cluster {found.id} {'ignored' if found.ignored else 'listed again'}", json_output)


def _write_sheet(clusters: Clusters, cluster_ids: list[int], path: Path | None) -> None:
    if path is None:
        return
    from ..errors import OutputError
    from ..library.sheet import contact_sheet

    try:
        path.write_text(contact_sheet(clusters, cluster_ids), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the contact sheet ({exc.strerror or exc})") from None
    err_console.print(f"contact sheet: {path}")
