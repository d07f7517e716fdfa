"""The `faceprint` command line: a thin Typer layer over the library."""

from __future__ import annotations

import typer

from . import evaluate, index, people, recognize
from . import video as video_commands
from .analyze import analyze
from .demo import demo

app = typer.Typer(
    name="faceprint",
    help="Face recognition on a plain CPU, offline: enroll, identify, verify, detect, embed, analyze.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(demo)
recognize.register(app)
evaluate.register(app)
app.command()(analyze)
app.add_typer(people.app, name="people")
app.add_typer(index.app, name="index")
video_commands.register(app)


def main() -> None:
    app()
