"""The behaviour record: strace's log of a jailed step, read into the actions a plugin
must declare.  The parser is fed both real strace runs (around the real jail) and
generated lines: no file name a plugin picks can be misread, and no line breaks it."""

from __future__ import annotations

import posixpath
import sys
from pathlib import Path

import pytest
from aitbc.plugins.sandbox.jail import interpreter_paths, isolation, run_observed
from aitbc.plugins.sandbox.strace_log import decode, parse, split_args
from aitbc.plugins.sandbox.trace import Action, read_behaviour
from hypothesis import given, settings
from hypothesis import strategies as st

OUTER, INIT, MAIN = 100, 101, 102


def hexed(text: str | bytes) -> str:
    """As strace -xx prints a string."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return "".join("\\x%02x" % b for b in raw)  # noqa: UP031 - no backslash in f-strings


PROLOGUE = [
    f'{OUTER} execve("{hexed("/usr/bin/bwrap")}", [], 0x1) = 0',
    f"{OUTER} clone(child_stack=NULL, flags=CLONE_NEWPID|SIGCHLD) = {INIT}",
    f"{INIT} clone(child_stack=NULL, flags=SIGCHLD) = 2 /* {MAIN} in strace's PID NS */",
    f'{MAIN} execve("{hexed("/usr/bin/python3")}", [], 0x1) = 0',
]


def behaviour_of(*lines: str, scratch: str = "/scratch") -> list[Action]:
    log = [*PROLOGUE, *lines, f"{MAIN} +++ exited with 0 +++"]
    return list(read_behaviour(log, scratch=[scratch], cwd=scratch).actions)


@given(st.binary(min_size=1, max_size=60).filter(lambda b: b"\0" not in b and b"/" not in b))
def test_no_file_name_is_misread(name: bytes) -> None:
    """Quotes, parentheses, ``) = 0``, ``>``, newlines: hex in the log, text out."""
    path = b"/etc/" + name
    line = f'{MAIN} openat(AT_FDCWD<{hexed("/scratch")}>, "{hexed(path)}", O_WRONLY|O_CREAT, 0666)'
    actions = behaviour_of(line + " = -1 EROFS (Read-only file system)")
    # Named as the kernel resolves it: "/etc/." is /etc.
    shown = posixpath.normpath(path.decode("utf-8", "backslashreplace"))
    assert actions == [Action("write", shown, "EROFS", shown)]


@given(st.lists(st.text(max_size=120), max_size=20))
@settings(max_examples=200)
def test_no_line_breaks_the_reader(lines: list[str]) -> None:
    read_behaviour([*PROLOGUE, *lines], scratch=["/scratch"], cwd="/scratch")


@given(st.lists(st.sampled_from(['"\\x41"', "{a, b}", "[1, 2]", "3<\\x2f>", "(x)", "0"]),
                min_size=1, max_size=6))  # fmt: skip
def test_arguments_split_at_the_top_level_only(args: list[str]) -> None:
    assert split_args(", ".join(args) + ") = 0") == (args, " = 0")


def test_reads_of_a_step_writes_inside_its_scratch_and_the_jails_devices_are_not_actions() -> None:
    assert (
        behaviour_of(
            f'{MAIN} openat(AT_FDCWD<{hexed("/x")}>, "{hexed("/usr/lib/a.py")}", O_RDONLY) = 3',
            f'{MAIN} openat(AT_FDCWD<{hexed("/scratch")}>, "{hexed("out")}", O_WRONLY, 0666)'
            f" = 4<{hexed('/scratch/out')}>",
            f'{MAIN} openat(AT_FDCWD<{hexed("/x")}>, "{hexed("/dev/null")}", O_WRONLY) = 5',
            f'{MAIN} mkdir("{hexed("tmp/x")}", 0700) = 0',
        )
        == []
    )


def test_unfinished_calls_are_joined_with_their_resumption() -> None:
    actions = behaviour_of(
        f"{MAIN} connect(3<{hexed('socket:[1]')}>, {{sa_family=AF_INET, sin_port=htons(443), "
        f'sin_addr=inet_addr("{hexed("10.0.0.1")}")}}, 16 <unfinished ...>',
        f"{MAIN + 1} +++ exited with 0 +++",
        f"{MAIN} <... connect resumed>) = -1 ENETUNREACH (Network is unreachable)",
    )
    assert actions == [Action("network", "10.0.0.1:443", "ENETUNREACH", "10.0.0.1", 443)]
    assert actions[0].describe() == "tried to connect to 10.0.0.1:443 (ENETUNREACH)"


def test_a_process_alive_when_the_step_ends_is_left_running() -> None:
    actions = behaviour_of(
        f"{MAIN} clone(child_stack=NULL, flags=SIGCHLD) = 5 /* 200 in strace's PID NS */",
        f"{MAIN} clone3({{flags=CLONE_VM|CLONE_THREAD}}, 88) = 6 /* 201 in strace's PID NS */",
        f'200 execve("{hexed("/usr/bin/sleep")}", ["{hexed("sleep")}", "{hexed("60")}"], 0x1) = 0',
    )
    assert [a.describe() for a in actions] == [
        "ran /usr/bin/sleep 60",
        "left running pid 200 (sleep 60)",
    ]


def test_decode_keeps_undecodable_bytes_visible() -> None:
    assert decode("\\x2f\\xff") == "/\\xff"


def test_padded_pids_are_read() -> None:
    """strace pads a short pid with spaces: ``975   execve(...)``."""
    assert [pid for pid, _ in parse(["975   +++ exited with 0 +++"])] == [975]


#: This Python, visible in the jail wherever it lives (a venv under /tmp is hidden else).
PYTHON = interpreter_paths(Path(sys.executable))
jail_only = pytest.mark.skipif(not isolation().traced, reason="needs bubblewrap and strace")
HOSTILE = r"""
import os, socket, subprocess, time
open("inside.txt", "w").write("fine")
for path in ("/etc/planted", "{home}/.ssh/planted"):
    try:
        open(path, "w")
    except OSError:
        pass
s = socket.socket()
try:
    s.connect(("127.0.0.1", 9))
except OSError:
    pass
subprocess.run(["true"])
subprocess.run(["sh", "-c", "(setsid sleep 30 &)"])
if os.fork() == 0:
    time.sleep(30)
time.sleep(0.3)
"""


@pytest.mark.integration
@jail_only
def test_a_real_step_is_seen_from_outside(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    code = HOSTILE.format(home=Path.home())
    observed = run_observed([sys.executable, "-c", code], scratch=scratch, cwd=scratch,
                            timeout=30, expected_programs=[sys.executable],
                            readable=PYTHON)  # fmt: skip
    assert observed.behaviour is not None and observed.behaviour.complete
    shown = [a.describe() for a in observed.behaviour.actions]
    assert "tried to write /etc/planted (EROFS)" in shown
    assert any(s.startswith(f"tried to write {Path.home()}/.ssh/planted") for s in shown)
    assert "tried to connect to 127.0.0.1:9 (ECONNREFUSED)" in shown
    assert "ran /usr/bin/true" in shown and "ran /usr/bin/sleep 30" in shown
    left = [s for s in shown if s.startswith("left running")]
    assert len(left) == 2 and any("sleep 30" in s for s in left), shown
    assert not any("inside.txt" in a.target for a in observed.behaviour.of("write"))


@pytest.mark.integration
@jail_only
def test_a_quiet_step_did_nothing(tmp_path: Path) -> None:
    observed = run_observed([sys.executable, "-c", "import json, asyncio"], scratch=tmp_path,
                            cwd=tmp_path, timeout=30, expected_programs=[sys.executable],
                            readable=PYTHON)  # fmt: skip
    assert observed.behaviour is not None and observed.behaviour.actions == ()


def test_a_unix_socket_is_named_and_only_bare_network_allows_it() -> None:
    from aitbc.plugins.permissions import Permissions

    (action,) = behaviour_of(
        f'{MAIN} connect(3, {{sa_family=AF_UNIX, sun_path="{hexed("/run/docker.sock")}"}}, 110)'
        " = -1 ENOENT (No such file or directory)"
    )
    assert action.describe() == "tried to connect to unix:/run/docker.sock (ENOENT)"
    assert (action.subject, action.port) == ("/run/docker.sock", None)
    assert not Permissions.parse(["network:*:*"]).allows_connect(action.subject, action.port)
    assert Permissions.parse(["network"]).allows_connect(action.subject, action.port)
