"""Host benchmarks, each against its naive alternative in the same run:

- an event round trip to an isolated plugin (its own worker, in the jail) against the
  same plugin in-process, 1,000 broadcasts one after another;
- start-up of 50 isolated plugins against the same 50 in-process;
- listing 1,000 entry-point plugins in a fresh process with the listing the previous
  process left on disk, against bare ``importlib.metadata.entry_points()`` in a fresh
  process (both timed inside the process: interpreter start-up is the same for both).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _plugins import PLUGIN_MODULE, install_trivial_plugins
from aitbc.plugins import PluginManager

EVENTS = 1000
ISOLATED = 50


def _plugins(root: Path, count: int, prefix: str) -> list[str]:
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "plugin.py").write_text(PLUGIN_MODULE.format(name=name))
    return names


def _config(root: Path, names: list[str], isolation: str) -> dict[str, Any]:
    return {"plugins": {n: {"enabled": True} for n in names}, "plugin_paths": [str(root)],
            "data_dir": str(root.parent / "data"), "isolation": isolation,
            "health_check_interval": 3600}  # fmt: skip


def _errors(manager: PluginManager) -> dict[str, Any]:
    return {n: r["last_error"] for n, r in manager.health_report().items() if r["last_error"]}


def _forget_plugin_modules() -> None:
    """In-process start-up imports the plugins, as a fresh host process would."""
    for name in [m for m in sys.modules if m.startswith("host_bench_")]:
        del sys.modules[name]


async def _round_trips(config: dict[str, Any]) -> float:
    async with PluginManager(config) as manager:
        assert manager.list_plugins(), _errors(manager)
        began = time.perf_counter()
        for i in range(EVENTS):
            await manager.broadcast_event("tick", {"i": i})
        return time.perf_counter() - began


async def _startup(config: dict[str, Any]) -> float:
    _forget_plugin_modules()
    manager = PluginManager(config)
    began = time.perf_counter()
    await manager.startup()
    took = time.perf_counter() - began
    assert len(manager.list_plugins()) == len(config["plugins"]), _errors(manager)
    await manager.shutdown()
    return took


LISTING = r"""
import sys, time
from importlib import metadata
from aitbc.plugins import discovery  # a host has the SDK loaded either way

began = time.perf_counter()
if sys.argv[1] == "ours":
    found = discovery.discover_entry_points()
else:
    found = list(metadata.entry_points(group="aitbc.plugins"))
took = time.perf_counter() - began
assert len(found) >= 1000, len(found)
print(took)
"""


def _listing_in_fresh_processes(site: Path, repeat: int) -> tuple[float, float]:
    cache = Path(tempfile.mkdtemp(prefix="aitbc-bench-ep-"))
    env = {**os.environ, "PYTHONPATH": str(site), "AITBC_PLUGINS_CACHE_DIR": str(cache)}

    def once(which: str) -> float:
        done = subprocess.run([sys.executable, "-c", LISTING, which], env=env, check=True,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        return float(done.stdout.strip())

    once("ours")  # the previous process: it leaves the listing on disk
    ours = statistics.median(once("ours") for _ in range(repeat))
    bare = statistics.median(once("bare") for _ in range(repeat))
    return ours, bare


def run(repeat: int = 5) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="aitbc-bench-host-"))
    one = _plugins(root / "one", 1, "host-bench-one")
    many = _plugins(root / "many", ISOLATED, "host-bench-many")
    trips = {mode: statistics.median(
        asyncio.run(_round_trips(_config(root / "one", one, mode))) for _ in range(repeat)
    ) for mode in ("process", "none")}  # fmt: skip
    starts: dict[str, list[float]] = {"process": [], "none": []}
    for _ in range(repeat):  # interleaved: the machine's load falls on both alike
        for mode in starts:
            starts[mode].append(asyncio.run(_startup(_config(root / "many", many, mode))))
    site = root / "site"
    install_trivial_plugins(site, 1000)
    ours_listing, bare_listing = _listing_in_fresh_processes(site, repeat * 2)
    print(
        textwrap.dedent(f"""\
        host: one event round trip, isolated {trips["process"] / EVENTS * 1e6:.0f} us,
              in-process {trips["none"] / EVENTS * 1e6:.0f} us (median of {repeat} runs
              of {EVENTS} broadcasts)""")
    )
    return [
        {"benchmark": "1,000 events to an isolated plugin", "ours_s": trips["process"],
         "naive_s": trips["none"], "naive": "the same plugin in-process", "goal": 20.0},
        {"benchmark": "start-up of 50 isolated plugins", "ours_s": statistics.median(
            starts["process"]), "naive_s": statistics.median(starts["none"]),
         "naive": "the same 50 in-process", "goal": None},
        {"benchmark": "list 1,000 entry points, fresh process", "ours_s": ours_listing,
         "naive_s": bare_listing, "naive": "importlib.metadata.entry_points(), fresh process",
         "goal": 0.2},
    ]  # fmt: skip
