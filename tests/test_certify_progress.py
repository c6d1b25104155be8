"""What `certify` shows a person: live progress on a terminal, the plain report elsewhere.

The live display is judged as a terminal shows it: the real command runs on a
pseudo-terminal and pyte (a VT100 emulator) renders what it wrote, cursor moves and
erased lines included, into the screen a person reads."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import IO

import pyte
import pytest
from aitbc.plugin_toolkit.certify.model import CertificationReport, CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.writers._common import PARTIAL
from aitbc.plugin_toolkit.certify.writers.text import render
from aitbc.plugin_toolkit.cli.progress import in_ci, result_line
from certify_support import load_cases, make_project, materialize
from conftest import VULN_DB
from test_writers import FAILING

TOOL = Path(sys.executable).with_name("aitbc-plugin")
CHECK_IDS = ("structure", "metadata", "interface", "security", "audit", "lifecycle", "tests",
             "build")  # fmt: skip
RAN = ("structure", "security")  # fast checks: the whole module takes seconds
STATUS_WORDS = {"passed", "FAILED", "ERROR", "INCOMPLETE", "skipped"}
ROWS, COLUMNS = 100, 200  # room for the whole output: nothing scrolls off the screen
# What would make the child's rich, or this test, see another terminal than the pty's.
TERMINAL_ENV = ("CI", "NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "LINES", "TTY_COMPATIBLE",
                "TTY_INTERACTIVE", "CLICOLOR_FORCE")  # fmt: skip


def test_compact_text_is_the_full_report_less_its_table() -> None:
    full, compact = render(FAILING), render(FAILING, compact=True)
    table = full[2 : 2 + len(FAILING.checks)]
    assert [line.split()[0] for line in table] == [c.id for c in FAILING.checks]
    assert compact == full[:1] + full[2 + len(FAILING.checks) :]
    # What a person acts on stays: the verdict, findings, artifacts, reasons, provenance.
    for kept in ("NOT CERTIFIED: my-plugin 0.1.0", "interface: FAILED", "Artifacts:",
                 "Not certified because:", "  - interface failed: 2 errors"):  # fmt: skip
        assert kept in compact


def test_compact_partial_run_still_says_it_is_no_certification() -> None:
    report = CertificationReport(
        False, {"name": "p", "version": "1"}, (CheckResult("security", CheckStatus.PASSED),),
        only=("security",),
    )  # fmt: skip
    lines = render(report, compact=True)
    assert lines == ["PASSED (only: security): p 1", PARTIAL, "", "Checked by aitbc-plugin"]


def test_a_result_line_is_one_line_of_plain_text_whatever_the_summary_holds() -> None:
    result = CheckResult("security", CheckStatus.FAILED, 1.25, (), "[red]x[/] \x1b[2J\nnext")
    line = result_line(result)
    assert line.plain == "  FAILED     security    1.2s  [red]x[/] \\x1b[2J next"


@pytest.mark.parametrize(
    ("value", "ci"),
    [("", False), ("0", False), ("false", False), ("No", False), ("true", True), ("1", True),
     ("woodpecker", True)],
)  # fmt: skip
def test_ci_is_any_value_but_an_explicit_no(value: str, ci: bool) -> None:
    assert in_ci({"CI": value}) is ci


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project("progress-demo", "base", tmp_path_factory.mktemp("progress"))


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_ENV}
    return {**env, "TERM": "xterm-256color", **extra}


def certify_args(project: Path, *extra: str | Path) -> list[str]:
    only = [a for check in RAN for a in ("--only", check)]
    return [str(TOOL), "certify", str(project), *only, "--vuln-db", str(VULN_DB), *map(str, extra)]


def on_terminal(
    argv: list[str],
    env: dict[str, str],
    stdout: IO[bytes] | None = None,
    columns: int = COLUMNS,
    timeout: float = 120,
) -> tuple[int, bytes]:
    """Run ``argv`` with stderr, and stdout unless given, on one pseudo-terminal; all it
    wrote there."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or slave,
                             stderr=slave, env=env, start_new_session=True)  # fmt: skip
    os.close(slave)
    output, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: no process holds the terminal any more
                    break
                output += chunk
            if not chunk and child.poll() is not None:
                break  # exited, and nothing more is waiting
        else:
            child.kill()
            raise AssertionError(f"{argv} took over {timeout}s:\n{output.decode(errors='replace')}")
    finally:
        os.close(master)
    return child.wait(timeout=10), bytes(output)


def screen_of(output: bytes, columns: int = COLUMNS) -> pyte.Screen:
    screen = pyte.Screen(columns, ROWS)
    pyte.ByteStream(screen).feed(output)
    return screen


def screen_lines(screen: pyte.Screen) -> list[str]:
    return [line.rstrip() for line in screen.display if line.strip()]


def result_rows(lines: list[str], check_id: str) -> list[str]:
    """The lines that give ``check_id``'s result: its id and a status, as words."""
    return [line for line in lines if check_id in line.split() and STATUS_WORDS & set(line.split())]


def assert_plain_report_once(text: str, where: str) -> None:
    assert "\x1b" not in text, f"{where}: escape codes in\n{text}"
    lines = text.splitlines()
    for check_id in CHECK_IDS:  # the full table (checks --only left out too), once
        assert len(result_rows(lines, check_id)) == 1, f"{where}: {check_id} in\n{text}"
    assert text.count("PASSED (only: structure, security): progress-demo 0.1.0") == 1, text


@pytest.mark.integration
def test_on_a_terminal_each_result_replaces_its_live_line_once(
    project: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    argv = certify_args(project, "--format", "text", "--format", "json", "--report-dir", reports)
    code, output = on_terminal(argv, environment())
    screen = screen_of(output)
    lines = screen_lines(screen)
    shown = "\n".join(lines)
    assert code == 0, shown
    for check_id in RAN:  # one result line each, the live one it replaced gone
        assert len(result_rows(lines, check_id)) == 1, shown
        assert sum(check_id in line.split() for line in lines) == 1, shown
    for check_id in set(CHECK_IDS) - set(RAN):  # --only left it out: the verdict says so
        assert not result_rows(lines, check_id), shown
    assert b"preparing" in output  # the live display ran: its first line, now erased
    assert "preparing" not in shown and not any(line.lstrip().startswith("...") for line in lines)
    assert "(cached)" in shown or "s  all of the spec's files" in shown
    verdict = lines.index("PASSED (only: structure, security): progress-demo 0.1.0")
    assert verdict > max(lines.index(result_rows(lines, c)[0]) for c in RAN)
    assert lines[verdict + 1].startswith("This is not a certification")
    assert "Artifacts:" in lines and any(
        line.startswith("Checked by aitbc-plugin") for line in lines
    )
    # In colour: the emulator holds "passed" in green.
    row = next(i for i, line in enumerate(screen.display) if "structure" in line.split())
    start = screen.display[row].index("passed")
    assert {screen.buffer[row][x].fg for x in range(start, start + 6)} == {"green"}
    # The report file is the whole report, whatever the terminal showed.
    assert_plain_report_once((reports / "certification.txt").read_text(), "certification.txt")


@pytest.mark.integration
def test_a_failure_is_red_once_live_and_its_findings_follow(tmp_path: Path) -> None:
    [case] = [c for c in load_cases() if c.name == "security-subprocess-shell"]
    code, output = on_terminal(certify_args(materialize(case, tmp_path)), environment())
    screen = screen_of(output)
    lines = screen_lines(screen)
    shown = "\n".join(lines)
    assert code == 1, shown
    [row] = result_rows(lines, "security")
    assert row.split()[:2] == ["FAILED", "security"], shown
    y = screen.display.index(row.ljust(COLUMNS))
    assert {screen.buffer[y][x].fg for x in range(2, 8)} == {"red"}
    # The verdict, then what to act on: the findings (once), and why it failed.
    assert lines.index(next(line for line in lines if line.startswith("FAILED (only:"))) > 0
    assert lines.count("security: FAILED") == 1 and "Failed because:" in lines, shown
    assert sum("shell=True" in line for line in lines) >= 1, shown


@pytest.mark.integration
def test_a_report_sent_to_a_file_is_whole_while_the_terminal_shows_progress(
    project: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.txt"
    with report.open("wb") as stdout:
        code, output = on_terminal(certify_args(project), environment(), stdout=stdout)
    lines = screen_lines(screen_of(output))
    assert code == 0, output
    assert [len(result_rows(lines, c)) for c in RAN] == [1, 1], "\n".join(lines)
    assert not any(line.startswith("PASSED") for line in lines)  # the report went to the file
    assert_plain_report_once(report.read_text(), "stdout to a file")


@pytest.mark.integration
def test_on_a_narrow_terminal_a_result_stays_one_line(project: Path) -> None:
    code, output = on_terminal(certify_args(project), environment(), columns=60)
    lines = screen_lines(screen_of(output, columns=60))
    assert code == 0, "\n".join(lines)
    [row] = result_rows(lines, "security")
    assert len(row) == 60 and row.endswith("…"), "\n".join(lines)
    assert "ship or run" not in "\n".join(lines)  # the summary's end: cut, not wrapped


@pytest.mark.integration
def test_no_color_keeps_the_live_lines_without_colour(project: Path) -> None:
    code, output = on_terminal(certify_args(project), environment(NO_COLOR="1"))
    screen = screen_of(output)
    lines = screen_lines(screen)
    assert code == 0, "\n".join(lines)
    assert [len(result_rows(lines, c)) for c in RAN] == [1, 1], "\n".join(lines)
    colours = {cell.fg for row in screen.buffer.values() for cell in row.values()}
    assert colours == {"default"}


@pytest.mark.integration
@pytest.mark.parametrize("env", [{"CI": "true"}, {"TERM": "dumb"}], ids=["CI", "TERM=dumb"])
def test_in_ci_or_a_dumb_terminal_the_plain_report_alone(
    project: Path, env: dict[str, str]
) -> None:
    code, output = on_terminal(certify_args(project), environment(**env))
    text = output.decode().replace("\r\n", "\n")
    assert code == 0, text
    assert "\r" not in text
    assert_plain_report_once(text, str(env))


@pytest.mark.integration
def test_piped_the_plain_report_alone(project: Path) -> None:
    run = subprocess.run(certify_args(project), capture_output=True, text=True,
                         env=environment(), timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    assert_plain_report_once(run.stdout, "piped")
