"""What a cached environment held when it was made, and whether it still does.

The plugin environments and the build environments live in the user cache and are
reused from run to run.  Plugin code sees them read-only in the kernel jail; but a
plugin certified in an older or unjailed run (or anything else running as the user)
could have written into one: a ``.pth`` dropped into site-packages runs at every start
of that Python, a rewritten module of the SDK blinds the checks that use it, a
``conftest.py`` changes what pytest does.  Every later plugin certified with that
environment would then be judged by the altered code.

So when an environment is made (after the install, before it is marked complete) every
entry under its root is recorded in its ``.complete`` marker: a file as the sha256 of
its content, a symlink as its target (never followed), a folder as a folder, anything
else (a FIFO, a socket) as what it is.  Before each reuse the tree is hashed again and
compared with the record: any file added, removed or changed means the environment is
not reused but rebuilt, and the caller is told why.

What this stops: any change to the environment's files made by something that did not
also rewrite the manifest.  What it does not stop: the manifest lives in the same
cache, so a writer who can write the user's cache (and knows this scheme) can rewrite
both.  The real protection is the jail, which makes the cache read-only to plugin code;
this is the check that catches what got past it (an older toolkit, an unjailed run, a
careless tool).  Nor does it look at metadata only: size, mtime and inode are no proof
against a hostile writer, who can set the mtime back (``os.utime``) and keep the size
and inode (writing in place), so every file's content is hashed, a batch per thread
(hashlib releases the GIL): about 40 ms for pytest, the SDK and a small plugin (1,500
entries, 22 MB) on two cores, against a second or more to rebuild; a process
verifying the same files again (one run does, several times) reads only those whose
inode, size, mtime or ctime changed since (see ``_DIGESTS``).

Bytecode is code: a rewritten ``__pycache__/*.pyc`` runs as surely as a rewritten
``.py``, so it is recorded like any file.  For that record to stay true, nothing may
write bytecode into the environment after it: :func:`compile_bytecode` compiles every
module before the manifest is taken, so a Python run outside the jail later (the audit's
inventory, mypy asking for the search path, every check where there is no jail) finds
valid bytecode and writes none; a Python that would write anyway (because a source's
mtime was changed, or it runs with ``-O``) makes the environment be rebuilt, which is
safe.  One exception, where the machine has the jail (in which every environment is
read-only, so a module without bytecode is only compiled in memory by what imports
it): pygments' lexers, styles and formatters other than those pytest imports
(:data:`ON_DEMAND`), which pygments loads by name when asked for one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import py_compile
import stat
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aitbc.plugins.process import run
from aitbc.plugins.sandbox.jail import isolation

from ..errors import ToolkitError
from ..files import write_atomic

MARKER = ".complete"  # written last: an environment without it is half-built
FORMAT = 1
_CHUNK = 1 << 20
_WORKERS = max(1, min(4, os.cpu_count() or 1))  # more only contend for the GIL
_SHOWN = 3  # differences named in a reason; the rest are counted


def _entries(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under ``root`` (the marker excepted), symlinks never followed."""
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                relative = prefix + entry.name
                if relative == MARKER:
                    continue
                yield relative, entry
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), relative + "/"))


#: Digests this process computed, by the identity of what it read: one run verifies
#: the same base, and the same build environment, more than once (each build, the early
#: base and the plugin's environment).  Content cannot change under an unchanged
#: inode, size, mtime and ctime: the kernel sets ctime on every write and no call sets
#: it back (utime sets atime and mtime only).  Only a file whose ctime was already
#: SETTLED_NS old when it was read is kept, as git does for its index: a write within
#: the same tick of a coarse clock could otherwise leave all four unchanged.
_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}
SETTLED_NS = 2_000_000_000


def _file_digest(path: str) -> str:
    # O_NOFOLLOW and O_NONBLOCK: what was a file when listed may be a link or a FIFO
    # now; it is then recorded as "other", never followed, never waited on.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return "other"
        identity = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns,
                    before.st_ctime_ns)  # fmt: skip
        known = _DIGESTS.get(identity)
        if known is not None:
            return known
        began = time.time_ns()
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        found = "sha256:" + digest.hexdigest()
        after = os.fstat(fd)
    finally:
        os.close(fd)
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == identity[2:]
    if unchanged and before.st_ctime_ns < began - SETTLED_NS:
        _DIGESTS[identity] = found
    return found


def _digests(paths: list[str]) -> list[str]:
    return [_file_digest(path) for path in paths]


def _describe(entry: os.DirEntry[str]) -> str | None:
    """What the entry is when that needs no reading; None for a regular file."""
    if entry.is_symlink():
        return f"link:{Path(entry.path).readlink()}"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return None
    return f"other:{stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode):o}"


def manifest(root: Path) -> dict[str, str]:
    """Relative path -> ``sha256:<hex>``, ``link:<target>``, ``dir`` or ``other...``."""
    described: dict[str, str] = {}
    files: list[tuple[str, str]] = []
    for relative, entry in _entries(root):
        kind = _describe(entry)
        if kind is None:
            files.append((relative, entry.path))
        else:
            described[relative] = kind
    # One batch per thread: a future per file would cost more than most files' hashing.
    batches = [files[i::_WORKERS] for i in range(_WORKERS)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        for batch, digests in zip(
            batches, pool.map(_digests, [[p for _, p in b] for b in batches]), strict=True
        ):
            described.update(zip([name for name, _ in batch], digests, strict=True))
    return dict(sorted(described.items()))


#: pytest (a dependency of every plugin environment) imports 21 of pygments' 340
#: modules; the others are lexers, styles and formatters pygments loads by name on
#: demand, and compiling them was half of a new base's compile time (1.05 s of 1.9 s
#: of CPU).  Matched against each module's full path (compileall's ``-x``).
ON_DEMAND = (
    r"/pygments/(lexers|styles|formatters)/"
    r"(?!(__init__|_mapping|python|diff|terminal)\.py$)[^/]+\.py$"
)


def compile_bytecode(site_packages: Path, timeout: float, only: list[Path] | None = None) -> None:
    """Compile every module under ``site_packages`` (or just those in ``only``), but
    :data:`ON_DEMAND` where there is a jail: compiling runs no code, and with ``-I -S``
    this Python starts without any ``.pth`` file.  It is the Python the environment was
    made with, so the bytecode is what the environment's Python would write (the same
    cache tag and magic number).  On every core.  A module that does not compile gets
    no bytecode, here or later."""
    if only is not None:
        # A plugin's few modules: compiled here, in a fraction of a new Python's start.
        for path in only:
            with contextlib.suppress(py_compile.PyCompileError, OSError):
                py_compile.compile(str(path), doraise=True, optimize=0)
        return
    command = [sys.executable, "-I", "-S", "-m", "compileall", "-qq", "-j", "0"]
    if isolation().jailed:
        command += ["-x", ON_DEMAND]
    if run([*command, str(site_packages)], timeout=timeout).timed_out:
        raise ToolkitError(f"compiling the environment's modules took longer than {timeout:g}s")


def record(root: Path) -> None:
    """Mark ``root`` complete, with the manifest of what it holds now (atomically: a
    marker is either absent or whole)."""
    data = {"format": FORMAT, "files": manifest(root)}
    write_atomic(root / MARKER, json.dumps(data, indent=0, sort_keys=True).encode())


def is_marked(root: Path) -> bool:
    return (root / MARKER).is_file()


def touch(root: Path) -> None:
    """Recently used: pruned last (the marker's mtime is not part of the record)."""
    (root / MARKER).touch()


def marked_at(root: Path) -> float:
    return (root / MARKER).stat().st_mtime


def verify(root: Path) -> str | None:
    """None when ``root`` holds exactly what its marker records; else why not, for a
    person ("lib/python3.12/site-packages/evil.pth added")."""
    try:
        data = json.loads((root / MARKER).read_bytes())
        recorded = data["files"] if data.get("format") == FORMAT else None
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        recorded = None
    if not isinstance(recorded, dict):
        return "no record of its files (made by an older toolkit, or the record is damaged)"
    try:
        found = manifest(root)
    except OSError as exc:
        return f"it cannot be read: {exc}"
    return differences(recorded, found)


def differences(recorded: dict[str, str], found: dict[str, str]) -> str | None:
    """The changes from ``recorded`` to ``found``, the first few named; None if none."""
    changes = [f"{name} added" for name in found.keys() - recorded.keys()]
    changes += [f"{name} removed" for name in recorded.keys() - found.keys()]
    changes += [
        f"{name} changed"
        for name in found.keys() & recorded.keys()
        if found[name] != recorded[name]
    ]
    if not changes:
        return None
    changes.sort()
    more = len(changes) - _SHOWN
    return "; ".join(changes[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
