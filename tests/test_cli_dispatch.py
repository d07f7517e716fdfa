"""A command imports only its own module (`faceprint serve` starts faster), and behaves as in the whole CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from faceprint.apikeys import KeyStore
from faceprint.cli import COMMAND_MODULES, app, app_for, build_app

from .conftest import run_python

runner = CliRunner()
EVERY_COMMAND = [command for commands in COMMAND_MODULES.values() for command in commands]


def commands_of(cli: typer.Typer) -> list[str]:
    return list(typer.main.get_group(cli).commands)


def test_the_table_names_every_command_once() -> None:
    assert sorted(commands_of(app)) == sorted(set(EVERY_COMMAND))


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_each_module_registers_exactly_its_commands(module: str) -> None:
    assert sorted(commands_of(build_app([module]))) == sorted(COMMAND_MODULES[module])


@pytest.mark.parametrize("args", [[c, "--help"] for c in EVERY_COMMAND] + [["serve", "--port", "0"], ["apikeys"]])
def test_a_command_alone_answers_as_in_the_whole_cli(args: list[str]) -> None:
    alone, whole = runner.invoke(app_for(args), args), runner.invoke(app, args)
    assert len(commands_of(app_for(args))) < len(EVERY_COMMAND)
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["serv"], ["--version", "serve"]])
def test_anything_else_gets_the_whole_cli(args: list[str]) -> None:
    assert commands_of(app_for(args)) == commands_of(app)


def test_serve_imports_no_other_command_module() -> None:
    code = "import sys; from faceprint.cli import app_for; app_for(['serve']); print(sorted(sys.modules))"
    loaded = {m for m in eval(run_python(code).stdout) if m.startswith("faceprint.cli.")}
    assert loaded == {"faceprint.cli.common", "faceprint.cli.service"}


def test_serve_parses_its_options_without_importing_rich_and_other_commands_still_print_with_it(
    tmp_path: Path,
) -> None:
    code = (
        "import sys, typer; from faceprint.cli import app_for; command = typer.main.get_command(app_for(['serve']));"
        "command.make_context('faceprint', ['serve', '--port', '1']); print('rich' in sys.modules)"
    )
    assert run_python(code).stdout.split() == ["False"]
    key, _ = KeyStore(tmp_path).create("acme", ["read"], label="the console's row")
    listed = runner.invoke(app, ["apikeys", "list", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0 and key.id in listed.output and "the console's row" in listed.output


def test_a_progress_bar_runs_on_the_lazily_made_console() -> None:
    from rich.progress import Progress

    from faceprint.cli.common import err_console

    with Progress(console=err_console, transient=True) as progress:  # Rich's Live enters the console it is given
        task = progress.add_task("scan", total=2)
        progress.advance(task, 2)
    assert progress.finished
