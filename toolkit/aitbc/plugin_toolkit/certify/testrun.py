"""`aitbc-plugin test`: a plugin's own tests, run the way the `tests` check runs them.

The project is built into a wheel (in the jail, as certification builds it), the wheel
goes into the isolated plugin environment certification uses (the SDK packed from this
toolkit, so nothing needs aitbc-plugins on a package index), and pytest runs there on a
copy of ``tests/`` and the project's pytest settings, in the jail where the machine has
one: plugin tests are code like any other.  The tests import the plugin as installed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aitbc.plugins.process import spawn
from aitbc.plugins.sandbox.jail import Jail, interpreter_paths, isolation

from ..data import data_dir
from ..errors import ToolkitError
from .cache import cache_root
from .distributions import build_distributions
from .environment import environment_for
from .policy import load_policy

#: pytest's configuration files, copied beside tests/ so markers and addopts still apply.
PYTEST_SETTINGS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


@dataclass(frozen=True)
class TestRun:
    __test__ = False  # not a pytest test class, whatever its name
    returncode: int | None  # None: stopped at timeout_s
    timeout_s: float


def check_project(project: Path) -> None:
    """ToolkitError unless ``project`` is a project with tests to run."""
    if not project.is_dir():
        raise ToolkitError(f"{project}: no such project directory")
    if not (project / "pyproject.toml").is_file() and not (project / "setup.py").is_file():
        raise ToolkitError(f"{project} is not a plugin project (no pyproject.toml or setup.py)")
    if not (project / "tests").is_dir():
        raise ToolkitError(f"{project} has no tests/ folder to run")


def run_plugin_tests(project: Path, pytest_args: Sequence[str]) -> TestRun:
    """Build ``project``, install it with pytest in certification's environment and run
    pytest with ``pytest_args`` there.  ToolkitError when it cannot get that far."""
    check_project(project)
    tests = project / "tests"
    timeout = load_policy(data_dir("checks")).tool_timeout_s
    cache = cache_root()
    with tempfile.TemporaryDirectory(prefix="aitbc-test-") as scratch_name:
        scratch = Path(scratch_name)
        built = build_distributions(project, scratch / "build", timeout, cache)
        if built.wheel is None:
            raise ToolkitError(built.error or "the project does not build")
        environment = environment_for(built.wheel, cache, timeout=timeout)
        run_dir = scratch / "run"
        shutil.copytree(tests, run_dir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        for name in PYTEST_SETTINGS:
            if (project / name).is_file():
                shutil.copy2(project / name, run_dir / name)
        command = [str(environment.python), "-m", "pytest", "-p", "no:cacheprovider",
                   *pytest_args]  # fmt: skip
        code = _run_live(command, run_dir, interpreter_paths(environment.python), timeout)
    return TestRun(code, timeout)


def _run_live(
    command: list[str], run_dir: Path, readable: Sequence[Path], timeout: float
) -> int | None:
    """pytest with this terminal as its output, live (a test run is read as it goes), in
    the jail where the machine has one; unlike certification nothing is judged from its
    output or behaviour, so nothing is captured or traced."""
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    if isolation().jailed:
        jail = Jail(run_dir, readable=tuple(readable))
        command, env = jail.command(command, jail.environment(env), run_dir), {}
    began = time.monotonic()
    with spawn(command, timeout=timeout, cwd=run_dir, env=env) as process:
        code = process.wait()
    return None if code < 0 and time.monotonic() - began >= timeout else code
