"""The toolkit's own code is mypy --strict and ruff clean (run by the test command)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_mypy_strict_on_toolkit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "toolkit"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_toolkit() -> None:
    for args in (["check", "toolkit"], ["format", "--check", "toolkit"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
