"""``certify``'s live progress on a terminal, as pip and uv show theirs with rich.

While a check runs it has one line on stderr (spinner, name, time so far); when it ends
that line gives way to its one-line result, printed once above the live area.  There is
no live display (and so no escape code) when stderr is not an interactive terminal, is a
dumb one (``TERM=dumb``), or when ``CI`` is set: logs get the plain report alone.
``NO_COLOR`` keeps the live lines and drops their colour (rich honours it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.text import Text

from ..certify.causes import brief
from ..certify.model import CertificationReport, CheckResult, CheckStatus
from ..certify.writers._common import one_line, seconds, status_label

STYLES = {
    CheckStatus.PASSED: "green",
    CheckStatus.FAILED: "bold red",
    CheckStatus.ERROR: "bold red",
    CheckStatus.INCOMPLETE: "yellow",
    CheckStatus.SKIPPED: "dim",
}
ID_WIDTH = 10  # the longest check id (9) and a space: the live lines line up
PREPARING = "preparing (building the project in a copy)"


def in_ci(environ: Mapping[str, str]) -> bool:
    """``CI`` set to anything but an explicit no: every common CI service sets it."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def live_console(environ: Mapping[str, str] | None = None) -> Console | None:
    """The stderr console to show live progress on, or None where it must not run."""
    environ = os.environ if environ is None else environ
    if in_ci(environ):
        return None
    console = Console(stderr=True, highlight=False)
    # is_interactive: a terminal (rich's detection, FORCE_COLOR and TTY_* included)
    # that is not TERM=dumb, where moving the cursor back over a line works.
    return console if console.is_interactive else None


class _Elapsed(ProgressColumn):
    """``3.2s``: seconds, like the result lines, rather than rich's ``0:00:03``."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.elapsed or 0.0:5.1f}s", style="dim")


def result_line(result: CheckResult) -> Text:
    """``  passed     security    0.3s (cached)  no issue at or above ...``."""
    line = Text("  ")
    line.append(f"{status_label(result):<10}", style=STYLES[result.status])
    line.append(f" {one_line(result.id):<{ID_WIDTH}}", style="bold")
    line.append(f"{seconds(result.duration_s):5.1f}s")
    if result.cached:
        line.append(" (cached)", style="dim")
    summary = brief(one_line(result.summary))
    if summary:
        line.append(f"  {summary}")
    return line


class LiveProgress:
    """A ``ProgressCallback`` for the runner's worker threads, used as a context manager
    around the run.  ``shown`` holds the checks whose result it printed."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold", markup=False),
            _Elapsed(),
            console=console,
            transient=True,  # the running lines go; the printed results stay
        )
        self._lock = threading.Lock()
        self._running: dict[str, TaskID] = {}
        self._preparing: TaskID | None = None
        self.shown: set[str] = set()

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        # The build comes before any check starts: say so rather than sit blank.
        self._preparing = self._progress.add_task(PREPARING, total=None)
        self._progress.refresh()  # now, not at the first tick
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
        if self.shown:  # a blank line between the results and the report after them
            self._progress.console.print()

    def __call__(self, check_id: str, result: CheckResult | None) -> None:
        with self._lock:  # the runner calls from its worker threads
            if self._preparing is not None:
                self._progress.remove_task(self._preparing)
                self._preparing = None
            if result is None:
                label = f"{one_line(check_id):<{ID_WIDTH}}"
                self._running[check_id] = self._progress.add_task(label, total=None)
                return
            task = self._running.pop(check_id, None)
            if task is not None:
                self._progress.remove_task(task)
            # Redraw first: printing repaints the live area as last drawn, and that
            # still had this check running (a flicker of a line already replaced).
            self._progress.refresh()
            # One line, even on a narrow terminal (print's own options: it joins what
            # it is given into a new Text, losing that Text's).
            self._progress.console.print(result_line(result), no_wrap=True, overflow="ellipsis")
            self.shown.add(check_id)

    def showed_every_result(self, report: CertificationReport) -> bool:
        """Whether every check that ran (all but those ``--only`` left out) was shown."""
        ran = {c.id for c in report.checks if not report.only or c.id in report.only}
        return ran <= self.shown


def live_progress() -> LiveProgress | None:
    """Live progress on stderr, or None (no terminal, a dumb one, or CI)."""
    console = live_console()
    return LiveProgress(console) if console is not None else None


def same_terminal() -> bool:
    """Whether stdout is a terminal and the very one stderr is (the live lines'
    screen), so the report printed there may leave out what they showed."""
    try:
        if not sys.stdout.isatty():
            return False
        return os.fstat(sys.stdout.fileno()).st_rdev == os.fstat(sys.stderr.fileno()).st_rdev
    except (OSError, ValueError):  # closed or replaced streams: say no, print everything
        return False
