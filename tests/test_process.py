"""aitbc.plugins.process: real processes, real escapes (setsid, double forks), no mocks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aitbc.plugins.process import TREE_VARIABLE, Completed, kill_tree, run, spawn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

# The child of the tree: it starts an escapee, waits until the escapee wrote its pid to
# argv[2], then exits ("exit") or sleeps until killed ("wait").  The modes:
#   setsid         the escapee is the child's own child, in a new session
#   double         fork, setsid, fork: the escapee is orphaned at once (a daemon)
#   double-group   fork, fork, exec with an EMPTY environment, still in the group
#   setsid-clean   setsid and exec with an empty environment, its parent alive
#   double-clean   setsid, empty environment, orphaned: what the tree kill cannot find
TREE = r"""
import os, shutil, sys, time
mode, pidfile, end = sys.argv[1:4]

def escapee():
    with open(pidfile + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.rename(pidfile + ".tmp", pidfile)
    env = {} if mode in ("double-group", "setsid-clean", "double-clean") else dict(os.environ)
    sleep = shutil.which("sleep")
    os.execve(sleep, [sleep, "300"], env)

first = os.fork()
if first == 0:
    if mode != "double-group":
        os.setsid()
    if mode.startswith("double") and os.fork() != 0:
        os._exit(0)
    escapee()
os.waitpid(first, 0) if mode.startswith("double") else None
while not os.path.exists(pidfile):
    time.sleep(0.005)
print("started", flush=True)
if end == "wait":
    time.sleep(60)
"""


def state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid), or None when the pid is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def assert_dead(pid: int) -> None:
    """Gone, or a zombie some other parent will reap: never a zombie left to us."""
    found = state(pid)
    assert found is None or (found[0] == "Z" and found[1] != os.getpid()), found


def tree(mode: str, end: str, tmp_path: Path) -> tuple[list[str], Path]:
    pidfile = tmp_path / f"{mode}-{end}.pid"
    return [sys.executable, "-c", TREE, mode, str(pidfile), end], pidfile


def test_a_command_that_finishes_is_captured() -> None:
    done = run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); exit(3)"],
        timeout=10,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert not done.timed_out and done.tail() == "err" and 0 < done.duration_s < 10
    assert done.command[0] == sys.executable


def test_past_the_timeout_the_command_is_killed_and_returncode_is_none() -> None:
    began = time.monotonic()
    done = run(["sh", "-c", "echo before; exec sleep 30"], timeout=0.3)
    assert done.timed_out and done.returncode is None
    assert done.stdout == "before\n"  # what it said before the kill is kept
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("mode", ["setsid", "double", "double-group"])
def test_escapees_die_when_the_command_exits(mode: str, tmp_path: Path) -> None:
    command, pidfile = tree(mode, "exit", tmp_path)
    done = run(command, timeout=10)
    assert done.returncode == 0 and done.stdout == "started\n", done
    assert_dead(int(pidfile.read_text()))


@pytest.mark.parametrize("mode", ["setsid", "double", "setsid-clean"])
def test_escapees_die_when_the_command_times_out(mode: str, tmp_path: Path) -> None:
    command, pidfile = tree(mode, "wait", tmp_path)
    done = run(command, timeout=1.5)  # ample for a loaded machine to start the tree
    assert done.timed_out and done.stdout == "started\n", done
    assert_dead(int(pidfile.read_text()))


def test_a_shell_setsid_grandchild_dies_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = (
        'setsid sh -c \'echo $$ > "$0"; exec sleep 300\' "$0" >/dev/null 2>&1 &'
        ' while [ ! -s "$0" ]; do sleep 0.01; done; echo started'
    )
    done = run(["sh", "-c", script, str(pidfile)], timeout=10)
    assert done.stdout == "started\n"
    assert_dead(int(pidfile.read_text()))


def test_an_escapee_holding_the_pipe_does_not_make_the_run_wait(tmp_path: Path) -> None:
    """The command exited: the tree is killed at once, not at the timeout."""
    done = run(["sh", "-c", "setsid sleep 300 & echo $!"], timeout=20)
    assert done.returncode == 0 and done.duration_s < 5
    assert_dead(int(done.stdout))


def test_what_the_tree_kill_cannot_find(tmp_path: Path) -> None:
    """Empty environment + own session + orphaned before we look: documented, it lives
    (the sandbox's PID namespace is for that).  Cleaned up here by hand."""
    command, pidfile = tree("double-clean", "exit", tmp_path)
    run(command, timeout=10)
    pid = int(pidfile.read_text())
    try:
        assert state(pid) == ("S", os.getpid())  # alive, and reparented to us (subreaper)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_keyboard_interrupt_kills_the_tree_and_propagates(tmp_path: Path) -> None:
    command, pidfile = tree("double", "wait", tmp_path)
    main = threading.get_ident()

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)  # as Ctrl-C would: select() is woken

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt)
    began = time.monotonic()
    try:
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            run(command, timeout=30)
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - began < 10
    assert_dead(int(pidfile.read_text()))


def test_spawn_kills_the_tree_when_the_block_ends(tmp_path: Path) -> None:
    command, pidfile = tree("double", "wait", tmp_path)
    with spawn(command, timeout=30, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stdout.readline() == b"started\n"
        child, escapee = process.pid, int(pidfile.read_text())
        assert state(escapee) is not None and process.poll() is None
    assert process.returncode == -signal.SIGKILL  # reaped by spawn
    assert state(child) is None
    assert_dead(escapee)


def test_spawn_kills_the_tree_on_an_exception_and_past_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), spawn(["sleep", "30"], timeout=30) as process:
        raise RuntimeError("the caller failed")
    assert process.returncode == -signal.SIGKILL
    with spawn(["sleep", "30"], timeout=0.2) as process:
        assert process.wait(timeout=5) == -signal.SIGKILL  # the backstop fired
        assert process.stdin is None  # /dev/null


def test_wrap_prefixes_the_command() -> None:
    done = run(
        ["sh", "-c", "echo $WRAPPED"], timeout=10, wrap=lambda cmd: ["env", "WRAPPED=1", *cmd]
    )
    assert done.stdout == "1\n"
    assert done.command == ("env", "WRAPPED=1", "sh", "-c", "echo $WRAPPED")


def test_env_is_set_over_the_callers_environment() -> None:
    show = "import os; print(os.environ.get('HOME'), os.environ['EXTRA'])"
    done = run([sys.executable, "-c", show], timeout=10, env={"EXTRA": "x"})
    assert done.stdout == f"{os.environ.get('HOME')} x\n"
    token = run(["sh", "-c", f"echo ${TREE_VARIABLE}"], timeout=10).stdout.strip()
    assert len(token) == 32
    nested = run(["sh", "-c", f"echo ${TREE_VARIABLE}"], timeout=10, env={TREE_VARIABLE: "outer"})
    assert nested.stdout.startswith("outer:") and token not in nested.stdout  # one per tree


def test_stdin_input_cwd_and_undecodable_output(tmp_path: Path) -> None:
    assert run(["cat"], timeout=10).stdout == ""  # /dev/null: nothing to wait for
    big = "line\n" * 200_000  # larger than a pipe buffer both ways: no deadlock
    assert run(["cat"], timeout=10, input=big).stdout == big
    assert run(["pwd"], timeout=10, cwd=tmp_path).stdout.strip() == str(tmp_path)
    raw = (
        "import sys; sys.stdout.buffer.write(b'\\xff\\xfeok\\r\\n');"
        " sys.stderr.buffer.write(b'\\x80')"
    )
    done = run([sys.executable, "-c", raw], timeout=10)
    assert done.stdout == "\ufffd\ufffdok\n" and done.stderr == "\ufffd"
    with pytest.raises(FileNotFoundError):
        run([str(tmp_path / "no-such-tool")], timeout=10)


def test_kill_tree_reaches_a_process_that_left_the_group() -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    leader = subprocess.Popen(
        ["sh", "-c", f"setsid {sleep} 300 & echo $!; exec {sleep} 300"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    escapee = int(leader.stdout.readline())
    leader.stdout.close()
    kill_tree(leader.pid)
    assert leader.wait(timeout=5) == -signal.SIGKILL
    assert_dead(escapee)


def test_completed_is_what_tool_runs_were() -> None:
    done = Completed(("x",), None, "a\nb\n", "", 1.0)
    assert done.timed_out and done.tail(1) == "b"
    assert Completed(("x",), 0, "", "", 0.0).tail() == "(no output)"
