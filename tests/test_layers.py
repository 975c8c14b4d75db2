"""The package layers of docs/DESIGN.md, checked by import-linter: they hold, and they bite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("notsound", "live", "capture", "summarizer", "slides", "models", "library", "wire", "common")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # this tree's packages, not the installed ones
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the packages and the contracts, to add back-imports to."""
    out = tmp_path_factory.mktemp("layers")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, out / name, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", out / "pyproject.toml")
    return out


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "back_import", "contract"), [
    ("wire/protocol.py", "import live.server", "Layers"),
    ("common/limits.py", "import library.folder", "Layers"),
    ("library/export.py", "import summarizer.notes", "Layers"),
    ("capture/client.py", "import live.scheduler", "Layers"),  # siblings: the old cycle
    ("live/server.py", "import capture.spool", "Layers"),
    ("live/session.py", "import notsound.view", "Layers"),
    ("live/scheduler.py", "import slides.deck", "The worker serves audio"),
    ("models/whisper.py", "import library.folder", "Engines know nothing"),
    ("capture/segmenter.py", "import models.registry", "The capture side never loads an engine"),
    ("library/history.py", "import openai", "Only the summarizer talks to an LLM"),
    ("wire/protocol.py", "import numpy", "The ground floor imports no framework"),
])
def test_a_back_import_breaks_a_contract(tree: Path, module: str, back_import: str, contract: str):
    path = tree / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{back_import}  # added by the test\n", encoding="utf-8")
    try:
        result = lint_imports(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert module.removesuffix(".py").replace("/", ".") in broken
