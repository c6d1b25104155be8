"""Why a worker stopped answering or died, in words: from its exit status and from the
stacks faulthandler wrote to its log (the supervisor's side; standard library only)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import IO

from .leaks import within
from .protocol import Limits, ProblemKind

_FRAME = re.compile(r'^\s*File "(?P<file>.+)", line (?P<line>\d+) in ')
_WORKER_FILE = str(Path(__file__).with_name("worker.py"))


class WorkerLog:
    """The worker's stdout and stderr, in one unnamed temporary file."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def size(self) -> int:
        return os.fstat(self.file.fileno()).st_size

    def text(self, start: int) -> str:
        """From byte ``start`` (negative: that far from the end) to the end."""
        size = self.size()
        offset = max(0, size + start) if start < 0 else start
        with open(self.file.fileno(), "rb", closefd=False) as view:
            view.seek(offset)
            return view.read(max(0, size - offset)).decode("utf-8", "replace")


def blocked_at(dump: str, code_roots: list[str]) -> tuple[str | None, int | None]:
    """The innermost frame in the code under test of a faulthandler dump, in the main
    thread's stack (the one running the worker) first."""
    blocks: list[list[tuple[str, int]]] = []
    for text in dump.splitlines():
        if text.startswith(("Thread 0x", "Current thread 0x")):
            blocks.append([])
        elif blocks and (match := _FRAME.match(text)):
            blocks[-1].append((match["file"], int(match["line"])))
    blocks.sort(key=lambda frames: not any(f == _WORKER_FILE for f, _ in frames))
    for frames in blocks:
        for file, line in frames:  # most recent call first
            if within(file, code_roots):
                return file, line
    return None, None


def cause(code: int, limits: Limits, log_tail: str) -> tuple[ProblemKind, str]:
    """What ended a worker with exit status ``code`` (negative: the signal)."""
    if code < 0:
        if -code == signal.SIGXCPU:
            return "cpu", f"the worker exceeded its CPU-time limit of {limits.cpu_s}s"
        if -code == signal.SIGKILL:
            return "memory", "the worker was killed (SIGKILL), likely for using too much memory"
        return "exit", f"the worker died from signal {signal_name(-code)}"
    if "MemoryError" in log_tail:
        return (
            "memory",
            f"MemoryError under the {limits.memory_mb} MiB address-space limit (it exited)",
        )
    return "exit", f"the worker exited with status {code} without answering (os._exit?)"


def host_reason(signum: int | None, code: int, memory_mb: int, cpu_s: int, log_tail: str) -> str:
    """What ended a host's isolated worker (``signum``: the signal, else exit status
    ``code``), in words that follow the plugin's name; the same evidence as
    :func:`cause`, phrased for an operator rather than a certification report."""
    if signum == signal.SIGXCPU:
        return f"its worker broke its CPU time limit ({cpu_s} s) and was killed"
    crashed = signum in (signal.SIGSEGV, signal.SIGABRT)
    out_of_memory = "Cannot allocate memory" in log_tail or "out of memory" in log_tail
    if "MemoryError" in log_tail or (crashed and out_of_memory):
        return memory_reason(memory_mb)
    if signum is not None:
        return f"its worker was killed by {signal_name(signum)}"
    last = log_tail.strip().splitlines()[-1:] if code else []
    said = f": {last[0][:300]}" if last else ""
    return f"its worker exited on its own (status {code}){said}"


def memory_reason(memory_mb: int) -> str:
    return f"its worker broke its memory limit ({memory_mb} MiB)"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
