"""One way to run a child process: bounded in time, in its own session, and never
outlived by anything it started.

:func:`run` runs a command to its end and captures its output (:class:`Completed`);
:func:`spawn` yields the :class:`subprocess.Popen` to callers that converse with the
child (the sandbox supervisor).  Both require a ``timeout`` (past it the tree is killed;
``run`` then reports ``returncode=None``), start the child in a new session with stdin
from /dev/null unless given, take ``env`` as variables set over this process's
environment (never a replacement: callers want the user's PATH, HOME and proxies), let
``wrap`` rewrite the command just before it runs (a sandbox's prefix), and kill the
child's whole tree when it exits, at the timeout, or on any exception while waiting (a
KeyboardInterrupt too, which then propagates).

Ending a tree, on Linux.  This process makes itself a child subreaper (prctl, once, on
first use), so a tree's orphans are reparented to it rather than to init, and every
child gets a random token in ``AITBC_PROCESS_TREE``, which its descendants inherit.  The
tree is frozen (SIGSTOP) round after round until no one new is found, then SIGKILLed:
the child's process group and session, the child and its descendants through
/proc/<pid>/stat parent links, every descendant of this process whose
/proc/<pid>/environ carries the token, and their descendants.  The killed that became
our children are reaped (those pids only: other code's children are left alone).  That
catches setsid, setpgid, double forks and daemons, however the child ended.

It does not catch a process that replaced its environment (exec with a new one, or in
place as setproctitle does) AND left the session AND whose parent had exited before we
looked: nothing links it to the tree; only a PID namespace (the sandbox's, later) does.
Nor one we may not inspect or signal (setuid, non-dumpable: its environ is unreadable).
An escapee that exits on its own before the tree ends stays our zombie: nothing says it
was the tree's (being a subreaper, this process also inherits the orphans of children it
started otherwise).  Elsewhere (macOS: no /proc, no subreaper) only the group is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import select
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeAlias

from ._tree import LINUX, REAP_S, below, end_tree, process_table
from ._tree import TREE_VARIABLE as TREE_VARIABLE  # a child's own token: public here

DRAIN_S = 5.0  # after the kill, how long `run` may read what the pipes still hold; EOF
# comes as soon as every writer is dead, so this only bounds an unkillable escapee
_POLL_S = 0.02  # without a pidfd: how often `run` looks whether the child exited
_PR_SET_CHILD_SUBREAPER = 36

Wrap: TypeAlias = Callable[[list[str]], list[str]]
Command: TypeAlias = Sequence["str | os.PathLike[str]"]
StrPath: TypeAlias = "str | os.PathLike[str]"
Stream: TypeAlias = "int | IO[Any] | None"  # what Popen takes: PIPE, DEVNULL, a descriptor, a file


@dataclass(frozen=True)
class Completed:
    """A finished :func:`run`: what ran, how it ended, what it said."""

    command: tuple[str, ...]  # as run, after ``wrap``
    returncode: int | None  # None: killed after the timeout
    stdout: str  # UTF-8, undecodable bytes replaced, newlines as "\n"
    stderr: str
    duration_s: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:]) if text else "(no output)"


def run(
    command: Command,
    *,
    timeout: float,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    wrap: Wrap | None = None,
) -> Completed:
    """Run ``command`` until it exits or ``timeout`` seconds pass, capturing its output;
    its whole tree is killed either way.  Raises what Popen raises (OSError), and what
    interrupted the wait (KeyboardInterrupt...) once the tree is dead."""
    began = time.monotonic()
    stdin = None if input is None else subprocess.PIPE
    tree = Tree(
        command, wrap, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        pipes = _Pipes(tree.process, input.encode() if isinstance(input, str) else input)
        try:
            exited = pipes.pump(began + timeout, until_exit=True)
            tree.kill()  # first: what escaped the tree must not hold the pipes open
            pipes.pump(time.monotonic() + DRAIN_S, until_exit=False)
        finally:
            pipes.close()
    finally:
        tree.close()
    code = tree.process.returncode if exited else None
    out, err = pipes.text("stdout"), pipes.text("stderr")
    return Completed(tree.command, code, out, err, time.monotonic() - began)


@contextlib.contextmanager
def spawn(
    command: Command,
    *,
    timeout: float,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    pass_fds: Sequence[int] = (),
    wrap: Wrap | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` and yield its Popen (byte streams; stdout and stderr inherited
    unless given).  Leaving the block, however, kills the whole tree and reaps the child;
    past ``timeout`` seconds the tree is killed even while the block runs."""
    tree = start(command, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                 pass_fds=pass_fds, wrap=wrap)  # fmt: skip
    backstop = threading.Timer(timeout, tree.kill)
    backstop.daemon = True
    try:
        backstop.start()
        yield tree.process
    finally:
        backstop.cancel()
        tree.close()


def start(
    command: Command,
    *,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    pass_fds: Sequence[int] = (),
    wrap: Wrap | None = None,
) -> Tree:
    """Start a long-lived child whose owner bounds its life (a host's plugin worker:
    each request to it has its own deadline, and the owner ends it).  The owner must
    call :meth:`Tree.close`, which kills the whole tree (:func:`spawn` does, for a
    child bounded by a timeout)."""
    popen = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "pass_fds": tuple(pass_fds)}
    return Tree(command, wrap, cwd=cwd, env=env, **popen)


def kill_tree(pid: int, known: Iterable[int] | None = None, *, token: str | None = None) -> None:
    """SIGKILL the process group ``pid`` leads, ``pid`` and its descendants, ``known``
    (pids seen earlier, perhaps orphaned since) and our descendants carrying ``token``;
    reap those that became our children (not ``pid``: its Popen does that)."""
    end_tree(pid, pid, token, known or ())


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` in /proc (Linux; elsewhere, none are known)."""
    return sorted(below([pid], process_table()) - {pid})


# -- starting --------------------------------------------------------------------------
class Tree:
    """A started child and the means to end everything it started."""

    def __init__(
        self, command: Command, wrap: Wrap | None, *, env: Mapping[str, str] | None, **popen: Any
    ) -> None:
        argv = [os.fspath(part) for part in command]
        self.command = tuple(wrap(argv) if wrap is not None else argv)
        self.token = secrets.token_hex(16)
        self._lock = threading.Lock()  # the backstop timer may kill from its thread
        _become_subreaper()
        if popen.get("stdin") is None:
            popen["stdin"] = subprocess.DEVNULL
        environment = {**os.environ, **(env or {})}
        # Nested runs keep the outer tokens: the outer tree still knows these processes.
        outer = environment.get(TREE_VARIABLE)
        environment[TREE_VARIABLE] = f"{outer}:{self.token}" if outer else self.token
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            self.command, env=environment, start_new_session=True, **popen
        )

    def kill(self, known: Iterable[int] = ()) -> None:
        """``known``: members seen earlier (a jail's, which carry no token and may have
        become our orphans since), killed and reaped too."""
        with self._lock:
            pid = self.process.pid
            # Once reaped, the child's pid (and so its group and session id) may be
            # another's: neither signal that group nor follow its links; the token and
            # our own descendants still find what the tree left.
            if self.process.returncode is None:
                end_tree(pid, pid, self.token, known)
            else:
                end_tree(None, None, self.token, known)

    def exited(self) -> bool:
        """Whether the child exited, without reaping it (its pid stays ours)."""
        return _exited(self.process)

    def close(self, known: Iterable[int] = ()) -> None:
        """Kill the tree, reap the child, close our ends of its pipes."""
        try:
            self.kill(known)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5 * REAP_S)  # SIGKILLed: only a D state delays it
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


_subreaper_lock = threading.Lock()
_subreaper: dict[int, bool] = {}  # by pid: a forked child does not inherit the setting


def _become_subreaper() -> bool:
    """Make this process a child subreaper, once: orphans of our trees then come to us."""
    with _subreaper_lock:
        pid = os.getpid()
        if pid not in _subreaper:
            _subreaper[pid] = False
            with contextlib.suppress(OSError, AttributeError):
                if LINUX:
                    one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)
                    prctl = ctypes.CDLL(None, use_errno=True).prctl
                    _subreaper[pid] = prctl(_PR_SET_CHILD_SUBREAPER, one, zero, zero, zero) == 0
        return _subreaper[pid]


# -- waiting and talking (run) ---------------------------------------------------------
def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the child exited, without reaping it on Linux: its pid (and the group and
    session it leads) then stay ours, not reusable, until the tree is killed."""
    if process.returncode is not None:
        return True
    if LINUX:
        with contextlib.suppress(ChildProcessError):  # reaped elsewhere: poll() says so
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            return os.waitid(os.P_PID, process.pid, flags) is not None
    return process.poll() is not None


class _Pipes:
    """Feeds ``data`` to the child and collects its output, in this thread (a reader
    thread could not be stopped if an escaped process held a pipe open)."""

    def __init__(self, process: subprocess.Popen[bytes], data: bytes | None) -> None:
        self.process = process
        self.selector = selectors.DefaultSelector()
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.data, self.sent = memoryview(data or b""), 0
        self.exit_fd: int | None = None  # readable once the child exits: no polling
        with contextlib.suppress(OSError, AttributeError):  # pidfd: Linux 5.3+ only
            self.exit_fd = os.pidfd_open(process.pid) if LINUX else None
        if process.stdout is not None and process.stderr is not None:
            self.selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            self.selector.register(process.stderr, selectors.EVENT_READ, "stderr")
        if process.stdin is not None:
            if data:
                self.selector.register(process.stdin, selectors.EVENT_WRITE, "stdin")
            else:
                process.stdin.close()
        if self.exit_fd is not None:
            self.selector.register(self.exit_fd, selectors.EVENT_READ, "exit")

    def pump(self, deadline: float, *, until_exit: bool) -> bool:
        """Move data until the child exits (``until_exit``) or else every pipe closes;
        False when ``deadline`` comes first."""
        if not until_exit:
            self._forget_exit()
        while not (_exited(self.process) if until_exit else not self.selector.get_map()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            polling = until_exit and self.exit_fd is None
            for key, _ in self.selector.select(min(remaining, _POLL_S) if polling else remaining):
                self._move(key)
        return True

    def _move(self, key: selectors.SelectorKey) -> None:
        if key.data == "exit":
            return  # pump() sees it
        if key.data == "stdin":
            piece = self.data[self.sent : self.sent + select.PIPE_BUF]
            try:
                self.sent += os.write(key.fd, piece)  # PIPE_BUF: never blocks when writable
            except BrokenPipeError:  # the child does not read it all: its business
                self.sent = len(self.data)
            if self.sent >= len(self.data):
                self._forget(key.fileobj)
            return
        chunk = os.read(key.fd, 65536)
        if chunk:
            self.output[key.data] += chunk
        else:
            self._forget(key.fileobj)

    def _forget(self, stream: Any) -> None:
        self.selector.unregister(stream)
        if stream is self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # EOF for the child

    def _forget_exit(self) -> None:
        if self.exit_fd is not None:
            self.selector.unregister(self.exit_fd)
            os.close(self.exit_fd)
            self.exit_fd = None

    def close(self) -> None:
        self._forget_exit()
        self.selector.close()

    def text(self, name: str) -> str:
        decoded = self.output[name].decode("utf-8", "replace")
        return decoded.replace("\r\n", "\n").replace("\r", "\n")
