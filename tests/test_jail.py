"""The kernel jail (bubblewrap) the sandbox worker runs plugin code in, tried the way a
hostile plugin would: secrets in the environment, a listener on the host's loopback,
the caller's home and ~/.ssh, files outside the scratch folder, a process that tries to
outlive its run.  And a careless one: blocking the loop, burning CPU.  Real processes,
the real sandbox."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aitbc.plugins.sandbox import Limits, SandboxResult, run_conformance
from aitbc.plugins.sandbox.jail import isolation
from conftest import REPO

PYTHON = Path(sys.executable)
FAST = Limits(step_timeout_s=3.0, total_timeout_s=20.0, memory_mb=512, cpu_s=5)
SDK = REPO / "toolkit"  # this venv's SDK is an editable install of it


def steps(tmp_path: Path, body: str) -> Path:
    """A conformance module whose step runs ``body`` (``session`` in scope), after a step
    that names this module as the code under test."""
    module = tmp_path / "conformance.py"
    module.write_text(
        "import os, socket, subprocess, sys, time\n"
        "from pathlib import Path\n\n"
        "async def step(session):\n" + textwrap.indent(textwrap.dedent(body), "    ") + "\n\n"
        "async def roots(session):\n"
        "    session.code_roots = [os.path.abspath(__file__)]\n\n"
        'STEPS = [("roots", roots), ("step", step)]\n'
    )
    return module


def jailed(
    tmp_path: Path, body: str, limits: Limits = FAST, **params: object
) -> tuple[SandboxResult, Path]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    outcome = run_conformance(PYTHON, steps(tmp_path, body), params=params, limits=limits,
                              workdir=workdir, isolate=True, readable=[SDK])  # fmt: skip
    return outcome, workdir


def test_this_machine_has_a_full_jail() -> None:
    found = isolation()
    assert found.level == "full", found.describe()
    assert found.mechanism.startswith("bubblewrap")


def test_a_good_step_passes_in_the_jail(tmp_path: Path) -> None:
    outcome, workdir = jailed(tmp_path, "Path('made-here').write_text('ok')")
    assert outcome.passed, outcome
    assert (workdir / "made-here").read_text() == "ok"  # the scratch folder is writable


def test_the_callers_secrets_are_not_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake_secret_for_the_test")
    outcome, workdir = jailed(tmp_path, "Path('env.txt').write_text(repr(dict(os.environ)))")
    assert outcome.passed, outcome
    seen = (workdir / "env.txt").read_text()
    assert "ghp_fake_secret_for_the_test" not in seen and "GITHUB_TOKEN" not in seen
    # A fresh HOME in the scratch folder, at the same neutral path in every jail: no
    # folder name says who runs it (certification's scratch is named after its check).
    assert "'HOME': '/tmp/work/home'" in seen and str(workdir) not in seen


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on the host's loopback that records whatever reaches it."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                received.append(conn.recv(1024) or b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        done.set()
        thread.join()
        server.close()


def test_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    with listener() as (port, received):
        outcome, workdir = jailed(tmp_path, """
            try:
                with socket.create_connection(("127.0.0.1", session.params["port"]), 2) as s:
                    s.sendall(b"stolen")
                Path("result").write_text("connected")
            except OSError as exc:
                Path("result").write_text(type(exc).__name__)
            """, port=port)  # fmt: skip
    assert outcome.passed, outcome
    assert received == []
    assert (workdir / "result").read_text() == "ConnectionRefusedError"


def test_home_and_ssh_cannot_be_read_and_nothing_outside_scratch_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / "marker").mkdir()
    monkeypatch.setenv("HOME", str(home))
    outside = tmp_path / "outside.txt"
    body = """
        found = {}
        for name, path in session.params.items():
            try:
                found[name] = sorted(os.listdir(path))
            except OSError as exc:
                found[name] = type(exc).__name__
        for target in (session.params["marker"] + "/planted", session.params["outside"],
                       session.params["repo"] + "/planted-by-a-plugin"):
            try:
                Path(target).write_text("x")
            except OSError:
                pass
        Path("found").write_text(repr(found))
        """
    outcome, workdir = jailed(tmp_path, body, ssh=str(home / ".ssh"), marker=str(home / "marker"),
                              outside=str(outside), repo=str(REPO))  # fmt: skip
    assert outcome.passed, outcome
    found = (workdir / "found").read_text()
    assert "'ssh': 'FileNotFoundError'" in found  # the caller's home is an empty folder
    assert sorted(p.name for p in (home / "marker").iterdir()) == []
    assert not outside.exists()
    assert not (REPO / "planted-by-a-plugin").exists()  # read-only, however root it is


def test_nothing_outlives_the_run_double_forks_and_setsid_included(tmp_path: Path) -> None:
    marker = f"aitbc-jail-escapee-{os.getpid()}-{tmp_path.name}"
    body = f"""
        subprocess.Popen(["sh", "-c", "setsid sh -c 'sleep 300; : {marker}' &"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        """
    outcome, _ = jailed(tmp_path, body)
    # Seen from outside after the last step, named, and killed with the jail.
    left = [p.message for _, p in outcome.problems if p.kind == "leak.process"]
    assert not outcome.passed and any(marker in m for m in left), outcome.problems
    alive = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                alive.append(entry.name)
    assert alive == []


def test_a_blocked_loop_is_named_at_its_line_from_outside_the_jail(tmp_path: Path) -> None:
    outcome, _ = jailed(tmp_path, "time.sleep(60)  # the line that blocks")
    (problem,) = [p for _, p in outcome.problems]
    assert problem.kind == "hang" and problem.line == 5  # conformance.py: the sleep
    assert outcome.duration_s < 15


def test_a_cpu_hog_is_reported_as_such_through_the_jail(tmp_path: Path) -> None:
    limits = Limits(step_timeout_s=15.0, total_timeout_s=30.0, memory_mb=512, cpu_s=1)
    outcome, _ = jailed(tmp_path, "while True:\n    pass", limits)
    (problem,) = [p for _, p in outcome.problems]
    assert problem.kind == "cpu", outcome
