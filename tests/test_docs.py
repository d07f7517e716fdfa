"""The examples users read must run: docstring examples and the README's Python blocks."""

from __future__ import annotations

import doctest
import glob
import importlib
import os
import re
from pathlib import Path

import pytest

from .conftest import ROOT

MODULES_WITH_EXAMPLES = ["faceprint", "faceprint.api", "faceprint.image", "faceprint.gallery"]


@pytest.fixture(autouse=True)
def in_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # examples use repository-relative paths
    # The examples' galleries and their files (WAL, saved index), left by an earlier run or another checkout.
    for leftover in glob.glob("/tmp/doctest-gallery.db*") + glob.glob("/tmp/readme-*.db*"):
        os.remove(leftover)


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
