"""`faceprint people ...`: list, show, rename, merge and remove enrolled people, and re-embed them all."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..choices import ProfileName
from .common import (
    DbOption,
    JsonOption,
    WorkersOption,
    console,
    emit,
    err_console,
    handles_errors,
    open_gallery,
    print_json,
    progress_bar,
)

app = typer.Typer(help="List and manage enrolled people.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="people")


PersonArg = Annotated[str, typer.Argument(help="Name, numeric id or external id.")]
TargetProfileOption = Annotated[
    ProfileName | None,
    typer.Option("--profile", help="The pipeline to re-embed with (default: the default one).", show_default=False),
]


@app.command("list")
@handles_errors
def list_people(db: DbOption = None, json_output: JsonOption = False) -> None:
    """Every enrolled person with their number of templates."""
    with open_gallery(db, create=False) as gallery:
        people = gallery.people()
    if json_output:
        print_json([p.to_dict() for p in people])
        return
    table = Table("id", "name", "external id", "templates", "updated", title=f"{len(people)} people")
    for p in people:
        table.add_row(str(p.id), p.name, p.external_id or "", str(p.template_count), p.updated_at)
    console.print(table)


@app.command()
@handles_errors
def show(person: PersonArg, db: DbOption = None, json_output: JsonOption = False) -> None:
    """One person with each template's source, quality and date."""
    with open_gallery(db, create=False) as gallery:
        found = gallery.person(person)
        templates = gallery.templates(found.id)
    if json_output:
        print_json({**found.to_dict(), "templates": [t.to_dict() for t in templates]})
        return
    console.print(f"[bold]{found.name}[/] (id {found.id}, external id {found.external_id or '-'}) {found.metadata}")
    table = Table("template", "source", "quality", "model", "added")
    for t in templates:
        quality = f"{t.quality:.2f}" if t.quality is not None else "-"
        table.add_row(str(t.id), t.source or "-", quality, t.model_id, t.created_at)
    console.print(table)


@app.command()
@handles_errors
def rename(person: PersonArg, new_name: str, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Give a person a new name."""
    with open_gallery(db, create=False) as gallery:
        renamed = gallery.rename(person, new_name)
    emit(renamed.to_dict(), f"renamed to [bold]{renamed.name}[/]", json_output)


@app.command()
@handles_errors
def merge(
    source: PersonArg,
    target: Annotated[str, typer.Argument(help="The person who keeps the templates.")],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move all templates of SOURCE to TARGET and remove SOURCE."""
    with open_gallery(db, create=False) as gallery:
        merged = gallery.merge(source, target)
    emit(merged.to_dict(), f"merged into [bold]{merged.name}[/] ({merged.template_count} templates)", json_output)


@app.command()
@handles_errors
def remove(person: PersonArg, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Remove a person and all their templates."""
    with open_gallery(db, create=False) as gallery:
        removed = gallery.remove_person(person)
    emit(removed.to_dict(), f"removed [bold]{removed.name}[/] and {removed.template_count} templates", json_output)


@app.command("remove-template")
@handles_errors
def remove_template(template_id: int, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Remove one template (see `people show` for ids)."""
    with open_gallery(db, create=False) as gallery:
        removed = gallery.remove_template(template_id)
    emit(removed.to_dict(), f"removed template {removed.id}", json_output)


@app.command()
@handles_errors
def reembed(
    profile: TargetProfileOption = None,
    workers: WorkersOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Compute every template anew (default pipeline, or --profile) from the photo it was enrolled from.

    Templates whose photo is gone or has changed are removed and listed (a gallery holds one model)."""
    from ..profiles import profile_options

    with open_gallery(db) as gallery:
        total = gallery.template_count()
        with progress_bar(total, "re-embedding", enabled=not json_output) as advance:
            done = gallery.reembed(profile_options(profile), workers=workers, on_done=advance)
    message = f"re-embedded {done.reembedded} templates with model {done.model_id}; removed {len(done.removed)}"
    message += "; the calibration stored for the previous model was dropped" if done.calibration_dropped else ""
    emit(done.to_dict(), message, json_output)
    for record, reason in done.removed if not json_output else []:
        err_console.print(f"  [yellow]removed[/] template {record.id} ({record.source or 'no source'}): {reason}")
