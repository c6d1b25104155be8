"""What a process holds (threads, asyncio tasks, file descriptors), and what is new.

A conformance run takes a :class:`Snapshot` before the code under test starts and
compares after it says it has cleaned up: whatever is new is a leak, named.
Standard library only: this runs inside the sandbox worker.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import stat
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from .protocol import Problem

_FD_DIR = "/proc/self/fd"
#: The worker's own tasks (one per step it serves): never the code under test's leaks.
WORKER_TASKS: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


@dataclass(frozen=True)
class Snapshot:
    """Strong references, so a new thread or task can never pass for an old one whose
    id was reused."""

    threads: frozenset[threading.Thread]
    tasks: frozenset[asyncio.Task[Any]]
    fds: frozenset[tuple[int, str]]  # (fd, what it points to)


def open_fds() -> frozenset[tuple[int, str]]:
    """Every open descriptor with its target ("/path", "socket:[123]", "pipe:[7]", ...)."""
    if Path(_FD_DIR).is_dir():
        found = set()
        for name in os.listdir(_FD_DIR):  # noqa: PTH208 - names, not paths
            try:
                found.add((int(name), os.readlink(f"{_FD_DIR}/{name}")))  # noqa: PTH115
            except OSError:  # the descriptor listdir itself used, closed by now
                continue
        return frozenset(found)
    return _probe_fds()


def _probe_fds() -> frozenset[tuple[int, str]]:  # pragma: no cover - systems without /proc
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limit = 4096 if soft in (resource.RLIM_INFINITY, -1) else min(soft, 4096)
    found = set()
    for fd in range(limit):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        kind = "socket:" if stat.S_ISSOCK(mode) else "pipe:" if stat.S_ISFIFO(mode) else "file:"
        found.add((fd, f"{kind}[{fd}]"))
    return frozenset(found)


def take_snapshot() -> Snapshot:
    """Call from inside the event loop, so its tasks are seen."""
    try:
        tasks = frozenset(asyncio.all_tasks())
    except RuntimeError:  # no running loop
        tasks = frozenset()
    return Snapshot(frozenset(threading.enumerate()), tasks, open_fds())


def host_threads() -> set[threading.Thread]:
    """Threads of the running loop's default executor: ``asyncio.to_thread`` and
    ``run_in_executor(None, ...)`` borrow them from the host, who owns them."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return set()
    executor = getattr(loop, "_default_executor", None)
    return set(getattr(executor, "_threads", ()) or ())


def within(path: str, roots: list[str]) -> bool:
    absolute = os.path.abspath(path)  # noqa: PTH100 - plain strings, hot loop
    return any(absolute == root or absolute.startswith(root.rstrip(os.sep) + os.sep)
               for root in roots)  # fmt: skip


def frame_location(frame: FrameType | None, roots: list[str]) -> tuple[str | None, int | None]:
    """The innermost frame of a stack that lies in ``roots`` (the code under test)."""
    while frame is not None:
        if within(frame.f_code.co_filename, roots):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


def coroutine_location(coro: Any, roots: list[str]) -> tuple[str | None, int | None]:
    """Where a suspended coroutine chain waits, innermost frame in ``roots`` first."""
    found: tuple[str | None, int | None] = (None, None)
    seen = 0
    while coro is not None and seen < 100:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and within(frame.f_code.co_filename, roots):
            found = (frame.f_code.co_filename, frame.f_lineno)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        seen += 1
    return found


def _socket_description(fd: int) -> str:
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.fileno() == fd:
            try:
                address = obj.getsockname()
            except OSError:
                address = None
            where = f" at {address}" if address else ""
            return f"{obj.family.name}/{obj.type.name}{where}"
    return "no Python object"


def _thread_leak(thread: threading.Thread, roots: list[str]) -> Problem:
    frames: dict[int, FrameType] = getattr(sys, "_current_frames", dict)()
    frame = frames.get(thread.ident) if thread.ident is not None else None
    file, line = frame_location(frame, roots)
    daemon = " (daemon)" if thread.daemon else ""
    return Problem("leak.thread", f"leaked thread {thread.name!r}{daemon}", file, line)


def _task_leak(task: asyncio.Task[Any], roots: list[str]) -> Problem:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or repr(coro)
    file, line = coroutine_location(coro, roots)
    return Problem("leak.task", f"leaked asyncio task {name} ({task.get_name()})", file, line)


def _fd_leak(fd: int, target: str) -> Problem:
    if target.startswith("socket:"):
        return Problem("leak.socket", f"leaked socket {_socket_description(fd)} (fd {fd})")
    if target.startswith("/"):
        return Problem("leak.file", f"leaked file {target} (fd {fd})")
    return Problem("leak.file", f"leaked file descriptor {target} (fd {fd})")


def find_leaks(before: Snapshot, roots: list[str]) -> list[Problem]:
    """Threads, tasks and descriptors that exist now and did not in ``before``."""
    problems: list[Problem] = []
    ignored = host_threads()
    for thread in threading.enumerate():
        if thread not in before.threads and thread not in ignored and thread.is_alive():
            problems.append(_thread_leak(thread, roots))
    try:
        current = asyncio.current_task()
        tasks = asyncio.all_tasks()
    except RuntimeError:
        current, tasks = None, set()
    new_tasks = [
        t for t in tasks if t not in before.tasks and t is not current and t not in WORKER_TASKS
    ]
    for task in sorted(new_tasks, key=lambda t: t.get_name()):
        problems.append(_task_leak(task, roots))
    for fd, target in sorted(open_fds() - before.fds):
        problems.append(_fd_leak(fd, target))
    return problems


async def settle_and_find_leaks(
    before: Snapshot, roots: list[str], grace_s: float = 0.5
) -> list[Problem]:
    """:func:`find_leaks`, after giving cancelled tasks and stopping threads ``grace_s``
    seconds to finish (a cleanup that cancels without awaiting is not a leak)."""
    deadline = time.monotonic() + grace_s
    while True:
        await asyncio.sleep(0.02)
        problems = find_leaks(before, roots)
        if not problems or time.monotonic() >= deadline:
            return problems
