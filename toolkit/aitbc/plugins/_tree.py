"""Ending a process tree on Linux, for process.py: what /proc says of the tree's
members, freezing them round after round until no one new is found, killing them,
and reaping the orphans that came to us (process.py's docstring says what this
catches and what it does not)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

TREE_VARIABLE = "AITBC_PROCESS_TREE"
REAP_S = 1.0  # how long ending a tree waits for the killed to die, to reap them
_ROUNDS = 50  # freezing rounds at most: each finds what forked before the last SIGSTOP
LINUX = sys.platform.startswith("linux")


# -- ending ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Stat:
    ppid: int
    group: int
    session: int
    zombie: bool
    started: int  # clock ticks after boot: tells a pid's reuse from its first owner


def _stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:  # noqa: PTH123 - hot loop
            fields = file.read().rpartition(b")")[2].split()  # the name may hold ")"
        ppid, group, session, started = (int(fields[i]) for i in (1, 2, 3, 19))
        return _Stat(ppid, group, session, fields[0] == b"Z", started)
    except (OSError, IndexError, ValueError):
        return None


def process_table() -> dict[int, _Stat]:
    try:
        entries = os.listdir("/proc")  # noqa: PTH208 - names, not paths
    except OSError:
        return {}
    table = {}
    for entry in entries:
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            table[int(entry)] = stat
    return table


def below(roots: Iterable[int], table: dict[int, _Stat]) -> set[int]:
    """``roots`` and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _carries(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:  # noqa: PTH123 - hot loop
            entries = file.read().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False
    prefix = TREE_VARIABLE.encode() + b"="
    return any(e.startswith(prefix) and token in e[len(prefix) :].split(b":") for e in entries)


def _members(
    table: dict[int, _Stat], group: int | None, root: int | None, token: bytes | None
) -> set[int]:
    """The tree's processes, as far as /proc tells; only ever among our descendants,
    apart from ``root`` itself and its descendants."""
    ours = below([os.getpid()], table) - {os.getpid()}
    seeds = (
        set()
        if group is None
        else {pid for pid in ours if group in (table[pid].group, table[pid].session)}
    )
    if token is not None:
        seeds |= {pid for pid in ours if not table[pid].zombie and _carries(pid, token)}
    if root is not None and root in table:
        seeds.add(root)
    return below(seeds, table) - {os.getpid()}


def end_tree(group: int | None, root: int | None, token: str | None, known: Iterable[int]) -> None:
    """Freeze the tree (SIGSTOP), in rounds until no one new is found, then SIGKILL it
    and reap the orphans.  Frozen first: a process killed before its children are found
    would orphan them, and a stopped one cannot fork or exit while we look."""
    if not LINUX or not os.path.isdir("/proc/self"):  # noqa: PTH112 - one call
        if group is not None:
            _send(group, signal.SIGKILL, group=True)
        if root is not None:
            _send(root, signal.SIGKILL)
        return
    marker = None if token is None else token.encode()
    found: dict[int, int] = {}  # pid: start time
    extra = set(known)
    try:
        for _ in range(_ROUNDS):
            if group is not None:
                _send(group, signal.SIGSTOP, group=True)
            table = process_table()
            new = (_members(table, group, root, marker) | (extra & table.keys())) - found.keys()
            if not new:
                break
            for pid in new:
                _send(pid, signal.SIGSTOP)
                found[pid] = table[pid].started
    finally:  # never leave a stopped process behind, even when interrupted
        for pid in found:
            _send(pid, signal.SIGKILL)
        if group is not None:
            _send(group, signal.SIGKILL, group=True)
    _reap(found, keep=root)


def _send(pid: int, signum: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, signum)


def _reap(killed: dict[int, int], keep: int | None) -> None:
    """Wait (briefly) for the killed to die and reap those that became our children, so
    orphans do not pile up as zombies of this process.  ``keep``: its Popen reaps it."""
    me = os.getpid()
    pending = {pid: started for pid, started in killed.items() if pid != keep}
    deadline = time.monotonic() + REAP_S
    while pending:
        for pid, started in list(pending.items()):
            stat = _stat(pid)
            if stat is None or stat.started != started:  # gone (the pid may be another's)
                del pending[pid]
            elif stat.ppid == me and stat.zombie:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                del pending[pid]
            elif stat.ppid != me and stat.ppid not in killed:
                del pending[pid]  # a live parent outside the tree reaps it, not us
        if pending and time.monotonic() < deadline:
            time.sleep(0.005)
        else:
            break
