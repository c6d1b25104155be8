"""SDK benchmarks with 1,000 trivial installed plugins, each against the naive
alternative measured in the same process (ratios, never absolute goals)."""

from __future__ import annotations

import asyncio
import importlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from _plugins import install_trivial_plugins
from aitbc.plugins import PluginManager, discovery
from aitbc.plugins.testing import make_context

COUNT = 1000
BROADCASTS = 16  # per round and side


def median_time(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def bench_entry_point_listing(repeat: int) -> list[dict[str, Any]]:
    def bare() -> object:
        return list(metadata.entry_points(group="aitbc.plugins"))

    base = median_time(bare, repeat)
    cold = median_time(lambda: discovery.discover_entry_points(use_cache=False), repeat)
    discovery.discover_entry_points()
    warm = median_time(discovery.discover_entry_points, repeat)
    return [
        {"benchmark": "list 1,000 entry-point plugins, cold", "ours_s": cold, "naive_s": base,
         "naive": "importlib.metadata.entry_points()", "goal": 1.5},
        {"benchmark": "list 1,000 entry-point plugins, warm cache", "ours_s": warm,
         "naive_s": base, "naive": "importlib.metadata.entry_points()", "goal": 0.2},
    ]  # fmt: skip


async def _timed(coro_factory: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await coro_factory()
    return time.perf_counter() - began


def bench_startup_and_broadcast(names: list[str], root: Path, repeat: int) -> list[dict[str, Any]]:
    config = {
        "plugins": {name: {"enabled": True} for name in names},
        "data_dir": str(root / "data"),
        "health_check_interval": 3600,
    }
    classes = [
        importlib.import_module(f"bench_plugin_{name.rsplit('-', 1)[1]}").Plugin for name in names
    ]

    async def bare_startup(round_dir: Path) -> list[Any]:
        # Fresh directories each round: the manager creates each plugin's temp dir anew too.
        plugins = [
            cls(make_context(round_dir, name)) for cls, name in zip(classes, names, strict=True)
        ]
        await asyncio.gather(*(p.initialize() for p in plugins))
        await asyncio.gather(*(p.start() for p in plugins))
        return plugins

    async def one_round(index: int) -> tuple[float, float, float, float]:
        # Odd rounds start ours first: neither side always gets the fresher heap.
        manager = PluginManager(config)
        if index % 2:
            ours_start = await _timed(manager.startup)
        began = time.perf_counter()
        plugins = await bare_startup(root / f"bare-{index}")
        bare_start = time.perf_counter() - began
        if not index % 2:
            ours_start = await _timed(manager.startup)
        assert len(manager.list_plugins()) == len(names), manager.health_report()
        # One broadcast takes tens of milliseconds: a single one is at the mercy of a GC
        # pause or a neighbour's burst, so the two sides alternate, several times.
        bare_events, ours_events = [], []
        for _ in range(BROADCASTS):
            bare_events.append(await _timed(
                lambda: asyncio.gather(*(p.handle_event("tick", {}) for p in plugins))
            ))  # fmt: skip
            ours_events.append(await _timed(lambda: manager.broadcast_event("tick", {})))
        await asyncio.gather(*(p.stop() for p in plugins))
        await manager.shutdown()
        return (
            bare_start,
            ours_start,
            statistics.median(bare_events),
            statistics.median(ours_events),
        )

    rounds = [asyncio.run(one_round(i)) for i in range(repeat)]
    bare_start, ours_start, bare_event, ours_event = (
        statistics.median(r[i] for r in rounds) for i in range(4)
    )
    return [
        {"benchmark": "start-up of 1,000 plugins", "ours_s": ours_start, "naive_s": bare_start,
         "naive": "construct + asyncio.gather(initialize) + gather(start)", "goal": 1.5},
        {"benchmark": "broadcast_event to 1,000 plugins", "ours_s": ours_event,
         "naive_s": bare_event, "naive": "asyncio.gather(handle_event)", "goal": 1.5},
    ]  # fmt: skip


def run(repeat: int = 5) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="aitbc-bench-"))
    names = install_trivial_plugins(root / "site", COUNT)
    return bench_entry_point_listing(repeat * 3) + bench_startup_and_broadcast(names, root, repeat)
