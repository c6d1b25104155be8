"""What a jailed step did, seen from outside the jail: strace follows every process of
the jail (``strace -f``, on the host, around bubblewrap), and this module turns its log
into a :class:`Behaviour`: the network connections attempted, the programs executed,
the files written or opened for writing outside the step's scratch folder, and the
processes still running when the step's own process ended.

strace runs outside the jail, so nothing in it can see, stop or write to the tracer
or its log; a process that kills the jail's init just ends the step early.  The log is
written with ``-xx`` (every string in hex), so no file name or argument the plugin
chooses can be mistaken for strace's own syntax.  Standard library only.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .leaks import within
from .strace_log import Call, fd_path, parse, socket_address, string_arg, string_args

ActionKind = Literal["network", "program", "write", "process"]

#: The system calls followed: process creation (to account for every process), program
#: execution, connections, and everything that creates, changes or removes a file.
SYSCALLS = (
    "clone,clone3,fork,vfork,execve,execveat,chdir,fchdir,connect,sendto,"
    "open,openat,openat2,creat,mkdir,mkdirat,unlink,unlinkat,rmdir,rename,renameat,"
    "renameat2,link,linkat,symlink,symlinkat,truncate"
)
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
#: Writable places of the jail that are its own, not the host's: its private /dev.
_PRIVATE_WRITABLE = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/random",
    "/dev/urandom",
    "/dev/shm",  # noqa: S108 - the jail's own, not the host's
    "/dev/pts",
)


@dataclass(frozen=True)
class Action:
    """One thing a step did that a plugin may need to declare."""

    kind: ActionKind
    target: str  # "127.0.0.1:9", "/usr/bin/git", "/home/me/.ssh/x", "sleep 60"
    outcome: str = "ok"  # or the error the kernel answered: "EROFS", "ENETUNREACH"
    # What a declared permission is matched against: the host ("127.0.0.1", "::1", a
    # unix socket's path or @name), the program's or the file's path.
    subject: str = ""
    port: int | None = None

    def describe(self) -> str:
        verb = {"network": "connected to", "program": "ran", "write": "wrote",
                "process": "left running"}[self.kind]  # fmt: skip
        if self.outcome == "ok":
            return f"{verb} {self.target}"
        if self.outcome == "EINPROGRESS":  # a non-blocking connect: its end is not a call
            return f"tried to connect to {self.target}"
        tried = {"network": "tried to connect to", "program": "tried to run",
                 "write": "tried to write", "process": "left running"}[self.kind]  # fmt: skip
        return f"{tried} {self.target} ({self.outcome})"


@dataclass(frozen=True)
class Behaviour:
    """What one step did, in the order it happened (each action once)."""

    actions: tuple[Action, ...] = ()
    complete: bool = True  # the log could be read to its end

    def of(self, kind: ActionKind) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "network": [a.describe() for a in self.of("network")],
            "programs": [a.describe() for a in self.of("program")],
            "writes": [a.describe() for a in self.of("write")],
            "processes_left": [a.describe() for a in self.of("process")],
        }


def strace() -> str | None:
    return shutil.which("strace")


def tracer_prefix(log: str) -> list[str]:
    """The command that runs bubblewrap under strace, writing the log to ``log``."""
    found = strace()
    if found is None:
        raise OSError("strace is not installed")
    return [found, "-f", "-q", "--seccomp-bpf", "-y", "-xx", "-s", "256",
            "--decode-pids=pidns", "-e", f"trace={SYSCALLS}", "-e", "signal=none",
            "-o", log, "--"]  # fmt: skip


@dataclass
class _Process:
    program: str = ""
    cwd: str = "/"
    thread: bool = False
    alive: bool = True
    failed_exec: str | None = None  # the last program it could not run, if none ran after


@dataclass
class _Reader:
    """Turns the calls of one jail's processes into actions."""

    scratch: tuple[str, ...]
    expected_programs: frozenset[str]
    cwd: str
    processes: dict[int, _Process] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    seen: set[Action] = field(default_factory=set)  # the actions, to find one at once
    unwatched: list[str] = field(init=False)  # the scratch and the private places
    outer: int | None = None  # bubblewrap
    init: int | None = None  # bubblewrap's init inside the jail's PID namespace
    main: int | None = None  # the step's own process
    main_started: bool = False
    main_ended: bool = False

    def __post_init__(self) -> None:
        self.unwatched = [*self.scratch, *_PRIVATE_WRITABLE]

    def add(self, action: Action) -> None:
        if action not in self.seen:
            self.seen.add(action)
            self.actions.append(action)

    def feed(self, pid: int, event: Call | str) -> None:
        # bubblewrap, then its init in the new PID namespace, then the step's process: the
        # order their first lines come in, whatever order strace resolves their forks.
        if self.outer is None:
            self.outer = pid
        elif self.init is None and pid != self.outer:
            self.init = pid
        elif self.main is None and pid not in (self.outer, self.init):
            self.main = pid
        if pid in (self.outer, self.init):
            return
        process = self._process(pid)
        try:
            self._dispatch(pid, process, event)
        except IndexError:  # a call with fewer arguments than its kind has: not ours to read
            return

    def _dispatch(self, pid: int, process: _Process, event: Call | str) -> None:
        if isinstance(event, str):
            self._exited(pid, event)
        elif event.child is not None:
            child = self._process(event.child, parent=process)
            child.thread = "CLONE_THREAD" in " ".join(event.args)
        elif (handler := getattr(self, f"_on_{event.name}", None)) is not None:
            handler(process, event)
        elif event.name in ("open", "openat", "openat2", "creat"):
            self._opened(process, event)
        elif event.name in _PATH_CALLS:
            self._changed(process, event)

    def _process(self, pid: int, parent: _Process | None = None) -> _Process:
        """The process ``pid``; one seen before its fork was resolved inherits then."""
        found = self.processes.get(pid)
        if found is None:
            found = self.processes[pid] = _Process(cwd=self.cwd)
            if parent is not None:
                found.program, found.cwd = parent.program, parent.cwd
        return found

    def _exited(self, pid: int, how: str) -> None:
        process = self.processes.get(pid)
        if process is None:
            return
        process.alive = False
        if process.failed_exec is not None:
            self.add(Action("program", process.failed_exec, "not found", process.failed_exec))
        if pid == self.main and not self.main_ended:
            self.main_ended = True
            for other, left in self.processes.items():
                if other != pid and left.alive and not left.thread:
                    self.add(Action("process", f"pid {other} ({left.program or 'forked'})"))

    def _on_execve(self, process: _Process, call: Call) -> None:
        # execve(path, argv, envp); execveat(dirfd, path, argv, envp, flags)
        at = 1 if call.name == "execveat" else 0
        path, argv = string_arg(call.args[at]), string_args(call.args[at + 1])
        shown = _shown(path, argv[1:3])
        if call.ret != "0":
            process.failed_exec = posixpath.basename(path) if call.errno == "ENOENT" else shown
            return
        process.failed_exec = None
        first = not self.main_started and process is self.processes.get(self.main or -1)
        self.main_started = self.main_started or first
        process.program = _shown(posixpath.basename(path), argv[1:3])
        if (
            first
            or os.path.realpath(path) in self.expected_programs
            or path in self.expected_programs
        ):
            return
        self.add(Action("program", shown, subject=path))

    _on_execveat = _on_execve

    def _on_chdir(self, process: _Process, call: Call) -> None:
        if call.ret == "0" and call.args:
            target = fd_path(call.args[0]) or string_arg(call.args[0])
            process.cwd = posixpath.normpath(posixpath.join(process.cwd, target))

    _on_fchdir = _on_chdir

    def _on_connect(self, process: _Process, call: Call) -> None:
        if len(call.args) > 1:
            self._connected(call.args[1], "ok" if call.ret == "0" else call.errno or "failed")

    def _on_sendto(self, process: _Process, call: Call) -> None:
        if len(call.args) > 4:
            self._connected(call.args[4], "ok" if call.errno is None else call.errno)

    def _connected(self, sockaddr: str, outcome: str) -> None:
        found = socket_address(sockaddr)
        if found is not None:
            host, port = found
            if port is None:
                shown = f"unix:{host}"
            else:
                shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self.add(Action("network", shown, outcome, host, port))

    def _opened(self, process: _Process, call: Call) -> None:
        base: str | None = process.cwd
        if call.name == "creat":
            flags, where = "O_CREAT", call.args[0]
        else:
            dirfd = call.args[0] if call.name != "open" else "AT_FDCWD"
            where = call.args[1] if call.name != "open" else call.args[0]
            flags = call.args[2] if call.name != "open" else call.args[1]
            base = fd_path(dirfd) if call.name != "open" else process.cwd
        if not any(flag in flags for flag in _WRITE_FLAGS):
            return
        path = call.ret_path or _join(base or process.cwd, string_arg(where))
        self._wrote(path, call)

    def _changed(self, process: _Process, call: Call) -> None:
        for position in _PATH_CALLS[call.name]:
            if position >= len(call.args):
                continue
            dirfd = (
                call.args[position - 1]
                if call.name.endswith("at") or call.name == "renameat2"
                else None
            )
            base = fd_path(dirfd) if dirfd is not None else process.cwd
            self._wrote(_join(base or process.cwd, string_arg(call.args[position])), call)

    def _wrote(self, path: str, call: Call) -> None:
        if not path.startswith("/"):  # a pipe or socket the descriptor turned out to be
            return
        if within(path, self.unwatched):
            return
        self.add(Action("write", path, "ok" if call.errno is None else call.errno, path))


#: Path-changing calls: the positions of the arguments that name a changed path.
_PATH_CALLS: dict[str, tuple[int, ...]] = {
    "mkdir": (0,), "mkdirat": (1,), "unlink": (0,), "unlinkat": (1,), "rmdir": (0,),
    "rename": (0, 1), "renameat": (1, 3), "renameat2": (1, 3), "link": (1,),
    "linkat": (3,), "symlink": (1,), "symlinkat": (2,), "truncate": (0,),
}  # fmt: skip


def _shown(program: str, args: list[str]) -> str:
    """A program and its first arguments, on one short line."""
    text = " ".join(" ".join([program, *args]).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _join(base: str, path: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(base, path))


def read_behaviour(
    log: Iterable[str], *, scratch: Iterable[str], cwd: str, expected_programs: Iterable[str] = ()
) -> Behaviour:
    """The behaviour in one strace log of one jailed step (see :func:`tracer_prefix`)."""
    roots = tuple(dict.fromkeys(p for s in scratch for p in (s, os.path.realpath(s))))
    reader = _Reader(roots, frozenset(expected_programs), cwd)
    for pid, event in parse(log):
        reader.feed(pid, event)
    for process in reader.processes.values():  # never saw its end: left to the kernel
        if process.failed_exec is not None:
            reader.add(Action("program", process.failed_exec, "not found", process.failed_exec))
    return Behaviour(tuple(reader.actions), complete=reader.main_started)
