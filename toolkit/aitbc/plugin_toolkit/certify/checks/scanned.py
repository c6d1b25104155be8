"""What the `security` check scans: every Python file that ships or runs.

That is each Python file of the wheel, whatever its name (a shipped ``test_*.py`` is
installed like any module, and what ``.data/purelib``, ``platlib`` and ``scripts``
install too), and each project file that runs while certification builds and tests the
plugin: ``setup.py``, the in-tree build backend (``[build-system] backend-path``),
every ``conftest.py``, the tests and everything in a tests folder, and the project
modules any of those import (followed through their ``import`` statements and
constant ``importlib.import_module`` names).  Bytecode that stands in for a source
nobody can read is refused as ``security.bytecode-only``.
"""

from __future__ import annotations

import ast
import os
import shutil
import stat
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..model import Finding, Severity
from . import _shipped
from ._archive import capped, unsafe_reason

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYTHON_SUFFIXES = (".py", ".pyw")
SHIPS = "ships in the wheel"
BYTECODE = "security.bytecode-only"
#: Folders never read: history, caches, build output and downloaded eggs (certification
#: copies the project without build/ and dist/, so nothing there runs), environments.
_PRUNED = frozenset(
    {".git", "__pycache__", "build", "dist", ".eggs", "node_modules", "site-packages"}
)
#: What a wheel's .data folder installs as code (headers and data are not).
_DATA_CODE = ("purelib", "platlib", "scripts")


@dataclass(frozen=True)
class Target:
    path: Path  # the file read
    shown: str  # what findings call it: the project file, else the path in the wheel
    why: str  # why it is scanned, for the check's details


def project_files(project: Path, under: Path | None = None) -> Iterator[Path]:
    """Regular files below ``under`` (default: the project), symbolic links included
    when they lead to a regular file inside the project (a link out of it, to a device
    or a pipe, is never read)."""
    root = project.resolve()
    for folder, dirs, files in os.walk(under or project):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _PRUNED
            and not d.endswith(".egg-info")
            and not (Path(folder, d) / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            path = Path(folder, name)
            try:
                real = path.resolve()
                regular = stat.S_ISREG(real.stat().st_mode)
            except (OSError, RuntimeError):
                continue
            if regular and real.is_relative_to(root):
                yield path


def _backend_folders(project: Path) -> list[Path]:
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
        paths = data["build-system"]["backend-path"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return []  # none declared, or not readable: the build says so
    if not isinstance(paths, list):
        return []
    folders = [(project / p).resolve() for p in paths if isinstance(p, str)]
    return [f for f in folders if f.is_dir() and f.is_relative_to(project)]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(level, dotted name) of each module a file imports by a name that can be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            yield node.level, base
            yield from ((node.level, f"{base}.{a.name}".lstrip(".")) for a in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield 0, node.args[0].value


class _Modules:
    """The project's Python files by the module names they could be imported as."""

    def __init__(self, project: Path, files: list[Path]) -> None:
        self.known = set(files)
        self.by_tail: dict[tuple[str, ...], list[Path]] = {}
        for path in files:
            parts = path.relative_to(project).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for start in range(len(parts)):
                self.by_tail.setdefault(parts[start:], []).append(path)

    def imported_by(self, path: Path) -> Iterator[Path]:
        for level, name in _imports(path):
            parts = tuple(p for p in name.split(".") if p)
            if level:  # relative: from the importing file's own package
                base = path.parent
                for _ in range(level - 1):
                    base = base.parent
                module = [base.joinpath(*parts).with_suffix(".py")] if parts else []
                candidates = [*module, base.joinpath(*parts, "__init__.py")]
                yield from (p for p in candidates if p in self.known)
                continue
            # Absolute: whatever folder is on the path, a file whose path ends with the
            # module's (or a package holding it) may be what is imported.
            for end in range(1, len(parts) + 1):
                yield from self.by_tail.get(parts[:end], [])


def _runs(relative: PurePosixPath) -> str | None:
    """Why a project file runs during the build or the tests (None: it does not, by
    itself)."""
    if relative.as_posix() == "setup.py":
        return "setup.py runs during the build"
    if relative.name == "conftest.py":
        return "pytest runs every conftest.py it finds"
    if _shipped.is_test_or_scaffolding(relative.as_posix()) and relative.name != "setup.py":
        return "test code runs with the tests"
    return None


def project_targets(project: Path) -> list[Target]:
    """The project files that run during the build or the tests, and what they import."""
    project = project.resolve()
    files = [p for p in project_files(project) if p.suffix in PYTHON_SUFFIXES]
    chosen: dict[Path, str] = {}
    for path in files:
        why = _runs(PurePosixPath(path.relative_to(project).as_posix()))
        if why:
            chosen[path] = why
    for folder in _backend_folders(project):
        for path in project_files(project, folder):
            if path.suffix in PYTHON_SUFFIXES:
                chosen.setdefault(path, "the in-tree build backend (backend-path) runs the build")
    modules, queue = _Modules(project, files), list(chosen)
    while queue:
        importer = queue.pop()
        for path in modules.imported_by(importer):
            if path not in chosen:
                chosen[path] = f"imported by {importer.relative_to(project).as_posix()}"
                queue.append(path)
    return [Target(p, p.relative_to(project).as_posix(), why) for p, why in chosen.items()]


def extract_data_code(wheel: Path, dest: Path) -> list[str]:
    """Extract what the wheel's ``.data`` folder installs as code into ``dest``; the
    wheel paths of those files.  Call after :func:`_shipped.extract`, which refuses a
    wheel with an unsafe member or one too large to unpack."""
    names = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            path = PurePosixPath(info.filename)
            data = len(path.parts) > 2 and path.parts[0].endswith(".data")
            if not data or path.parts[1] not in _DATA_CODE or info.is_dir():
                continue
            if unsafe_reason(info.filename) is not None:
                continue  # extract() has refused the wheel already
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            names.append(path.as_posix())
    return names


def is_python_script(path: Path) -> bool:
    """A script the wheel installs that Python runs (``#!python``, as wheels write it)."""
    if path.suffix in PYTHON_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def _installed(shipped: str) -> PurePosixPath:
    """Where a wheel file lands in site-packages (``x.data/purelib/m.py`` -> ``m.py``)."""
    path = PurePosixPath(shipped)
    if path.parts[0].endswith(".data") and len(path.parts) > 2:
        return PurePosixPath(*path.parts[2:])
    return path


def _unchecked(path: Path) -> bool:
    """A hash-based .pyc that Python loads without checking its source (PEP 552)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(8)
    except OSError:
        return False
    flags = int.from_bytes(header[4:8], "little") if len(header) == 8 else 0
    return bool(flags & 0b01) and not flags & 0b10


def bytecode_findings(root: Path, shipped: list[str], project: Path) -> list[Finding]:
    """``.pyc`` files that would run in place of a source nobody reads."""
    sources = {_installed(n) for n in shipped if n.endswith(PYTHON_SUFFIXES)}
    findings = []
    for name in (n for n in shipped if n.endswith(".pyc")):
        installed = _installed(name)
        if installed.parent.name != "__pycache__":
            why = "bytecode outside __pycache__, which Python imports when no source is beside it"
        elif installed.parent.parent / f"{installed.name.split('.')[0]}.py" not in sources:
            why = "bytecode whose source the wheel does not ship"
        elif _unchecked(root / name):
            why = "bytecode that Python loads without checking it against its source"
        else:
            continue
        findings.append(Finding(BYTECODE, Severity.HIGH, f"{why}: it cannot be reviewed", name))
    for path in project_files(project):
        if path.suffix == ".pyc":
            relative = path.relative_to(project).as_posix()
            message = "bytecode in the project, which the build or the tests can import"
            findings.append(
                Finding(BYTECODE, Severity.HIGH, f"{message}: it cannot be reviewed", relative)
            )
    return capped(findings)


def shipped_targets(shipped: _shipped.ShippedCode, data: list[str], project: Path) -> list[Target]:
    """The wheel's Python files, each named by the project file it came from when one
    holds the same bytes (then that file is read, so its lines are the project's)."""
    by_name: dict[str, list[Path]] = {}
    for path in project_files(project):
        by_name.setdefault(path.name, []).append(path)
    targets = []
    for name in [*shipped.files, *data]:
        path = shipped.root / name
        if not (name.endswith(PYTHON_SUFFIXES) or (name in data and is_python_script(path))):
            continue
        origin = shipped.origins.get(name)
        if origin is None and name in data:  # .data files: matched here, by name and bytes
            content = path.read_bytes()
            same = (p for p in by_name.get(path.name, []) if p.read_bytes() == content)
            found = next(same, None)
            origin = found.relative_to(project).as_posix() if found else None
        if origin is not None:
            targets.append(Target(project / origin, origin, SHIPS))
        else:
            targets.append(Target(path, name, SHIPS))
    return targets
