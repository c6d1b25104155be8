"""The sandbox worker: runs a conformance module's steps inside a limited process.

The supervisor starts it as ``python -I -B -m aitbc.plugins.sandbox`` with the job on
stdin (see protocol.py).  The worker limits itself first (address space, CPU time), then
loads the conformance module, a Python file defining ``STEPS``: a sequence of
``(name, async def step(session))``, and runs each step the supervisor asks for, on one
event loop, bounded by the step time limit, answering each request as it begins and
ends.  A step fails
by raising :class:`StepFailure`, recording problems with ``session.problem(...)``,
raising anything else, returning never, or killing the process; the last two are the
supervisor's to notice.  Standard library and the SDK only: this runs in the
environment of the code under test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import importlib.util
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

from .leaks import WORKER_TASKS, coroutine_location, within
from .protocol import PROTOCOL_VERSION, Limits, Problem, ProblemKind

Step = Callable[["Session"], Awaitable[None]]
#: The supervisor sends this signal to get every thread's stack (faulthandler) when the
#: worker stops answering: a loop blocked in time.sleep cannot report where it is.
DUMP_SIGNAL = signal.SIGUSR1


class StepFailure(Exception):
    """Raised by a step: it failed, for the reason given."""

    def __init__(
        self, kind: ProblemKind, message: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.problem = Problem(kind, message, file, line)


@dataclass
class Session:
    """What each step of a conformance module receives."""

    params: dict[str, Any]  # from the job: e.g. which plugin to load
    workdir: Path  # the worker's private folder (its working directory)
    limits: Limits
    code_roots: list[str] = field(default_factory=list)  # where the code under test lives
    values: dict[str, Any] = field(default_factory=dict)  # what steps hand to later steps
    problems: list[Problem] = field(default_factory=list)  # the running step's, so far

    def problem(
        self, kind: ProblemKind, message: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        """Record a problem and go on; the step fails when it ends."""
        self.problems.append(Problem(kind, message, file, line))

    def fail(
        self, kind: ProblemKind, message: str, *, file: str | None = None, line: int | None = None
    ) -> NoReturn:
        raise StepFailure(kind, message, file=file, line=line)

    def location(self, exc: BaseException) -> tuple[str | None, int | None]:
        """The innermost frame of ``exc``'s traceback in the code under test."""
        found: tuple[str | None, int | None] = (None, None)
        for frame, line in traceback.walk_tb(exc.__traceback__):
            if within(frame.f_code.co_filename, self.code_roots):
                found = (frame.f_code.co_filename, line)
        return found


class Channel:
    """The protocol pipe.  Unbuffered, so a worker that dies has said all it said.

    ``send`` is bound when the channel is made, before any code under test is imported,
    from the functions of that moment: replacing ``Channel.send``, ``os.write`` or
    ``json.dumps`` later changes nothing it says.  (Code under test shares this process:
    one that digs into the closure can still forge; the supervisor's look from outside
    and the behaviour record are what it cannot reach.)"""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.send = _sender(fd)


def _sender(fd: int) -> Callable[..., None]:
    write, dumps = os.write, json.dumps

    def send(kind: str, **fields: Any) -> None:
        message = {"type": kind, **fields}
        data = dumps(message, separators=(",", ":"), default=str).encode("ascii") + b"\n"
        while data:
            data = data[write(fd, data) :]

    return send


def apply_limits(limits: Limits) -> None:
    """Lower this process's limits (they can only go down, and children inherit them)."""
    lower_limits(limits.memory_mb, limits.cpu_s)


def lower_limits(memory_mb: int, cpu_s: int, open_files: int | None = None) -> None:
    """The one place that limits a worker, certification's and a host's isolated
    plugin's: address space, CPU time (past it the kernel sends SIGXCPU, which ends the
    process by default), open files when given, and no core file."""
    import resource

    _lower(resource.RLIMIT_AS, memory_mb * 1024 * 1024, memory_mb * 1024 * 1024)
    _lower(resource.RLIMIT_CPU, cpu_s, cpu_s + 2)
    if open_files is not None:
        _lower(resource.RLIMIT_NOFILE, open_files, open_files)
    _lower(resource.RLIMIT_CORE, 0, 0)  # a crash leaves no core file behind


def _lower(which: int, soft: int, hard: int) -> None:
    import resource

    _, old_hard = resource.getrlimit(which)
    if old_hard != resource.RLIM_INFINITY:
        hard = min(hard, old_hard)
    resource.setrlimit(which, (min(soft, hard), hard))


def load_steps(path: Path) -> list[tuple[str, Step]]:
    spec = importlib.util.spec_from_file_location(f"aitbc_conformance_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    steps = getattr(module, "STEPS", None)
    if not isinstance(steps, (list, tuple)) or not all(
        isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str) and callable(s[1])
        for s in steps
    ):
        raise TypeError(f"{path} must define STEPS as a sequence of (name, async function)")
    return list(steps)


async def _guarded(step: Step, session: Session) -> BaseException | None:
    try:
        await step(session)
    except BaseException as exc:  # even SystemExit: the step fails, the worker goes on
        return exc
    return None


def _describe(exc: BaseException, session: Session) -> Problem:
    if isinstance(exc, StepFailure):
        return exc.problem
    file, line = session.location(exc)
    if isinstance(exc, MemoryError):
        message = f"MemoryError under the {session.limits.memory_mb} MiB address-space limit"
        return Problem("memory", message, file, line)
    if isinstance(exc, SystemExit):
        return Problem("exit", f"called sys.exit({exc.code!r})", file, line)
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    name = type(exc).__name__
    return Problem("exception", f"raised {name}: {text}" if text else f"raised {name}", file, line)


def _forget(exc: BaseException) -> None:
    """Drop the frames a traceback keeps alive (they may hold what exhausted memory)."""
    if exc.__traceback__ is not None:
        traceback.clear_frames(exc.__traceback__)
    exc.__traceback__ = None
    gc.collect()


async def run_step(session: Session, step: Step) -> list[Problem]:
    own = asyncio.current_task()
    if own is not None:
        WORKER_TASKS.add(own)
    session.problems = []
    timeout = session.limits.step_timeout_s
    task = asyncio.ensure_future(_guarded(step, session))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:  # awaiting forever; a blocked loop never gets here: the supervisor acts
        file, line = coroutine_location(task.get_coro(), session.code_roots)
        return [Problem("hang", f"hung (no answer within {timeout:g}s)", file, line)]
    error = task.result()
    problems = list(session.problems)
    if error is not None:
        try:
            problems.insert(0, _describe(error, session))
            if not isinstance(error, StepFailure):  # the full story, for the log
                traceback.print_exception(type(error), error, error.__traceback__)
        finally:
            _forget(error)
    return problems


def serve(
    loop: asyncio.AbstractEventLoop,
    session: Session,
    steps: dict[str, Step],
    channel: Channel,
    requests: IO[bytes],
) -> None:
    """Run each step the supervisor asks for, until it closes our stdin."""
    run = run_step  # bound before the plugin's import (the first step) can replace it
    for line in requests:
        try:
            request = json.loads(line)
            name, nonce = request["run"], request["nonce"]
            step = steps[name]
        except (ValueError, KeyError, TypeError):
            channel.send("error", message=f"a request the worker cannot serve: {line[:80]!r}")
            return
        channel.send("begin", step=name, nonce=nonce, code_roots=session.code_roots)
        began = time.monotonic()
        problems = loop.run_until_complete(run(session, step))
        channel.send(
            "end",
            step=name,
            nonce=nonce,
            ok=not problems,
            duration_s=round(time.monotonic() - began, 4),
            code_roots=session.code_roots,
            problems=[p.as_dict() for p in problems],
        )
        del request, nonce  # not left lying around for the next step's code to read


def _read_job() -> tuple[Path, dict[str, Any], Limits, int]:
    job = json.loads(sys.stdin.buffer.readline() or b"null")
    if not isinstance(job, dict) or not isinstance(job.get("module"), str):
        raise ValueError("the job must be an object with a module path")
    params = job.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("the job's params must be an object")
    channel = job.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise ValueError("the job must name its channel")
    return Path(job["module"]), params, Limits.from_dict(job.get("limits")), channel


def _detach_stdin() -> IO[bytes]:
    """Give the code under test an empty stdin; keep the supervisor's pipe on another fd."""
    kept = os.dup(0)  # not inheritable
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return os.fdopen(kept, "rb")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aitbc.plugins.sandbox", description="The sandbox worker: the job on stdin."
    )
    parser.parse_args(argv)
    try:
        module, params, limits, fd = _read_job()
    except (ValueError, KeyError, TypeError) as exc:
        print(f"bad job: {exc}", file=sys.stderr)
        return 2
    os.set_inheritable(fd, False)  # the code under test's children get none
    channel = Channel(fd)
    requests = _detach_stdin()
    sys.stdout = sys.stderr  # a print lands in the log, in order; the protocol is elsewhere
    apply_limits(limits)
    faulthandler.enable()
    faulthandler.register(DUMP_SIGNAL, all_threads=True)
    # Past the CPU limit: dump the stacks (to say where the time went), then die of it.
    faulthandler.register(signal.SIGXCPU, all_threads=True, chain=True)
    # Should the supervisor itself die, the worker still ends (a C watchdog thread, which
    # a blocked event loop cannot stop and the leak check does not see).
    watchdog = limits.total_timeout_s + 2 * limits.step_timeout_s + 5
    faulthandler.dump_traceback_later(watchdog, exit=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Made before the supervisor's first look at us: its descriptors are the host's.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    channel.send("hello", protocol=PROTOCOL_VERSION, pid=os.getpid())
    try:
        steps = load_steps(module)
    except Exception as exc:
        channel.send("error", message=f"cannot load {module}: {type(exc).__name__}: {exc}")
        return 2
    channel.send("plan", steps=[name for name, _ in steps])
    serve(loop, Session(params, Path.cwd(), limits), dict(steps), channel, requests)
    return 0


def run() -> NoReturn:
    """Entry point: exit at once when done, so threads or tasks the code under test left
    behind (a leak already reported) cannot keep a finished worker alive."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
