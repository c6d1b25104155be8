"""What a worker process holds, read by the supervisor from ``/proc`` (outside the
worker, so nothing the code under test does in its own process can change the answer):
its threads, its open files and sockets (with their addresses, from the worker's own
network namespace) and the processes it started.

The supervisor takes a :class:`ProcessView` before the plugin's module is imported and
another after cleanup; :func:`new_holdings` names what is new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..process import descendants
from .protocol import Problem

_FD_KINDS = ("leak.socket", "leak.file")

_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "06": "TIME_WAIT", "07": "CLOSE",
               "08": "CLOSE_WAIT", "0A": "LISTEN"}  # fmt: skip


@dataclass(frozen=True)
class ProcessView:
    pid: int
    threads: frozenset[int]
    fds: frozenset[tuple[int, str]]  # (fd, what it points to)
    children: frozenset[int]


def view(pid: int, root: int | None = None) -> ProcessView | None:
    """What ``pid`` holds now; None when it is gone (or /proc cannot say).  ``root``:
    the process the run started (bubblewrap): orphans of the worker are reparented to
    the jail's init, so every live process under ``root`` that is neither the worker
    nor one of its ancestors counts as the worker's."""
    proc = Path(f"/proc/{pid}")
    try:
        threads = frozenset(int(t) for t in os.listdir(proc / "task"))  # noqa: PTH208
        fds = set()
        for name in os.listdir(proc / "fd"):  # noqa: PTH208
            try:
                fds.add((int(name), os.readlink(proc / "fd" / name)))  # noqa: PTH115
            except OSError:  # closed meanwhile
                continue
    except OSError:
        return None
    top = pid if root is None else root
    above = _ancestors(pid, top)
    children = {p for p in descendants(top) if p != pid and p not in above and _running(p)}
    return ProcessView(pid, threads, frozenset(fds), frozenset(children))


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _ancestors(pid: int, root: int) -> set[int]:
    found, current = {root}, pid
    for _ in range(64):  # a jail is a few levels deep
        parent = _status(current).get("PPid", "").strip()
        if not parent.isdigit() or int(parent) in (0, root):
            break
        current = int(parent)
        found.add(current)
    return found


def _running(pid: int) -> bool:
    """Not a zombie: a process that ended and waits to be reaped runs nothing."""
    return _status(pid).get("State", "Z").strip()[:1] not in ("Z", "X")


def _socket_table(pid: int) -> dict[str, str]:
    """Socket inode -> "TCP 127.0.0.1:8080 LISTEN" and the like, for ``pid``'s namespace."""
    found: dict[str, str] = {}
    for table, label in (("tcp", "TCP"), ("tcp6", "TCP"), ("udp", "UDP"), ("udp6", "UDP")):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9:
                state = _TCP_STATES.get(cols[3], "") if label == "TCP" else ""
                found[cols[9]] = " ".join(filter(None, (label, _address(cols[1]), state)))
    try:
        rows = Path(f"/proc/{pid}/net/unix").read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        rows = []
    for row in rows:
        cols = row.split()
        if len(cols) > 6:
            found[cols[6]] = "unix " + (cols[7] if len(cols) > 7 else "(unnamed)")
    return found


def _address(hex_address: str) -> str:
    """/proc/net's ``0100007F:1F90`` -> ``127.0.0.1:8080`` (IPv6 shown as its hex)."""
    host, _, port = hex_address.partition(":")
    try:
        number = int(port, 16)
        if len(host) == 8:
            packed = bytes.fromhex(host)[::-1]  # little-endian 32-bit word
            return f"{'.'.join(str(b) for b in packed)}:{number}"
    except ValueError:
        return hex_address
    return f"[{host}]:{number}"


def _program(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= 80 else text[:77] + "..."


def new_holdings(
    before: ProcessView, after: ProcessView, accounted_threads: int = 0
) -> list[Problem]:
    """Threads, descriptors and processes in ``after`` that were not in ``before``.
    ``accounted_threads``: new threads the worker already named itself (with where they
    run), so that only the ones it did not name are reported again here."""
    problems = []
    new_threads = sorted(after.threads - before.threads)
    unnamed = new_threads[accounted_threads:] if accounted_threads else new_threads
    for tid in unnamed:
        problems.append(
            Problem(
                "leak.thread",
                f"a thread (tid {tid}) started after the "
                "plugin was imported is still running, seen from outside",
            )
        )
    known = {fd for fd, _ in before.fds}
    sockets: dict[str, str] | None = None
    for fd, target in sorted(after.fds - before.fds):
        if fd in known and (fd, target) not in before.fds:
            known.discard(fd)  # the same number, reused for something new
        if target.startswith("socket:["):
            sockets = _socket_table(after.pid) if sockets is None else sockets
            what = sockets.get(target[len("socket:[") : -1], "of an unknown kind")
            problems.append(Problem("leak.socket", f"leaked socket {what} (fd {fd})"))
        elif target.startswith("/"):
            problems.append(Problem("leak.file", f"leaked file {target} (fd {fd})"))
        else:
            problems.append(Problem("leak.file", f"leaked file descriptor {target} (fd {fd})"))
    for pid in sorted(after.children - before.children):
        problems.append(Problem("leak.process", f"left a process running: pid {pid} "
                                f"({_program(pid)})"))  # fmt: skip
    return problems


def outside_problems(
    before: ProcessView, after: ProcessView, reported: tuple[Problem, ...]
) -> list[Problem]:
    """:func:`new_holdings`, less what the worker's own look already named: its thread
    leaks (it knows where they run) and the descriptors it reported by number."""
    named_threads = sum(p.kind == "leak.thread" for p in reported)
    named_fds = {p.message.rsplit("(fd ", 1)[-1] for p in reported if p.kind in _FD_KINDS}
    return [
        p
        for p in new_holdings(before, after, named_threads)
        if p.kind not in _FD_KINDS or p.message.rsplit("(fd ", 1)[-1] not in named_fds
    ]
