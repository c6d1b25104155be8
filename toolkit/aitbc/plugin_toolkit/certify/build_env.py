"""The environment a plugin is built in, made before any of its code runs.

pypa `build` would make an isolated environment itself, downloading the project's
build requirements while the build backend (the plugin's `setup.py`) can already run.
Here the toolkit installs `[build-system] requires` (read from pyproject.toml, never
executed) into a cached venv first, with the package index; the build then runs with
`--no-isolation` in the kernel jail, with no network at all.  A backend that asks for
more at build time (`setup_requires`, dynamic requirements) gets nothing and fails the
build, with its own words.  The install itself takes wheels only: building a build
requirement from source would run its code here, outside the jail.  A cached build
environment is reused only while it holds what it held when made (integrity.py).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement

from ..errors import ToolkitError
from .environment import UV_INSTALL, reuse_or_make, run_step, uv_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: PEP 517/518: a project without [build-system] is built by setuptools' legacy backend.
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
#: The build frontend itself, run by the environment's own Python.
FRONTEND = "build>=1.2"


def build_requirements(source: Path) -> list[str]:
    """``[build-system] requires`` of the project at ``source``, validated."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return list(DEFAULT_REQUIRES)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ToolkitError(f"pyproject.toml cannot be read: {exc}") from None
    table = data.get("build-system")
    if table is None:
        return list(DEFAULT_REQUIRES)
    requires = table.get("requires") if isinstance(table, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise ToolkitError("pyproject.toml: [build-system] requires must be a list of strings")
    for requirement in requires:
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise ToolkitError(f"pyproject.toml: [build-system] requires: {exc}") from None
    return sorted(requires)


@dataclass(frozen=True)
class BuildEnvironment:
    root: Path
    python: Path
    reused: bool
    #: What had changed in the cached environment, which was therefore rebuilt; None
    #: when it was reused or made for the first time.
    rebuilt_because: str | None = None


def build_environment_for(
    requires: list[str], cache_dir: Path, timeout: float, *, reuse: bool = True
) -> BuildEnvironment:
    """A venv holding `build` and ``requires``; made once per set of requirements and
    kept in the toolkit's cache, reused while it holds what it was made with."""
    key = hashlib.sha256("\0".join([sys.version, FRONTEND, *requires]).encode()).hexdigest()
    root = cache_dir / "build-envs" / key[:24]
    python = root / "bin" / "python"
    root.parent.mkdir(parents=True, exist_ok=True)

    def make() -> None:
        uv = uv_command()
        if uv is None:
            raise ToolkitError("uv is needed to make the build environment")
        what = "installing the build requirements"
        # From the cache: uv would read the [tool.uv] of a pyproject.toml in the cwd.
        where = root.parent
        run_step([*uv, "venv", "--quiet", "--python", sys.executable, str(root)], what, timeout,
                 where)  # fmt: skip
        run_step([*uv, "pip", "install", "--quiet", *UV_INSTALL, "--python", str(python),
                  FRONTEND, *requires], what, timeout, where,
                 installs="build requirement")  # fmt: skip

    with FileLock(str(root) + ".lock"):
        reused, rebuilt_because = reuse_or_make(root, make, reuse=reuse, timeout=timeout)
    return BuildEnvironment(root, python, reused, rebuilt_because)


def build_python(requires: list[str], cache_dir: Path, timeout: float) -> Path:
    """The Python of :func:`build_environment_for`'s environment."""
    return build_environment_for(requires, cache_dir, timeout).python
