"""Subprocesses for the benchmarks: wall time, and the peak memory of a whole process
tree, sampled from /proc (the summed RSS of the process and every descendant alive at
each sample; shared pages count once per process, so this overstates, never hides)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY_S = 0.02


@dataclass(frozen=True)
class Run:
    command: list[str]
    returncode: int
    wall_s: float
    peak_rss: int  # bytes, 0 when not sampled
    stdout: str
    stderr: str
    #: seconds during which a process with this label was alive in the tree (sampled)
    busy: dict[str, float]

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:])

    def check(self) -> Run:
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {self.returncode}: {self.tail()}")
        return self


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def label(pid: int) -> str:
    """A short name for what a process runs: ``python -m mypy``, ``uv pip``, ``git``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    name = Path(argv[0]).name if argv and argv[0] else "?"
    if name.startswith("python"):
        if "-m" in argv[1:-1]:
            return f"python -m {argv[argv.index('-m') + 1]}"
        if "-c" in argv[1:]:
            return "python -c"
        scripts = [a for a in argv[1:] if not a.startswith("-")]
        return f"python {Path(scripts[0]).name}" if scripts else "python"
    if name == "uv" and len(argv) > 1:
        return f"uv {argv[1]}"
    return name


def tree_rss(root: int, labels: set[str] | None = None) -> int:
    """Summed resident memory (bytes) of ``root`` and all its descendants, now; the
    descendants' labels are added to ``labels``."""
    total, queue, seen = 0, [root], set()
    while queue:
        pid = queue.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        if labels is not None and pid != root:
            labels.add(label(pid))
        queue.extend(_children(pid))
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.busy: defaultdict[str, float] = defaultdict(float)
        self._stop_event = threading.Event()

    def run(self) -> None:
        last = time.perf_counter()
        while not self._stop_event.is_set():
            labels: set[str] = set()
            self.peak = max(self.peak, tree_rss(self.pid, labels))
            now = time.perf_counter()
            for name in labels:
                self.busy[name] += now - last
            last = now
            self._stop_event.wait(SAMPLE_EVERY_S)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    sample_memory: bool = False,
) -> Run:
    """Run ``command`` to completion, capturing its output; time it (and sample memory)."""
    argv = [str(part) for part in command]
    merged = {**os.environ, **(env or {})}
    began = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=merged, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = _Sampler(process.pid) if sample_memory else None
    if sampler is not None:
        sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - began
    peak = sampler.stop() if sampler is not None else 0
    busy = dict(sampler.busy) if sampler is not None else {}
    return Run(argv, process.returncode, wall, peak, stdout, stderr, busy)
