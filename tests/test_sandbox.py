"""The SDK's process sandbox: real worker processes, real limits, nothing left behind."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from aitbc.plugins.sandbox import Limits, ProtocolError, SandboxResult, run_conformance
from aitbc.plugins.sandbox.leaks import find_leaks, settle_and_find_leaks, take_snapshot
from aitbc.plugins.sandbox.protocol import decode, encode
from conftest import make_venv

FAST = Limits(step_timeout_s=1.0, total_timeout_s=20.0, memory_mb=512, cpu_s=10)

HEADER = """
import asyncio, json, os, signal, subprocess, sys, threading, time
from pathlib import Path
from aitbc.plugins.sandbox import StepFailure

async def setup(session):
    session.code_roots = [str(Path(__file__).resolve().parent)]

async def fine(session):
    session.values["ran"] = True
"""


def conformance(tmp_path: Path, body: str, steps: str) -> Path:
    """A conformance module: ``body`` defines steps, ``steps`` lists them after setup."""
    module = tmp_path / "conf" / "steps.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(HEADER + textwrap.dedent(body) + f"\nSTEPS = [('setup', setup), {steps}]\n")
    return module


def run(tmp_path: Path, body: str, steps: str, **kwargs: object) -> SandboxResult:
    module = conformance(tmp_path, body, steps)
    kwargs.setdefault("limits", FAST)
    return run_conformance(sys.executable, module, workdir=tmp_path / "work", **kwargs)  # type: ignore[arg-type]


def line_of(module: Path, text: str) -> int:
    return next(i for i, line in enumerate(module.read_text().splitlines(), 1) if text in line)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def failure(result: SandboxResult) -> tuple[str, str, str, str | None, int | None]:
    assert result.error is None, result.error
    assert not result.passed
    (step, problem), *_ = result.problems
    return step, problem.kind, problem.message, problem.file, problem.line


def test_a_passing_run_reports_every_step(tmp_path: Path) -> None:
    body = """
    async def chatty(session):
        print("to stdout", session.params["greeting"])
        print("to stderr", file=sys.stderr)
        os.write(1, b'{"type": "done"}\\n')  # the worker's own stdout is not the protocol
    """
    result = run(tmp_path, body, "('fine', fine), ('chatty', chatty)", params={"greeting": "hi"})
    assert result.passed, result
    assert result.plan == ("setup", "fine", "chatty")
    assert [s.name for s in result.steps] == ["setup", "fine", "chatty"]
    assert result.finished and result.returncode == 0 and result.death is None
    assert "to stdout hi" in result.log_tail and "to stderr" in result.log_tail
    assert result.worker_pid is not None and not alive(result.worker_pid)


def test_an_exception_is_named_with_its_line(tmp_path: Path) -> None:
    body = """
    async def boom(session):
        raise RuntimeError("cannot reach the node")
    """
    result = run(tmp_path, body, "('boom', boom), ('fine', fine)")
    module = tmp_path / "conf" / "steps.py"
    assert failure(result) == (
        "boom", "exception", "raised RuntimeError: cannot reach the node",
        str(module), line_of(module, "raise RuntimeError"),
    )  # fmt: skip
    assert [s.name for s in result.steps] == ["setup", "boom"]  # stops at the first failure
    assert "Traceback" in result.log_tail


def test_step_failures_system_exit_and_memory_errors(tmp_path: Path) -> None:
    body = """
    async def refuses(session):
        raise StepFailure("returned-false", "returned False, expected True")

    async def exits(session):
        sys.exit(3)

    async def hoards(session):
        session.values["hoard"] = hoard = []
        while True:
            hoard.append(bytes(64 * 1024 * 1024))
    """
    assert failure(run(tmp_path / "a", body, "('refuses', refuses)"))[1:3] == (
        "returned-false", "returned False, expected True"
    )  # fmt: skip
    assert failure(run(tmp_path / "b", body, "('exits', exits)"))[1:3] == (
        "exit", "called sys.exit(3)"
    )  # fmt: skip
    step, kind, message, _, line = failure(run(tmp_path / "c", body, "('hoards', hoards)"))
    assert (step, kind) == ("hoards", "memory")
    assert message == "MemoryError under the 512 MiB address-space limit"
    assert line == line_of(tmp_path / "c" / "conf" / "steps.py", "hoard.append")


def test_a_step_awaiting_forever_is_reported_by_the_worker(tmp_path: Path) -> None:
    body = """
    async def waits(session):
        await asyncio.Event().wait()
    """
    began = time.monotonic()
    result = run(tmp_path, body, "('waits', waits)")
    step, kind, message, _, line = failure(result)
    assert (step, kind, message) == ("waits", "hang", "hung (no answer within 1s)")
    assert line == line_of(tmp_path / "conf" / "steps.py", "Event().wait()")
    assert time.monotonic() - began < 5
    assert result.finished  # the worker itself said so, then was ended


def test_a_blocked_event_loop_is_caught_by_the_supervisor(tmp_path: Path) -> None:
    body = """
    async def sleeps(session):
        time.sleep(600)
    """
    began = time.monotonic()
    result = run(tmp_path, body, "('sleeps', sleeps)")
    step, kind, message, _, line = failure(result)
    assert (step, kind) == ("sleeps", "hang")
    assert message == "hung (no answer within 1s; the event loop was blocked)"
    assert line == line_of(tmp_path / "conf" / "steps.py", "time.sleep(600)")  # faulthandler
    assert result.death == "killed after a timeout" and not result.finished
    assert time.monotonic() - began < 6
    assert result.worker_pid is not None and not alive(result.worker_pid)


def test_dying_without_answering(tmp_path: Path) -> None:
    body = """
    async def quits(session):
        os._exit(0)

    async def crashes(session):
        os.kill(os.getpid(), signal.SIGSEGV)
        await asyncio.sleep(5)
    """
    assert failure(run(tmp_path / "a", body, "('quits', quits)"))[:3] == (
        "quits", "exit", "the worker exited with status 0 without answering (os._exit?)"
    )  # fmt: skip
    assert failure(run(tmp_path / "b", body, "('crashes', crashes)"))[:3] == (
        "crashes", "exit", "the worker died from signal SIGSEGV"
    )  # fmt: skip


def test_the_cpu_time_limit(tmp_path: Path) -> None:
    body = """
    async def spins(session):
        while True:
            pass
    """
    limits = Limits(step_timeout_s=5.0, total_timeout_s=20.0, memory_mb=512, cpu_s=1)
    step, kind, message, file, line = failure(
        run(tmp_path, body, "('spins', spins)", limits=limits)
    )
    assert (step, kind, message) == ("spins", "cpu", "the worker exceeded its CPU-time limit of 1s")
    assert file is not None and line is not None  # faulthandler dumped where the time went


def test_the_overall_limit(tmp_path: Path) -> None:
    """Each step is within its own limit; the run as a whole is not. The budget counts
    start-up too, so the long step is the one named whatever start-up costs."""
    body = """
    async def naps(session):
        await asyncio.sleep(0.1)

    async def sleeps(session):
        await asyncio.sleep(30)
    """
    limits = Limits(step_timeout_s=40.0, total_timeout_s=4.0, memory_mb=512, cpu_s=10)
    began = time.monotonic()
    result = run(tmp_path, body, "('one', naps), ('two', sleeps), ('three', naps)", limits=limits)
    step, kind, message, _, _ = failure(result)
    assert (step, kind) == ("two", "hang")
    assert message == "hung (the whole run exceeded its 4s limit)"
    assert time.monotonic() - began < 15


@pytest.mark.parametrize("ending", ["blocks", "finishes"])
def test_no_process_is_left_behind(tmp_path: Path, ending: str) -> None:
    """The worker, a child in its group and a grandchild in a session of its own."""
    body = f"""
    async def spawns(session):
        child = subprocess.Popen(["sleep", "600"])
        escaped = subprocess.Popen(["sleep", "601"], start_new_session=True)
        Path(session.params["pids"]).write_text(f"{{child.pid}} {{escaped.pid}}")
        if "{ending}" == "blocks":
            time.sleep(600)
    """
    pids_file = tmp_path / "pids"
    result = run(tmp_path, body, "('spawns', spawns)", params={"pids": str(pids_file)})
    children = [int(pid) for pid in pids_file.read_text().split()]
    assert not result.passed
    if ending == "finishes":  # seen from outside, after the last step: each one named
        assert result.death is None
        left = [p.message for _, p in result.problems if p.kind == "leak.process"]
        assert len(left) == 2 and all("sleep 60" in m for m in left), left
    else:
        assert result.death is not None
    deadline = time.monotonic() + 3
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.worker_pid is not None
    assert [pid for pid in [result.worker_pid, *children] if alive(pid)] == []


FIND_CHANNEL = """
    def channels():
        # What hostile code does without argv: every pipe it holds, but stdin and stdout.
        for name in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{name}")
            except OSError:  # the descriptor listdir used
                continue
            if target.startswith("pipe:") and int(name) > 2:
                yield int(name)
"""


def test_garbage_on_the_result_channel_fails_the_step_as_forged(tmp_path: Path) -> None:
    body = (
        FIND_CHANNEL
        + """
    async def garbles(session):
        for fd in channels():
            try:
                os.write(fd, b"this is not json\\n")
            except OSError:
                pass
        await asyncio.sleep(5)
    """
    )
    result = run(tmp_path, body, "('garbles', garbles)")
    assert result.error is None and not result.passed
    assert [p.kind for _, p in result.problems] == ["forged"]
    assert result.worker_pid is not None and not alive(result.worker_pid)


def test_forged_answers_to_every_step_are_refused(tmp_path: Path) -> None:
    """A step that, before the next ones are asked for, writes their passing answers
    (and its own), in the worker's own format: no nonce, so nothing is believed."""
    body = (
        FIND_CHANNEL
        + """
    async def forges(session):
        lines = []
        for step in ("forges", "leaks"):
            lines.append({"type": "end", "step": step, "ok": True, "problems": []})
            lines.append({"type": "begin", "step": step, "code_roots": []})
        for fd in channels():
            try:
                os.write(fd, b"".join(json.dumps(m).encode() + b"\\n" for m in lines))
            except OSError:
                pass

    async def leaks(session):
        session.values["thread"] = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        session.values["thread"].start()
    """
    )
    result = run(tmp_path, body, "('forges', forges), ('leaks', leaks)")
    assert not result.passed and result.error is None
    assert [p.kind for _, p in result.problems] == ["forged"]


def test_a_worker_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    module = conformance(tmp_path, "", "('fine', fine)")
    missing = run_conformance(tmp_path / "no-python", module, limits=FAST)
    assert missing.error is not None and missing.error.startswith("could not start the worker")
    bare = make_venv(tmp_path / "bare")  # a Python without the SDK
    without_sdk = run_conformance(bare, module, limits=FAST)
    assert without_sdk.error is not None
    assert "could not start" in without_sdk.error and "aitbc" in without_sdk.error
    broken = tmp_path / "broken.py"
    broken.write_text("STEPS = 'not a list'\n")
    unloadable = run_conformance(sys.executable, broken, limits=FAST)
    assert unloadable.error is not None and "must define STEPS" in unloadable.error
    assert not any(r.passed for r in (missing, without_sdk, unloadable))


def test_the_protocol_rejects_what_is_not_a_message() -> None:
    assert decode(encode({"type": "plan"})) == {"type": "plan"}
    for line in (b"not json", b"[]", b'{"type": "shout"}', b"{" + b" " * (1 << 20) + b"}"):
        with pytest.raises(ProtocolError):
            decode(line)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=0)


def test_leaks_are_found_and_named(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        before = take_snapshot()
        halt = threading.Event()
        thread = threading.Thread(target=halt.wait, name="poller", daemon=True)
        thread.start()

        async def heartbeat() -> None:
            await asyncio.sleep(60)

        task = asyncio.get_running_loop().create_task(heartbeat())
        log = (tmp_path / "x.log").open("w")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await asyncio.to_thread(time.sleep, 0)  # the host's executor thread is no leak
        found = [p.message for p in find_leaks(before, [])]
        halt.set()
        task.cancel()  # not awaited: the grace period lets it finish
        log.close()
        sock.close()
        left = [p.message for p in await settle_and_find_leaks(before, [], grace_s=1.0)]
        return found, left

    found, left = asyncio.run(scenario())
    assert found[0] == "leaked thread 'poller' (daemon)"
    assert found[1].startswith("leaked asyncio task test_leaks_are_found_and_named.<locals>")
    assert found[2].startswith(f"leaked file {tmp_path / 'x.log'} (fd ")
    assert found[3].startswith("leaked socket AF_INET/SOCK_DGRAM")
    assert len(found) == 4
    assert left == []
