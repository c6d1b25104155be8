"""The build's one hand-over from plugin code to the toolkit: the PEP 517 hook's answer
file (pyproject_hooks' ``output.json``), which the jailed hook writes and certify then
reads.  Real builds of a project with an in-tree backend, in the real jail: a careless
backend (warnings full of terminal escapes) still builds and prints nothing here; a
hostile one that swaps its answer, after the hook returned, for a link to a file of
the user's, a FIFO, a huge file or a link in place of the whole folder gets one line,
in bounded time, and nothing it pointed at is read."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.cache import cache_root
from aitbc.plugin_toolkit.certify.distributions import MAX_HOOK_ANSWER, jailed_build
from aitbc.plugin_toolkit.errors import ToolkitError

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "backend"
backend-path = ["."]

[project]
name = "hook-answer"
version = "1.0.0"

[tool.setuptools]
py-modules = ["hook_answer"]
"""

# The hook's answer is written by pyproject_hooks' _in_process.py once the hook returns;
# an exit handler runs after that, and may put anything in its place.
BACKEND = """\
import atexit, os, shutil, sys, warnings
from setuptools import build_meta as _real
from setuptools.build_meta import *  # noqa: F403

SECRET = {secret!r}
SWAP = {swap!r}
CONTROL = sys.argv[2]  # setuptools rewrites sys.argv while it builds


def _swap(control):
    answer = os.path.join(control, "output.json")
    if SWAP == "link":
        os.remove(answer)
        os.symlink(SECRET, answer)
    elif SWAP == "fifo":
        os.remove(answer)
        os.mkfifo(answer)
    elif SWAP == "huge":
        with open(answer, "w") as out:
            out.write('{{"return_val": "' + "x" * {huge} + '"}}')
    elif SWAP == "folder":
        shutil.rmtree(control)
        os.symlink(os.path.dirname(SECRET), control)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    warnings.warn("\\x1b[2J\\x1b[31mYOUR TERMINAL IS MINE\\x1b[0m")
    name = _real.build_wheel(wheel_directory, config_settings, metadata_directory)
    if SWAP:
        atexit.register(_swap, CONTROL)
    return name
"""


def project(tmp_path: Path, swap: str, secret: Path) -> Path:
    """In the scratch folder, as certify's copies are: a backend writes into its tree."""
    source = tmp_path / "scratch" / "src"
    source.mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "hook_answer.py").write_text("VALUE = 1\n")
    (source / "backend.py").write_text(
        BACKEND.format(secret=str(secret), swap=swap, huge=MAX_HOOK_ANSWER + 1)
    )
    return source


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file of the user's, outside every jail: what a swapped answer points at."""
    path = tmp_path / "private" / "output.json"
    path.parent.mkdir()
    path.write_text('{"return_val": "STOLEN-7f3a", "warnings": []}')
    return path


def build(tmp_path: Path, source: Path) -> tuple[list[Path], str]:
    """The wheels built, and the one line said; no warning may reach this process."""
    out, scratch = tmp_path / "scratch" / "dist", tmp_path / "scratch"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            done = jailed_build(source, out, scratch, "wheel", timeout=120,
                                cache_dir=cache_root()).completed  # fmt: skip
            said = "" if done.returncode == 0 else f"exit {done.returncode}: {done.tail()}"
        except ToolkitError as exc:
            said = str(exc)
    assert [str(w.message) for w in caught] == []
    return sorted(out.glob("*.whl")), said


def test_a_careless_backends_warnings_are_not_printed_and_it_builds(
    tmp_path: Path, secret: Path
) -> None:
    wheels, said = build(tmp_path, project(tmp_path, "", secret))
    assert [w.name for w in wheels] == ["hook_answer-1.0.0-py3-none-any.whl"]
    assert said == ""


@pytest.mark.parametrize("swap", ["link", "fifo", "huge", "folder"])
def test_a_swapped_answer_is_never_read_and_named_in_one_line(
    tmp_path: Path, secret: Path, swap: str
) -> None:
    began = time.monotonic()
    _, said = build(tmp_path, project(tmp_path, swap, secret))
    assert time.monotonic() - began < 60  # a FIFO read would block here for ever
    assert said.startswith("the build backend gave no answer")
    assert "\n" not in said
    assert "STOLEN" not in said
