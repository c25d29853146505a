"""The code stays as STYLE.md asks: ruff-clean and fully typed (mypy)."""

from __future__ import annotations

import subprocess
import sys

from mailflow.testing import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "mailflow", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_package() -> None:
    result = run("mypy", "mailflow")
    assert result.returncode == 0, result.stdout + result.stderr
