"""The library's structure: no import cycles between faceprint's modules, read from the source."""

from __future__ import annotations

import ast
import gc
import re
from pathlib import Path

from .conftest import run_python

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "faceprint"


def parse(path: Path) -> ast.Module:
    """``path``'s syntax tree, made with the garbage collector paused. CPython 3.11.7 keeps the depth of its AST
    conversion in state shared by the whole interpreter: a collection during the conversion can run finalizers and
    hand the GIL to another thread that parses too (an exception's traceback does; this process keeps threads of
    earlier tests, such as Milvus Lite's servers and Ray's poller), and the conversion then fails with
    "AST constructor recursion depth mismatch" (once in five full runs of this session; CPython gh-106905)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), filename=str(path))
    finally:
        if was_enabled:
            gc.enable()


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` by dotted name; a package is its ``__init__.py``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The faceprint modules ``name`` imports anywhere in its source (``TYPE_CHECKING`` blocks and functions too).

    ``from P import x`` is an edge to the submodule ``P.x`` when there is one, else to ``P``
    itself (for a package: its ``__init__``, e.g. ``from . import ExactIndex`` in a submodule).
    The parent packages Python initialises on the way to a submodule are not counted: every
    module would otherwise depend on ``faceprint/__init__``, the facade that re-exports them.
    """
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, here)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {module for module in found if module in modules and module != name}


def _resolve(node: ast.ImportFrom, here: str) -> str:
    if node.level == 0:
        return node.module or ""
    anchor = here.split(".")
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(src, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(component, graph) for component in components if len(component) > 1]


def _cycle_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle in the strongly connected component {sorted(component)}")


def test_graph_reads_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import A\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nA = 1\n")
    (package / "b.py").write_text("def f():\n    import pkg.sub.c\n")
    (package / "sub" / "__init__.py").write_text("X = 1\n")
    (package / "sub" / "c.py").write_text("from .. import a\nfrom . import X\nfrom . import d\n")
    (package / "sub" / "d.py").write_text("")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.sub", "pkg.sub.d"},
        "pkg.sub.d": set(),
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_faceprint_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "faceprint.api" in graph["faceprint"]  # the graph is really read
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    root = SRC.parent
    script = (root / ".ci" / "run").read_text().splitlines()
    commands = script[script.index('cd "$(dirname "$0")/.."') + 1 :]
    blocks = re.findall(r"```bash\n(.*?)```", (root / "README.md").read_text(), flags=re.S)
    assert "\n".join(commands) + "\n" in blocks
    checks = [command.removeprefix(".venv/bin/") for command in commands[1:]]
    assert checks == ["ruff check", "ruff format --check", "mypy src", "python -m pytest"]


# --- the front ends stay thin, and cheap to start ----------------------------------------

CLI = SRC / PACKAGE / "cli"
#: What a front end must not do itself: numerical work, storage, image or file formats.
LIBRARY_ONLY = {"numpy", "sqlite3", "cv2", "PIL", "dlib", "onnxruntime", "faiss", "csv", "pickle", "scipy"}
#: What `import faceprint` (and the CLI's start-up) must not load: OpenCV, dlib, onnxruntime, faiss, Rich, plots.
HEAVY = ("cv2", "dlib", "onnxruntime", "faiss", "rich", "matplotlib", "scipy")


def cli_commands() -> list[ast.FunctionDef]:
    """Every function the CLI registers as a command (decorated ``@handles_errors``)."""
    commands = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "handles_errors" for d in node.decorator_list
            ):
                commands.append(node)
    return commands


def test_cli_modules_import_no_numerical_storage_or_format_library() -> None:
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(parse(path)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found = {name.split(".")[0] for name in names} & LIBRARY_ONLY
            assert not found, f"{path.name}:{node.lineno} imports {found}: that work belongs in the library"


def test_cli_commands_are_short() -> None:
    """Each command parses, calls the library and prints: at most 30 lines from ``def`` to its end."""
    commands = cli_commands()
    assert len(commands) >= 20  # every command is found
    long = {c.name: c.end_lineno - c.lineno + 1 for c in commands if c.end_lineno - c.lineno + 1 > 30}
    assert not long, f"CLI commands over 30 lines: {long}"


def test_import_faceprint_loads_no_heavy_library() -> None:
    result = run_python(f"import sys, faceprint; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
    # The CLI draws with Rich; nothing else heavy, not even numpy, loads before a command runs (fast --help).
    without_rich = (*(m for m in HEAVY if m != "rich"), "numpy")
    result = run_python(f"import sys, faceprint.cli; print([m for m in {without_rich!r} if m in sys.modules])")
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_lazy_public_names_are_the_modules_objects_after_every_import() -> None:
    """``faceprint.detect`` is the function even once every submodule (none named like it) is imported."""
    import importlib

    import faceprint

    for module in module_files():
        if not module.endswith("__main__"):  # running that one would start the CLI
            importlib.import_module(module)
    for name in faceprint.__all__:
        value = getattr(faceprint, name)
        assert not isinstance(value, type(faceprint)), f"faceprint.{name} is a module, not the public object"
    assert faceprint.detect.__module__ == "faceprint.api" and faceprint.Gallery.__module__ == "faceprint.gallery"


def test_every_library_error_has_its_exit_code() -> None:
    import faceprint.errors as errors
    from faceprint.cli.common import EXIT_CODES, exit_code_for

    kinds = [k for k in vars(errors).values() if isinstance(k, type) and issubclass(k, errors.FaceprintError)]
    for kind in kinds:
        if kind is not errors.FaceprintError:
            assert any(issubclass(kind, mapped) for mapped, _ in EXIT_CODES), f"{kind.__name__} has no exit code"
    assert exit_code_for(errors.UnsupportedFMRError("x")) == 2 and exit_code_for(errors.OutputError("x")) == 7
    assert exit_code_for(errors.PersonNotFoundError("x")) == 5
