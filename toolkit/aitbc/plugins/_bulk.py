"""Starting and stopping many plugins at once: priority and dependency order,
independent plugins concurrently.  Used by PluginManager.startup and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._graph import find_cycle, priority_groups
from ._records import PluginRecord, StepFailed
from .config import DEFAULT_PRIORITY
from .errors import DependencyError, PluginError, PluginNotFoundError
from .status import PluginStatus

if TYPE_CHECKING:
    from .manager import PluginManager

_S = PluginStatus


def _priorities(manager: PluginManager, names: Iterable[str]) -> dict[str, int]:
    plugins = manager.settings.plugins
    return {name: plugins[name].priority if name in plugins else DEFAULT_PRIORITY for name in names}


async def auto_load(manager: PluginManager) -> None:
    """Load and start every enabled plugin (and the dependencies they name)."""
    attempted: set[str] = set()
    pending = [name for name, s in manager.settings.plugins.items() if s.enabled]
    # Phase 1: import and construct every plugin needed, concurrently.
    while pending:
        attempted.update(pending)
        await asyncio.gather(*(_try_instantiate(manager, name) for name in pending))
        pending = sorted(
            {
                dep
                for name in pending
                if (record := manager._records.get(name)) and record.plugin is not None
                for dep in record.dependencies
            }
            - attempted
        )
    ready = {
        name: record
        for name in attempted
        if (record := manager._records.get(name)) is not None and record.status is _S.LOADING
    }
    # Phase 2: a cycle fails every plugin on it, with the chain named.
    graph = {name: set(r.dependencies) for name, r in ready.items()}
    while (cycle := find_cycle(graph)) is not None:
        for name in cycle[:-1]:
            manager._fail(ready[name], f"dependency cycle: {' -> '.join(cycle)}")
            graph.pop(name, None)
    # Phase 3: initialize and start, by priority, dependencies first, concurrently.
    tasks: dict[str, asyncio.Task[bool]] = {}
    for group in priority_groups(graph, _priorities(manager, graph)):
        for name in group:
            waits = [tasks[d] for d in graph[name] if d in tasks]
            tasks[name] = asyncio.create_task(_bring_up(manager, ready[name], waits))
        await asyncio.gather(*(tasks[name] for name in group))


async def _try_instantiate(manager: PluginManager, name: str) -> None:
    try:
        record = manager._record(name)
    except PluginNotFoundError as exc:
        manager._errors[name] = str(exc)
        manager.log.warning("plugin %s: %s", name, exc)
        return
    if record.status is _S.UNLOADED:
        with contextlib.suppress(PluginError):  # the record keeps the reason
            await manager._instantiate(record)


async def _bring_up(
    manager: PluginManager, record: PluginRecord, waits: list[asyncio.Task[bool]]
) -> bool:
    if waits:
        await asyncio.gather(*waits)
    try:
        for dep in record.dependencies:
            dep_record = manager._records.get(dep)
            if dep_record is None or dep_record.status is not _S.ACTIVE:
                why = dep_record.error if dep_record else manager._errors.get(dep)
                raise DependencyError(
                    f"dependency {record.name} -> {dep} is not active" + (f": {why}" if why else "")
                )
            problem = manager._requirement_problem(record, dep)
            if problem:
                raise DependencyError(f"{record.name}: {problem}")
        await manager._step(record, "initialize")
        await manager._step(record, "start")
    except StepFailed:
        return False
    except PluginError as exc:
        manager._fail(record, str(exc))
        return False
    return True


async def shutdown_all(manager: PluginManager) -> None:
    """Stop and unload every loaded plugin: dependents first, reverse priority order,
    independent plugins concurrently (so it takes about the longest stop, not the sum)."""
    loaded = {name: r for name, r in manager._records.items() if r.plugin is not None}
    graph = {name: {d for d in r.dependencies if d in loaded} for name, r in loaded.items()}
    dependents: dict[str, list[str]] = {name: [] for name in loaded}
    for name, deps in graph.items():
        for dep in deps:
            dependents[dep].append(name)
    tasks: dict[str, asyncio.Task[None]] = {}
    for group in reversed(priority_groups(graph, _priorities(manager, graph))):
        for name in reversed(group):
            waits = [tasks[d] for d in dependents[name] if d in tasks]
            tasks[name] = asyncio.create_task(_tear_down_after(manager, loaded[name], waits))
        await asyncio.gather(*(tasks[name] for name in group))


async def _tear_down_after(
    manager: PluginManager, record: PluginRecord, waits: list[asyncio.Task[None]]
) -> None:
    if waits:
        await asyncio.gather(*waits)
    with contextlib.suppress(PluginError):  # kept in the record; the others go on
        await manager._teardown(record)
