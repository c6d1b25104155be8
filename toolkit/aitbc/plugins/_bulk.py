"""Starting and stopping many plugins at once: priority and dependency order,
independent plugins concurrently.  Used by PluginManager.startup and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from ._bringup import BringUp
from ._graph import priority_groups
from ._host import Host
from ._records import PluginRecord
from .config import DEFAULT_PRIORITY
from .errors import PluginError
from .status import PluginStatus

_S = PluginStatus


def _priorities(host: Host, names: Iterable[str]) -> dict[str, int]:
    plugins = host.settings.plugins
    return {name: plugins[name].priority if name in plugins else DEFAULT_PRIORITY for name in names}


async def auto_load(host: Host) -> None:
    """Load and start every enabled plugin (and the dependencies they name): the same
    bring-up as start_plugin, run one priority group after another."""
    roots = [name for name, s in host.settings.plugins.items() if s.enabled]
    run = BringUp(host, start=True)
    await run.load_closure(roots)
    run.break_cycles()
    for group in priority_groups(run.graph, _priorities(host, run.graph)):
        await run.run(group)
    for name in roots:
        # No caller to tell: keep why a plugin did not come up, unless its record has it.
        problem = run.outcome.get(name)
        record = host.records.get(name)
        if problem is not None and (record is None or record.status is not _S.ERROR):
            host.errors[name] = reason = host.redactor.text(str(problem))
            host.log.warning("plugin %s: %s", name, reason)


async def shutdown_all(host: Host) -> None:
    """Stop and unload every loaded plugin: dependents first, reverse priority order,
    independent plugins concurrently (so it takes about the longest stop, not the sum)."""
    loaded = {name: r for name, r in host.records.items() if r.plugin is not None}
    graph = {name: {d for d in r.dependencies if d in loaded} for name, r in loaded.items()}
    dependents: dict[str, list[str]] = {name: [] for name in loaded}
    for name, deps in graph.items():
        for dep in deps:
            dependents[dep].append(name)
    tasks: dict[str, asyncio.Task[None]] = {}
    for group in reversed(priority_groups(graph, _priorities(host, graph))):
        for name in reversed(group):
            waits = [tasks[d] for d in dependents[name] if d in tasks]
            tasks[name] = asyncio.create_task(_tear_down_after(host, loaded[name], waits))
        await asyncio.gather(*(tasks[name] for name in group))


async def _tear_down_after(
    host: Host, record: PluginRecord, waits: list[asyncio.Task[None]]
) -> None:
    if waits:
        await asyncio.gather(*waits)
    with contextlib.suppress(PluginError):  # kept in the record; the others go on
        await host.teardown(record)
