"""The `faceprint` command line: a thin Typer layer over the library.

Command modules import the library inside each command, not at their top: `faceprint --help` and
`--version` then load neither OpenCV, dlib nor numpy (0.5 s at most; BENCHMARKS.md, "Start-up").
A module's top imports only the standard library, Typer, Rich, ``faceprint.choices`` and ``.common``.

A command names its module on the command line, so ``faceprint serve ...`` imports and registers only
``.service``: not every other command's module nor Typer's parsing of their parameters (BENCHMARKS.md,
"Service start-up"). ``faceprint.cli.app`` is the whole command line, built on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from .. import __version__

#: Each command module and the top-level commands its ``register(app)`` adds, in the order they are registered.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "demo": ("demo",),
    "recognize": ("enroll", "identify", "verify", "detect", "embed"),
    "evaluate": ("eval", "calibrate"),
    "analyze": ("analyze",),
    "people": ("people",),
    "index": ("index",),
    "compat": ("compat",),
    "video": ("video", "anonymize", "liveness"),
    "service": ("serve", "apikeys"),
    "privacy": ("rekey", "private"),
    "library": ("scan", "clusters"),
}


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"faceprint {__version__}")
        raise typer.Exit()


def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Face recognition on a plain CPU, offline: enroll, identify, verify, detect, embed, analyze."""


def build_app(modules: Iterable[str] = COMMAND_MODULES) -> typer.Typer:
    """The command line with the commands of ``modules`` (names of :data:`COMMAND_MODULES`)."""
    app = typer.Typer(name="faceprint", no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback()(_options)
    for module in modules:
        importlib.import_module(f"{__name__}.{module}").register(app)
    return app


def app_for(args: list[str]) -> typer.Typer:
    """The command line that runs ``args``: only the module of the command when the first argument names one
    (the root's only options, ``--version`` and shell completion, come before a command), else the whole one
    (``--help``, ``--version``, a mistyped command)."""
    for module, commands in COMMAND_MODULES.items():
        if args[:1] and args[0] in commands:
            return build_app([module])
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    """``faceprint.cli.app``: the whole command line, built once on first use."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()["app"] = build_app()
    return app


def main() -> None:
    app_for(sys.argv[1:])()
