"""The sdist, read as a stream before anything in it is unpacked.

The sdist is a gzip stream of a tar: sizes are in its headers, and the gzip stream is
unpacked through a counter that stops at the limit, so a gzip bomb costs no more than
the limit.  Every member must be a folder or a regular file whose path stays inside
the one source folder (no link, device or FIFO: `tarfile`'s data filter would raise
on some of these, and a link is how an sdist points outside itself).

A file from outside the project: the build ran on a copy of the project, so every
file of the sdist must have the bytes of some file of the project copy the checks
read (``workdir``, which the build never writes), whatever its path (a backend may
move files).  Only what the build backend writes itself is exempt, by name:
`PKG-INFO`, the distribution's own `<name>.egg-info/` files, and a `setup.cfg` that is
the project's (or nothing) plus setuptools' `[egg_info]` tag settings.  A build
script that copies a host file (`/etc/...`, a token) into the sdist is then named;
it cannot be told from the project by its path alone, only by its bytes.
"""

from __future__ import annotations

import configparser
import gzip
import hashlib
import os
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from packaging.utils import canonicalize_name

from ..model import Finding, Severity
from ._archive import RATIO_FLOOR, SizeLimits, capped, mib, unsafe_reason

#: Members after which the sdist is not read further (a plugin has a few dozen files).
MAX_MEMBERS = 10_000
#: What setuptools writes into `<name>.egg-info/` (egg_info's writers).
EGG_INFO_FILES = frozenset({
    "PKG-INFO", "SOURCES.txt", "dependency_links.txt", "entry_points.txt", "requires.txt",
    "top_level.txt", "namespace_packages.txt", "eager_resources.txt", "not-zip-safe",
    "zip-safe",
})  # fmt: skip
_DATE = re.compile(r"\d{8}")  # time.strftime("%Y%m%d"), setuptools' tag_date
_HIGH = Severity.HIGH
_CHUNK = 1 << 16


class _TooLarge(Exception):
    pass


class _Counted:
    """A reader that raises once more than ``limit`` bytes came through it."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def read(self, size: int = -1) -> bytes:
        room = self.limit - self.count + 1  # one byte past the limit proves it is passed
        data = self.inner.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise _TooLarge
        return data


@dataclass
class SdistContents:
    findings: list[Finding] = field(default_factory=list)
    root: str | None = None  # the one top-level source folder


def inspect_sdist(
    sdist: Path, workdir: Path, distribution: str, limits: SizeLimits
) -> SdistContents:
    """What is wrong with ``sdist``, read without unpacking it to disk."""
    found = SdistContents()
    packed = sdist.stat().st_size
    if packed > limits.max_artifact:
        over = f"the sdist is {mib(packed)}, over {mib(limits.max_artifact)}"
        found.findings.append(Finding("build.too-large", _HIGH, over))
        return found
    # Headers and padding: at most 1.5 KiB a member besides its data.
    stream_limit = limits.max_artifact + MAX_MEMBERS * 1536 + (1 << 20)
    roots: set[str] = set()
    with sdist.open("rb") as raw:
        counted = _Counted(gzip.GzipFile(fileobj=raw), stream_limit)  # type: ignore[arg-type]
        try:
            with tarfile.open(fileobj=counted, mode="r|") as archive:  # type: ignore[call-overload]
                found.findings += _read_members(
                    archive, _ProjectFiles(workdir), distribution, limits, roots
                )
        except _TooLarge:
            over = f"the sdist unpacks to more than {mib(stream_limit)}"
            found.findings.append(Finding("build.too-large", _HIGH, over))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            why = f"the sdist is not a readable .tar.gz: {type(exc).__name__}: {exc}"
            found.findings.append(Finding("build.unreadable", _HIGH, why))
    total = counted.count
    if total >= RATIO_FLOOR and total > limits.max_ratio * packed:
        found.findings.append(
            Finding(
                "build.compression-ratio",
                _HIGH,
                f"the sdist unpacks {total / packed:.0f}:1 to {mib(total)}, over the "
                f"limit of {limits.max_ratio:g}:1 (a gzip bomb)",
            )
        )
    if len(roots) == 1:
        found.root = roots.pop()
    else:
        listed = ", ".join(sorted(roots)[:5]) or "nothing"
        layout = f"the sdist must hold one source folder, not {len(roots)}: {listed}"
        found.findings.append(Finding("build.sdist-layout", _HIGH, layout))
    found.findings = capped(found.findings)
    return found


def _read_members(
    archive: tarfile.TarFile,
    project: _ProjectFiles,
    distribution: str,
    limits: SizeLimits,
    roots: set[str],
) -> list[Finding]:
    """Each member in stream order, judged before the next is read; ``roots`` gets the
    top-level names."""
    findings: list[Finding] = []
    unpacked = 0
    for number, member in enumerate(archive, start=1):
        if number > MAX_MEMBERS:
            many = f"the sdist has more than {MAX_MEMBERS} members"
            return [*findings, Finding("build.too-large", _HIGH, many)]
        problem = _member_problem(member, limits)
        unpacked += max(member.size, 0)
        if problem is not None:
            findings.append(problem)
        elif unpacked > limits.max_artifact:
            over = f"the sdist unpacks to more than {mib(limits.max_artifact)}"
            return [*findings, Finding("build.too-large", _HIGH, over)]
        elif member.isfile():
            findings += _origin_problem(archive, member, project, distribution)
        parts = PurePosixPath(member.name).parts
        if unsafe_reason(member.name) is None and parts:
            roots.add(parts[0] if len(parts) > 1 or member.isdir() else member.name)
    return findings


def _member_problem(member: tarfile.TarInfo, limits: SizeLimits) -> Finding | None:
    name = member.name
    why = unsafe_reason(name)
    if why is not None:
        return Finding(
            "build.unsafe-path",
            _HIGH,
            f"{name!r} is an unsafe path ({why}): unpacking the sdist could write "
            "outside its folder",
            name,
        )
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        return Finding(
            "build.sdist-link",
            _HIGH,
            f"{name} is a {kind} link to {member.linkname!r}: an sdist holds files, "
            "and a link can point outside it",
            name,
        )
    if not (member.isfile() or member.isdir()):
        return Finding(
            "build.sdist-special",
            _HIGH,
            f"{name} is not a file or folder (a device, FIFO or other special member)",
            name,
        )
    if member.size > limits.max_file:
        return Finding(
            "build.too-large",
            _HIGH,
            f"{name} unpacks to {mib(member.size)}, over {mib(limits.max_file)}",
            name,
        )
    return None


def _origin_problem(
    archive: tarfile.TarFile, member: tarfile.TarInfo, project: _ProjectFiles, distribution: str
) -> list[Finding]:
    source = archive.extractfile(member)
    data = b"" if source is None else source.read()  # at most max_file bytes: checked
    relative = PurePosixPath(*PurePosixPath(member.name).parts[1:])
    if project.holds(data) or _generated(relative, data, project, distribution):
        return []
    return [
        Finding(
            "build.outside-project",
            _HIGH,
            f"{member.name} has bytes that no file of the project has: the build put a "
            "file from outside the project (or rewrote one) into the sdist",
            member.name,
        )
    ]


def _generated(
    relative: PurePosixPath, data: bytes, project: _ProjectFiles, distribution: str
) -> bool:
    """A file the build backend writes itself, by name."""
    parts = relative.parts
    if parts == ("PKG-INFO",):
        return True
    if len(parts) >= 2 and parts[-2].endswith(".egg-info") and parts[-1] in EGG_INFO_FILES:
        return canonicalize_name(parts[-2][: -len(".egg-info")]) == canonicalize_name(distribution)
    if parts == ("setup.cfg",):
        return is_setuptools_setup_cfg(data.decode("utf-8", "replace"), project.text("setup.cfg"))
    return False


def is_setuptools_setup_cfg(shipped: str, project: str | None) -> bool:
    """``shipped`` is the project's setup.cfg (or none) with the [egg_info] tags that
    setuptools' sdist writes (save_version_info: ``tag_build`` with the date folded in,
    ``tag_date = 0``).  Compared parsed: setuptools rewrites the file, comments and all."""
    try:
        theirs, ours = _settings(shipped), _settings(project or "")
    except configparser.Error:
        return False
    tags, kept = theirs.pop("egg_info", {}), ours.pop("egg_info", {})
    if theirs != ours or not set(kept) <= set(tags):
        return False
    for key, value in tags.items():
        if key == "tag_build":
            base = kept.get(key, "")
            dated = value[len(base) :]
            if not value.startswith(base) or not (dated == "" or _DATE.fullmatch(dated)):
                return False
        elif key == "tag_date":
            if value != "0":
                return False
        elif kept.get(key) != value:
            return False
    return True


def _settings(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return {section: dict(parser.items(section)) for section in parser.sections()}


class _ProjectFiles:
    """The project copy's regular files, by size, hashed only when a member's size
    matches (symbolic links are not followed: a link may point outside the project)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_size: dict[int, list[Path]] = {}
        self.digests: dict[Path, str] = {}
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                if path.is_symlink() or not path.is_file():
                    continue
                self.by_size.setdefault(path.stat().st_size, []).append(path)

    def holds(self, data: bytes) -> bool:
        wanted = hashlib.sha256(data).hexdigest()
        for path in self.by_size.get(len(data), []):
            if path not in self.digests:
                try:
                    self.digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:  # unreadable: it vouches for nothing
                    self.digests[path] = ""
            if self.digests[path] == wanted:
                return True
        return False

    def text(self, relative: str) -> str | None:
        path = self.root / relative
        if path.is_symlink() or not path.is_file():
            return None
        return path.read_text(encoding="utf-8", errors="replace")


def unpack(sdist: Path, dest: Path) -> str | None:
    """Unpack an sdist that :func:`inspect_sdist` found nothing wrong with; the reason
    when the data filter still refuses it."""
    try:
        with tarfile.open(sdist) as archive:
            archive.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
