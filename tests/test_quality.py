"""Our own code (the toolkit, its tests, the benchmarks; for ruff, the examples too) is
mypy --strict and ruff clean (run by the test command).  pyproject.toml holds the
configuration, test data excluded, so a plain `mypy` or `ruff check .` from the
repository root checks the same."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

OUR_CODE = ["toolkit", "tests", "benchmarks"]
# The spec's example plugins are plugin code, typed as a plugin author would type them.
LINTED = [*OUR_CODE, "examples"]


def test_mypy_strict_on_our_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *OUR_CODE],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_our_code() -> None:
    for args in (["check", *LINTED], ["format", "--check", *LINTED]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
