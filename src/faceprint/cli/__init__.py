"""The `faceprint` command line: a thin Typer layer over the library.

Command modules import the library inside each command, not at their top: `faceprint --help` and
`--version` then load neither OpenCV, dlib nor numpy (0.5 s at most; BENCHMARKS.md, "Start-up").
A module's top imports only the standard library, Typer, Rich, ``faceprint.choices`` and ``.common``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import compat, evaluate, index, library, people, privacy, recognize, service
from . import video as video_commands
from .analyze import analyze
from .demo import demo

app = typer.Typer(
    name="faceprint",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"faceprint {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Face recognition on a plain CPU, offline: enroll, identify, verify, detect, embed, analyze."""


app.command()(demo)
recognize.register(app)
evaluate.register(app)
app.command()(analyze)
app.add_typer(people.app, name="people")
app.add_typer(index.app, name="index")
app.add_typer(compat.app, name="compat")
video_commands.register(app)
app.command()(service.serve)
app.add_typer(service.apikeys, name="apikeys")
privacy.register(app)
library.register(app)


def main() -> None:
    app()
