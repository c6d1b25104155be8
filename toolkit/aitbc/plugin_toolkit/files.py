"""Never lose the user's data: build in a temporary place, then move into place
in one step, with Ctrl-C held back while the move happens."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT until the block ends, then deliver it (main thread only)."""
    try:
        previous = signal.getsignal(signal.SIGINT)
        received: list[int] = []

        def hold(signum: int, frame: FrameType | None) -> None:
            received.append(signum)

        signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


@contextlib.contextmanager
def staging_dir_beside(destination: Path) -> Iterator[Path]:
    """A temporary directory on the destination's filesystem, removed unless moved away."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def require_absent_or_empty(destination: Path) -> None:
    from .errors import ToolkitError

    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise ToolkitError(f"{destination} exists and is not a directory; choose another place")
    if destination.is_dir() and any(destination.iterdir()):
        raise ToolkitError(f"{destination} exists and is not empty; nothing was written")


def move_into_place(built: Path, destination: Path) -> None:
    """Rename ``built`` to ``destination`` (absent or an empty directory) in one step."""
    require_absent_or_empty(destination)
    with interrupts_deferred():
        if destination.is_dir():
            destination.rmdir()
        built.replace(destination)


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``path`` through a temporary sibling and a rename.  The file gets ``mode``,
    else the mode an ordinary new file would get (mkstemp alone would give 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        Path(tmp).chmod(_default_file_mode() if mode is None else mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
