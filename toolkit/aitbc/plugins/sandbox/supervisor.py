"""The sandbox supervisor: runs a conformance module in a worker process, within limits,
and says what happened to each step and, if the worker died, why.

The supervisor asks for each step with a fresh nonce and believes only the answer to
that request (protocol.py).  Wall-clock limits are the supervisor's: per step (a step
that blocks the worker's event loop cannot report itself) and overall.  On a timeout
it asks the worker for its stacks (faulthandler), then kills it.  Before the plugin is
imported and after the last step, it looks at the worker from outside (/proc: threads,
descriptors, sockets, child processes, see observe.py); in the jail, strace records
what every process in it did (trace.py).  At the end, whatever happened, the runner
(:mod:`aitbc.plugins.process`) kills the worker's whole tree, so nothing outlives a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..process import spawn
from .diagnosis import WorkerLog, blocked_at, cause
from .jail import Jail, host_pid, interpreter_paths, signal_of, watched_jail
from .observe import ProcessView, outside_problems, view
from .protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Limits,
    Problem,
    ProtocolError,
    decode,
)
from .results import SandboxResult, StepResult

GRACE_S = 1.0  # beyond the step limit: time for a worker that timed a step out to say so
_BACKSTOP_S = 60.0  # beyond the total limit: the runner kills a tree the run forgot
_LOG_TAIL_BYTES = 16384


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
            paths = (*interpreter_paths(Path(python)), module, *readable)
            run.jail, run.trace_log = stack.enter_context(watched_jail(workdir, paths))
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
        self.python, self.module, self.params, self.limits = python, module, params, limits
        self.log = WorkerLog(log)
        self.process: subprocess.Popen[bytes] | None = None
        self.plan: tuple[str, ...] = ()
        self.steps: list[StepResult] = []
        self.current: tuple[str, float] | None = None  # step name, when it began
        self.code_roots: list[str] = []
        self.hello = self.finished = False
        self.error: str | None = None
        self.death: str | None = None
        self.jail: Jail | None = None
        self.trace_log: Path | None = None
        self.inner_pid: int | None = None  # the worker's pid as it said (its namespace's)
        self.nonce: str | None = None  # of the request the worker must answer now
        self.began = False  # it said it began that request's step
        self.baseline: ProcessView | None = None  # the worker before the plugin's import

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
        behaviour = None
        if self.jail is not None and self.trace_log is not None:
            behaviour = self.jail.behaviour(self.trace_log, workdir, [str(self.python)])
        return SandboxResult(
            plan=self.plan,
            steps=tuple(self.steps),
            finished=self.finished,
            error=self.error,
            death=self.death,
            returncode=None if proc is None else proc.returncode,
            worker_pid=None if proc is None else proc.pid,
            log_tail=self.log.text(-_LOG_TAIL_BYTES),
            duration_s=time.monotonic() - began,
            behaviour=behaviour,
        )

    def _start(self, env: dict[str, str], workdir: Path, write_fd: int) -> subprocess.Popen[bytes]:
        argv = [str(self.python), "-I", "-B", "-m", "aitbc.plugins.sandbox"]
        job = {"module": str(self.module), "params": self.params, "limits": self.limits.as_dict(),
               "channel": write_fd}  # fmt: skip
        line = json.dumps(job).encode() + b"\n"  # before the worker exists: a bad job starts none
        worker_env: dict[str, str] | None = _worker_env(env, workdir, self.jail)
        if self.jail is not None:  # bubblewrap clears its own environment for the worker
            command = self.jail.command(argv, worker_env or {}, workdir, self.trace_log)
            argv, worker_env = command, None
        # Its own session; leaving the stack (in _end) kills the worker's whole tree.
        self._tree = contextlib.ExitStack()
        process = self._tree.enter_context(
            spawn(
                argv,
                # A backstop only: the run's own deadlines, below, come well before it.
                timeout=self.limits.total_timeout_s + _BACKSTOP_S,
                stdin=subprocess.PIPE,
                stdout=self.log.file,
                stderr=self.log.file,
                pass_fds=(write_fd,),
                cwd=workdir,
                env=worker_env,
            )
        )
        assert process.stdin is not None
        # The job; stdin then stays open for the requests: closing it ends the worker.
        self._send(process, line)
        return process

    def _send(self, process: subprocess.Popen[bytes], line: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):  # a dead worker: seen later
            process.stdin.write(line)
            process.stdin.flush()

    def _ask_next(self) -> None:
        """Ask for the next step of the plan, or, when every step passed, look at what
        the worker holds now and finish."""
        assert self.process is not None
        due = len(self.steps)
        if due < len(self.plan):
            self.nonce, self.began = secrets.token_hex(16), False
            self.current = (self.plan[due], time.monotonic())
            self._send(self.process, json.dumps({"run": self.plan[due], "nonce": self.nonce})
                       .encode() + b"\n")  # fmt: skip
            return
        self._look_from_outside()
        self.finished = True

    def _worker_pid(self) -> int | None:
        """The worker's pid on the host (in the jail: found by its namespace pid)."""
        assert self.process is not None
        if self.jail is None:
            return self.process.pid
        return host_pid(self.process.pid, self.inner_pid) if self.inner_pid else None

    def _root(self) -> int | None:
        """Where the worker's orphans go: under bubblewrap (the jail's init), else to
        the runner's subreaper, which is not the worker's to answer for."""
        return self.process.pid if self.jail is not None and self.process is not None else None

    def _look_from_outside(self) -> None:
        """What the worker holds that it did not before the plugin's import, from /proc."""
        pid = self._worker_pid()
        after = view(pid, self._root()) if pid is not None else None
        if self.baseline is None or after is None or not self.steps:
            return
        last = self.steps[-1]
        seen = outside_problems(self.baseline, after, last.problems)
        if seen:
            self.steps[-1] = StepResult(last.name, False, last.duration_s, (*last.problems, *seen))

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
            self._forged(f"a line over {MAX_LINE_BYTES} bytes")
        for line in lines:
            if self.finished or self.error is not None:
                break
            self._handle_line(line)
        return rest

    def _handle_line(self, line: bytes) -> None:
        try:
            self._handle(decode(line))
        except ProtocolError as exc:
            if self.plan:  # the plugin's code runs from here on: its doing, not ours
                self._forged(str(exc))
            else:
                self.error = f"protocol error from the worker: {exc}"

    def _forged(self, what: str) -> None:
        """A line on the result channel that answers no request: the step fails."""
        message = f"the result channel carried a message no step sent ({what}): forged"
        self._fail_current(Problem("forged", message))
        self.finished = True  # nothing after a forgery is believed

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "error" and not self.plan:
            self.error = f"the worker could not run the job: {msg.get('message')}"
        elif kind == "hello" and not self.hello:
            if msg.get("protocol") != PROTOCOL_VERSION:
                raise ProtocolError(f"protocol {msg.get('protocol')!r}, not {PROTOCOL_VERSION}")
            self.hello = True
            pid = msg.get("pid")
            self.inner_pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        elif not self.hello:
            raise ProtocolError(f"{kind!r} before hello")
        elif kind == "plan" and not self.plan:
            steps = msg.get("steps")
            if (
                not isinstance(steps, list)
                or not steps
                or not all(isinstance(s, str) for s in steps)
            ):
                raise ProtocolError("a plan must list step names")
            self.plan = tuple(steps)
            # Nothing of the plugin has run yet: what the worker holds now is the baseline.
            pid = self._worker_pid()
            self.baseline = view(pid, self._root()) if pid is not None else None
            self._ask_next()
        elif msg.get("nonce") != self.nonce or self.current is None:
            raise ProtocolError(f"{kind!r} answering no request")
        elif kind == "begin" and not self.began and msg.get("step") == self.current[0]:
            self._begin(msg)
        elif kind == "end" and self.began and msg.get("step") == self.current[0]:
            self._end_step(msg)
        else:
            raise ProtocolError(f"{kind!r} out of order")

    def _begin(self, msg: dict[str, Any]) -> None:
        self.began = True
        self._roots(msg)

    def _roots(self, msg: dict[str, Any]) -> None:
        roots = msg.get("code_roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise ProtocolError("code_roots must be a list of paths")
        self.code_roots = roots

    def _end_step(self, msg: dict[str, Any]) -> None:
        assert self.current is not None
        problems = msg.get("problems", [])
        if not isinstance(problems, list):
            raise ProtocolError("problems must be a list")
        self._roots(msg)
        parsed = tuple(Problem.from_dict(p) for p in problems)
        ok = msg.get("ok") is True and not parsed
        step, began = self.current
        self.steps.append(StepResult(step, ok, time.monotonic() - began, parsed))
        self.current, self.nonce = None, None
        if ok:
            self._ask_next()
        else:
            self.finished = True  # the first step that fails ends the run

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
        log_size = self.log.size()
        target = self._worker_pid()
        if target is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGUSR1)  # faulthandler: every thread's stack
                time.sleep(0.3)
        file, line = blocked_at(self.log.text(log_size), self.code_roots)
        if overall:
            message = f"hung (the whole run exceeded its {self.limits.total_timeout_s:g}s limit)"
        else:
            message = (
                f"hung (no answer within {self.limits.step_timeout_s:g}s; "
                "the event loop was blocked)"
            )
        self.death = "killed after a timeout"
        self._fail_current(Problem("hang", message, file, line))

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
            tail = " | ".join(self.log.text(-2000).strip().splitlines()[-5:]) or "no output"
            self.error = f"the worker could not start (exit status {code}): {tail}"
            return
        kind, self.death = cause(code, self.limits, self.log.text(-4000))
        file, line = (
            blocked_at(self.log.text(-_LOG_TAIL_BYTES), self.code_roots)
            if kind == "cpu"
            else (None, None)
        )
        self._fail_current(Problem(kind, self.death, file, line))

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
