"""The sandbox supervisor: runs a conformance module in a worker process, within limits,
and says what happened to each step and, if the worker died, why.

The worker runs in its own session (process group).  Wall-clock limits are the
supervisor's: per step (a step that blocks the worker's event loop cannot report
itself) and overall.  On a timeout the supervisor asks the worker for its stacks
(faulthandler), then kills the whole group; at the end, whatever happened, the runner
(:mod:`aitbc.plugins.process`) kills the worker's whole tree, so nothing outlives a run.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..process import spawn
from .jail import Jail, host_pid, interpreter_paths, signal_of
from .leaks import within
from .protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Limits,
    Problem,
    ProblemKind,
    ProtocolError,
    decode,
)

GRACE_S = 1.0  # beyond the step limit: time for a worker that timed a step out to say so
_BACKSTOP_S = 60.0  # beyond the total limit: the runner kills a tree the run forgot
_LOG_TAIL_BYTES = 16384
_FRAME = re.compile(r'^\s*File "(?P<file>.+)", line (?P<line>\d+) in ')
_WORKER_FILE = str(Path(__file__).with_name("worker.py"))


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    duration_s: float
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class SandboxResult:
    plan: tuple[str, ...]  # the steps the conformance module defines
    steps: tuple[StepResult, ...]  # those that ran, in order
    finished: bool  # the worker said it was done
    error: str | None  # could not check: the worker did not start or broke the protocol
    death: str | None  # how the worker ended early, in words, when it did
    returncode: int | None
    worker_pid: int | None
    log_tail: str  # the end of the worker's stdout and stderr
    duration_s: float

    @property
    def problems(self) -> list[tuple[str, Problem]]:
        return [(step.name, problem) for step in self.steps for problem in step.problems]

    @property
    def passed(self) -> bool:
        """Every planned step ran and passed: the only way to pass."""
        return (
            self.error is None
            and self.finished
            and len(self.steps) == len(self.plan)
            and all(step.ok for step in self.steps)
        )


def run_conformance(
    python: Path | str,
    module: Path,
    *,
    params: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    isolate: bool = False,
    readable: Sequence[Path] = (),
) -> SandboxResult:
    """Run ``module``'s STEPS with ``python`` (which must have this SDK) in a worker.

    ``workdir`` becomes the worker's working directory and TMPDIR (default: a temporary
    folder, removed after).  ``isolate``: the worker runs in a kernel jail (see
    :mod:`.jail`) that can write only ``workdir`` and read, beyond the machine's
    software, only ``python``'s environment, ``module`` and ``readable``; its
    environment is then ``env`` and the jail's allowlist, nothing inherited.  Never
    raises for anything the worker does."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aitbc-sbx-")))
        log = stack.enter_context(tempfile.TemporaryFile(prefix="aitbc-sbx-log-"))
        run = _Supervision(Path(python), module, dict(params or {}), limits or Limits(), log)
        if isolate:
            run.jail = Jail(workdir, readable=(*interpreter_paths(Path(python)), module, *readable))
        return run.run(dict(env or {}), workdir)
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack swallows nothing


def _worker_env(extra: dict[str, str], workdir: Path, jail: Jail | None) -> dict[str, str]:
    # Jailed: the allowlist only.  Otherwise ours (the worker runs with -I: PYTHON*
    # variables do not apply).
    env = jail.environment() if jail is not None else dict(os.environ)
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmp)
    # glibc reserves 64 MiB of address space per malloc arena (up to 8 per core): with
    # an address-space limit that would count threads, not memory.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env.update(extra)
    return env


class _Supervision:
    def __init__(
        self, python: Path, module: Path, params: dict[str, Any], limits: Limits, log: IO[bytes]
    ) -> None:
        self.python, self.module, self.params, self.limits, self.log = (
            python, module, params, limits, log
        )  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.plan: tuple[str, ...] = ()
        self.steps: list[StepResult] = []
        self.current: tuple[str, float] | None = None  # step name, when it began
        self.code_roots: list[str] = []
        self.hello = self.finished = False
        self.error: str | None = None
        self.death: str | None = None
        self.jail: Jail | None = None
        self.inner_pid: int | None = None  # the worker's pid as it said (its namespace's)

    # -- the run ----------------------------------------------------------------------
    def run(self, env: dict[str, str], workdir: Path) -> SandboxResult:
        began = time.monotonic()
        read_fd, write_fd = os.pipe()
        try:
            self.process = self._start(env, workdir, write_fd)
        except OSError as exc:
            self.error = f"could not start the worker {self.python}: {exc.strerror or exc}"
        finally:
            os.close(write_fd)
        try:
            if self.process is not None:
                self._converse(read_fd, began)
        finally:
            os.close(read_fd)
            self._end()
        proc = self.process
        return SandboxResult(
            plan=self.plan,
            steps=tuple(self.steps),
            finished=self.finished,
            error=self.error,
            death=self.death,
            returncode=None if proc is None else proc.returncode,
            worker_pid=None if proc is None else proc.pid,
            log_tail=self._log_text(-_LOG_TAIL_BYTES),
            duration_s=time.monotonic() - began,
        )

    def _start(self, env: dict[str, str], workdir: Path, write_fd: int) -> subprocess.Popen[bytes]:
        import json

        command = [str(self.python), "-I", "-m", "aitbc.plugins.sandbox"]
        job = {"module": str(self.module), "params": self.params, "limits": self.limits.as_dict()}
        line = json.dumps(job).encode() + b"\n"  # before the worker exists: a bad job starts none
        argv = [*command, "--protocol-fd", str(write_fd)]
        worker_env: dict[str, str] | None = _worker_env(env, workdir, self.jail)
        if self.jail is not None:  # bubblewrap clears its own environment for the worker
            argv, worker_env = self.jail.command(argv, worker_env or {}, workdir), None
        # Its own session; leaving the stack (in _end) kills the worker's whole tree.
        self._tree = contextlib.ExitStack()
        process = self._tree.enter_context(
            spawn(
                argv,
                # A backstop only: the run's own deadlines, below, come well before it.
                timeout=self.limits.total_timeout_s + _BACKSTOP_S,
                stdin=subprocess.PIPE,
                stdout=self.log,
                stderr=self.log,
                pass_fds=(write_fd,),
                cwd=workdir,
                env=worker_env,
            )
        )
        assert process.stdin is not None
        # One line; stdin then stays open: closing it tells a finished worker to exit.
        with contextlib.suppress(BrokenPipeError):  # a worker that died at once: seen later
            process.stdin.write(line)
            process.stdin.flush()
        return process

    def _converse(self, fd: int, began: float) -> None:
        total_deadline = began + self.limits.total_timeout_s
        last_heard = began
        pending = b""
        while not self.finished and self.error is None:
            now = time.monotonic()
            deadline = min(total_deadline, last_heard + self.limits.step_timeout_s + GRACE_S)
            if now >= deadline:
                self._timed_out(overall=deadline >= total_deadline)
                return
            ready, _, _ = select.select([fd], [], [], min(deadline - now, 0.25))
            if ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    last_heard = time.monotonic()
                    pending = self._take(pending + chunk)
                    continue
            elif not self._exited():
                continue
            # EOF, or dead while a descendant holds the pipe: read what is left, then judge
            while not self.finished and self.error is None and select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending = self._take(pending + chunk)
            if not self.finished and self.error is None:
                self._died()
            return

    def _take(self, data: bytes) -> bytes:
        """Handle every complete line of ``data``; return the incomplete rest."""
        *lines, rest = data.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            self.error = f"protocol error from the worker: a line over {MAX_LINE_BYTES} bytes"
        for line in lines:
            if self.finished or self.error is not None:
                break
            self._handle_line(line)
        return rest

    def _handle_line(self, line: bytes) -> None:
        try:
            self._handle(decode(line))
        except ProtocolError as exc:
            self.error = f"protocol error from the worker: {exc}"

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "error":
            self.error = f"the worker could not run the job: {msg.get('message')}"
        elif kind == "hello":
            if msg.get("protocol") != PROTOCOL_VERSION:
                raise ProtocolError(f"protocol {msg.get('protocol')!r}, not {PROTOCOL_VERSION}")
            self.hello = True
            pid = msg.get("pid")
            self.inner_pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        elif not self.hello:
            raise ProtocolError(f"{kind!r} before hello")
        elif kind == "plan":
            steps = msg.get("steps")
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise ProtocolError("a plan must list step names")
            self.plan = tuple(steps)
        elif kind == "begin":
            self._begin(msg)
        elif kind == "end":
            self._end_step(msg)
        else:  # done
            if self.current is not None:
                raise ProtocolError(f"done while step {self.current[0]!r} runs")
            self.finished = True

    def _begin(self, msg: dict[str, Any]) -> None:
        step, roots = msg.get("step"), msg.get("code_roots", [])
        if not isinstance(step, str) or self.current is not None:
            raise ProtocolError("a step began while another ran, or without a name")
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise ProtocolError("code_roots must be a list of paths")
        self.code_roots = roots
        self.current = (step, time.monotonic())

    def _end_step(self, msg: dict[str, Any]) -> None:
        step, problems = msg.get("step"), msg.get("problems", [])
        if self.current is None or step != self.current[0] or not isinstance(problems, list):
            raise ProtocolError(f"end of step {step!r}, which is not running")
        parsed = tuple(Problem.from_dict(p) for p in problems)
        ok = msg.get("ok") is True and not parsed
        self.steps.append(StepResult(step, ok, time.monotonic() - self.current[1], parsed))
        self.current = None

    # -- when the worker stops answering or dies ------------------------------------------
    def _exited(self) -> bool:
        assert self.process is not None
        return self.process.poll() is not None

    def _fail_current(self, problem: Problem) -> None:
        """Record ``problem`` against the running step (or the one that was due next)."""
        if self.current is not None:
            name, began = self.current
        else:
            due = len(self.steps)
            name = self.plan[due] if due < len(self.plan) else f"after {self._last_step()}"
            began = time.monotonic()
        self.steps.append(StepResult(name, False, time.monotonic() - began, (problem,)))
        self.current = None

    def _last_step(self) -> str:
        return self.steps[-1].name if self.steps else "start-up"

    def _timed_out(self, *, overall: bool) -> None:
        assert self.process is not None
        if not self.hello:
            self.error = f"the worker did not start within {self.limits.step_timeout_s:g}s"
            return
        log_size = self._log_size()
        target: int | None = self.process.pid
        if self.jail is not None:  # the worker, not bubblewrap: found by its namespace pid
            target = host_pid(self.process.pid, self.inner_pid) if self.inner_pid else None
        if target is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGUSR1)  # faulthandler: every thread's stack
                time.sleep(0.3)
        file, line = self._blocked_at(self._log_text(log_size))
        if overall:
            message = f"hung (the whole run exceeded its {self.limits.total_timeout_s:g}s limit)"
        else:
            message = (
                f"hung (no answer within {self.limits.step_timeout_s:g}s; "
                "the event loop was blocked)"
            )
        self.death = "killed after a timeout"
        self._fail_current(Problem("hang", message, file, line))

    def _blocked_at(self, dump: str) -> tuple[str | None, int | None]:
        """The innermost frame in the code under test, in the main thread's stack first."""
        blocks: list[list[tuple[str, int]]] = []
        for text in dump.splitlines():
            if text.startswith(("Thread 0x", "Current thread 0x")):
                blocks.append([])
            elif blocks and (match := _FRAME.match(text)):
                blocks[-1].append((match["file"], int(match["line"])))
        blocks.sort(key=lambda frames: not any(f == _WORKER_FILE for f, _ in frames))
        for frames in blocks:
            for file, line in frames:  # most recent call first
                if within(file, self.code_roots):
                    return file, line
        return None, None

    def _died(self) -> None:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=2)
            if self.jail is not None and (number := signal_of(code)) is not None:
                code = -number  # bubblewrap says "killed by signal N" as 128 + N
        except subprocess.TimeoutExpired:  # the pipe closed, yet the worker lives on
            self.error = "the worker closed the protocol pipe without finishing"
            return
        if not self.hello:
            tail = " | ".join(self._log_text(-2000).strip().splitlines()[-5:]) or "no output"
            self.error = f"the worker could not start (exit status {code}): {tail}"
            return
        kind, self.death = self._cause(code)
        file, line = (
            self._blocked_at(self._log_text(-_LOG_TAIL_BYTES)) if kind == "cpu" else (None, None)
        )
        self._fail_current(Problem(kind, self.death, file, line))

    def _cause(self, code: int) -> tuple[ProblemKind, str]:
        if code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGXCPU:
                return "cpu", f"the worker exceeded its CPU-time limit of {self.limits.cpu_s}s"
            if -code == signal.SIGKILL:
                return "memory", "the worker was killed (SIGKILL), likely for using too much memory"
            return "exit", f"the worker died from signal {name}"
        if "MemoryError" in self._log_text(-4000):
            limit = self.limits.memory_mb
            return "memory", f"MemoryError under the {limit} MiB address-space limit (it exited)"
        return "exit", f"the worker exited with status {code} without answering (os._exit?)"

    # -- the end: nothing may outlive the run -------------------------------------------
    def _end(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # a finished worker waits for this to exit
        if self.finished:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
        self._tree.close()  # the whole tree, setsid and orphaned ones too; reaps the worker

    def _log_size(self) -> int:
        return os.fstat(self.log.fileno()).st_size

    def _log_text(self, start: int) -> str:
        size = self._log_size()
        offset = max(0, size + start) if start < 0 else start
        with open(self.log.fileno(), "rb", closefd=False) as view:
            view.seek(offset)
            return view.read(max(0, size - offset)).decode("utf-8", "replace")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
