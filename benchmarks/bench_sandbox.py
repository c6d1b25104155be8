"""The kernel jail's own cost: the same conformance run (the lifecycle check's worker,
steps that import the SDK and run an event loop) jailed in bubblewrap against the same
run unjailed, rounds interleaved, in one process."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aitbc.plugins.sandbox import Limits, run_conformance
from aitbc.plugins.sandbox.jail import isolation

REPO = Path(__file__).resolve().parents[1]
STEPS = """
import asyncio
from aitbc.plugins import BasePlugin, PluginStatus

async def work(session):
    await asyncio.sleep(0)
    assert PluginStatus.ACTIVE.value == "active"

STEPS = [("import", work), ("run", work)]
"""


def bench_jail(repeat: int) -> list[dict[str, Any]]:
    found = isolation()
    if found.level != "full":
        raise RuntimeError(f"no jail to measure: {found.describe()}")
    limits = Limits(step_timeout_s=10, total_timeout_s=30, memory_mb=1024, cpu_s=10)
    samples: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="aitbc-bench-jail-") as folder:
        module = Path(folder) / "steps.py"
        module.write_text(STEPS)
        for round_ in range(repeat * 2 + 1):
            for isolate in (round_ % 2 == 0, round_ % 2 == 1):  # alternate who goes first
                workdir = Path(folder) / f"w{round_}-{isolate}"
                workdir.mkdir()
                began = time.perf_counter()
                outcome = run_conformance(sys.executable, module, limits=limits, workdir=workdir,
                                          isolate=isolate, readable=[REPO / "toolkit"])  # fmt: skip
                samples[isolate].append(time.perf_counter() - began)
                if not outcome.passed:
                    raise RuntimeError(f"the run failed (isolate={isolate}): {outcome}")
    jailed, bare = (statistics.median(samples[k][1:]) for k in (True, False))  # first: warm-up
    return [{
        "benchmark": "lifecycle worker in the jail",
        "ours_s": jailed,
        "naive_s": bare,
        "goal": None,
        "naive": f"the same worker unjailed ({found.mechanism})",
    }]  # fmt: skip
