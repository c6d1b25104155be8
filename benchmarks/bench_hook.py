"""The pre-commit hook (`aitbc-plugin check FILE`, as .pre-commit-hooks.yaml runs it)
after a one-line edit of plugin.py, against `python -c pass` (the floor of any Python
tool) and the naive mypy + bandit run an author would type, in the same run, rounds
interleaved.  Both sides run warm: the hook with the mypy cache its first run left,
mypy with its own `.mypy_cache` from a first run, as an author's repeated runs have."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _proc
from bench_cli import new_command

BIN = Path(sys.executable).parent
FINDS = (0, 1)  # mypy --strict and bandit -r find something in a generated plugin's tests


def _edit(module: Path) -> None:
    with module.open("a", encoding="utf-8") as stream:
        stream.write(f"EDITED_AT = {time.time_ns()}\n")


def bench_hook(repeat: int) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="aitbc-bench-hook-"))
    # "plugin": a valid package name for the flat layout, as `mypy .` needs (a copy
    # named like the project, bench-plugin, is not one).
    ours_plugin, naive_plugin = root / "ours" / "bench-plugin", root / "naive" / "plugin"
    _proc.run(new_command(ours_plugin, git=False)).check()
    shutil.copytree(ours_plugin, naive_plugin)
    env = {"XDG_CACHE_HOME": str(root / "cache")}
    hook: list[str | Path] = [BIN / "aitbc-plugin", "check", "plugin.py"]
    mypy: list[str | Path] = [sys.executable, "-m", "mypy", "--strict", "."]
    bandit: list[str | Path] = [sys.executable, "-m", "bandit", "-q", "-r", "."]

    def ours() -> float:
        _edit(ours_plugin / "plugin.py")
        return _proc.run(hook, cwd=ours_plugin, env=env).check().wall_s

    def naive() -> float:
        _edit(naive_plugin / "plugin.py")
        total = 0.0
        for command in (mypy, bandit):
            run = _proc.run(command, cwd=naive_plugin, env=env)
            if run.returncode not in FINDS:
                raise RuntimeError(f"{command[2]} exited {run.returncode}: {run.tail()}")
            total += run.wall_s
        return total

    def bare() -> float:
        return _proc.run([sys.executable, "-c", "pass"]).check().wall_s

    ours(), naive()  # the first runs fill the caches both sides keep
    samples: dict[str, list[float]] = {"ours": [], "naive": [], "bare": []}
    for i in range(repeat):
        sides = [("ours", ours), ("naive", naive), ("bare", bare)]
        for name, side in sides if i % 2 == 0 else sides[::-1]:
            samples[name].append(side())
    shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return [
        {"benchmark": "pre-commit hook after a one-line edit", "unit": "ms",
         "value": med["ours"] * 1000, "goal": 2000.0,
         "naive": f"{med['ours'] / med['bare']:.0f}x `python -c pass` "
                  f"({med['bare'] * 1000:.0f} ms)"},
        {"benchmark": "pre-commit hook vs mypy --strict + bandit -r", "ours_s": med["ours"],
         "naive_s": med["naive"], "naive": "mypy --strict . then bandit -r ., warm cache",
         "goal": None},
    ]  # fmt: skip
