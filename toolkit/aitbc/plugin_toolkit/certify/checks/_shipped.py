"""The plugin's code as its wheel ships it, and the project file each module came from.

The `interface` and `security` checks read exactly what a registry user installs (the
wheel's packages, not the source tree with its tests and scaffolding) and name each
finding by the project file that holds the same bytes, so its line numbers hold.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..base import CheckError
from ..policy import MAX_ARTIFACT_MB_CEILING
from ._archive import MIB, mib, unsafe_reason

#: Folders of a project that never hold the source a wheel was built from.
NOT_SOURCE = frozenset({"__pycache__", "build", "dist", "node_modules", "site-packages"})
SOURCE_SUFFIXES = (".py", ".pyi")
#: Files that decide what the wheel holds, besides the sources themselves.
BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "requirements.txt")
#: Project scaffolding: never the plugin's code, even when a wheel ships it by mistake
#: (the `build` check reports that).
SCAFFOLDING = frozenset({"setup.py", "conftest.py"})
_NOT_CODE = (".dist-info", ".data")
#: A member whose path another member already holds as a file, or as a folder.
_CLASHES = (FileExistsError, NotADirectoryError, IsADirectoryError)


@dataclass(frozen=True)
class ShippedCode:
    root: Path  # where the wheel's packages were extracted
    files: tuple[str, ...]  # every file extracted, posix paths relative to root
    origins: dict[str, str]  # shipped path -> project-relative path, where one matches

    def project_path(self, shipped: str) -> str:
        """The project file a shipped file came from (the wheel path when none matches)."""
        return self.origins.get(shipped, shipped)

    @property
    def sources(self) -> list[str]:
        return [name for name in self.files if name.endswith(SOURCE_SUFFIXES)]


def is_test_or_scaffolding(shipped: str) -> bool:
    path = PurePosixPath(shipped)
    return (
        any(part in ("tests", "test") for part in path.parts[:-1])
        or path.name.startswith("test_")
        or path.name.endswith("_test.py")
        or path.name in SCAFFOLDING
    )


class UnsafeWheel(CheckError):
    """The wheel cannot be extracted safely.  The check that extracts it cannot decide
    (an ``error``); the ``build`` check reports the member as a finding."""


def extract(wheel: Path, dest: Path, project: Path) -> ShippedCode:
    """Extract the wheel's packages (not its .dist-info or .data) into ``dest``.

    Raises :class:`UnsafeWheel` (a CheckError naming the ``build`` finding) for a
    member that would land outside ``dest``, a wheel that unpacks to more than any
    policy allows, or one that cannot be read."""
    names: list[str] = []
    try:
        with zipfile.ZipFile(wheel) as archive:
            infos = archive.infolist()
            for info in infos:
                why = unsafe_reason(info.filename)
                if why is not None:
                    raise UnsafeWheel(
                        f"the wheel holds an unsafe path {info.filename!r} ({why}), so it is "
                        "not extracted: see the build check's finding build.unsafe-path"
                    )
            unpacked = sum(info.file_size for info in infos)
            if unpacked > MAX_ARTIFACT_MB_CEILING * MIB:
                raise UnsafeWheel(
                    f"the wheel unpacks to {mib(unpacked)}, so it is not extracted: see the "
                    "build check's finding build.too-large"
                )
            for info in infos:
                path = PurePosixPath(info.filename)
                if not path.parts or info.is_dir() or path.parts[0].endswith(_NOT_CODE):
                    continue
                target = dest.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)  # streamed: never the whole member in memory
                names.append(path.as_posix())
    except _CLASHES as exc:
        raise UnsafeWheel(
            f"the wheel cannot be extracted ({type(exc).__name__}: {exc}): see the build "
            "check's finding build.duplicate-member"
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise UnsafeWheel(
            f"the wheel cannot be read ({type(exc).__name__}: {exc}): see the build "
            "check's finding build.unreadable"
        ) from None
    return ShippedCode(dest, tuple(sorted(names)), _origins(dest, names, project))


def project_sources(project: Path) -> list[Path]:
    """The project's Python files, outside hidden, build and virtual-environment folders."""
    found = []
    for folder, dirs, files in os.walk(project):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in NOT_SOURCE
            and not d.endswith(".egg-info")
            and not (Path(folder, d) / "pyvenv.cfg").exists()
        )
        found += [Path(folder, f) for f in sorted(files) if f.endswith(SOURCE_SUFFIXES)]
    return found


def build_files(project: Path) -> list[Path]:
    return [project / name for name in BUILD_FILES if (project / name).is_file()]


def cache_inputs(project: Path, wheel: Path | None, *config: Path) -> list[Path] | None:
    """What decides a check over the shipped code: the wheel (reproducible, so unchanged
    sources give the same bytes, and an edited test does not change it), the build files
    (they map wheel files back to project paths) and the check's own files."""
    return None if wheel is None else [wheel, *build_files(project), *config]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _origins(dest: Path, shipped: list[str], project: Path) -> dict[str, str]:
    """Match each shipped source to the project file with the same bytes; among equals,
    the one whose path shares the longest tail with it (then the shortest)."""
    by_content: dict[tuple[str, str], list[PurePosixPath]] = {}
    for path in project_sources(project):
        relative = PurePosixPath(path.relative_to(project).as_posix())
        by_content.setdefault((relative.name, _digest(path)), []).append(relative)
    origins = {}
    for name in shipped:
        if not name.endswith(SOURCE_SUFFIXES):
            continue
        wanted = PurePosixPath(name)
        candidates = by_content.get((wanted.name, _digest(dest / name)), [])
        if candidates:
            best = max(
                candidates,
                key=lambda c: (_shared_tail(c, wanted), -len(c.parts), str(c)),
            )
            origins[name] = best.as_posix()
    return origins


def _shared_tail(a: PurePosixPath, b: PurePosixPath) -> int:
    count = 0
    for x, y in zip(reversed(a.parts), reversed(b.parts), strict=False):
        if x != y:
            break
        count += 1
    return count
