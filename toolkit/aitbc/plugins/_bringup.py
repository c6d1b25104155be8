"""The one path that brings plugins up: start_plugin, load_plugin and startup all
run it, for one name or for the enabled plugins.

1. Load closure: instantiate the requested plugins, then wave by wave what they
   depend on (known only once instantiated: their metadata and config name it).
2. One dependency graph: every plugin on a cycle fails, the cycle named.
3. A memoized bring-up per plugin (initialize, then start unless only loading):
   dependencies first and concurrently, each plugin brought up once however many
   dependents wait for it -- one task per plugin name, as Home Assistant's
   ``setup_tasks[domain]``.  Operations hold the manager's lock, so the memo lives
   for one run: the next run starts from the plugins' real states.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from ._graph import find_cycle
from ._host import Host
from ._loading import instantiate, instantiate_now
from ._records import PluginRecord, RecordedFailure
from .errors import DependencyError, PluginError, PluginLoadError, PluginNotFoundError
from .status import PluginStatus

_S = PluginStatus
LOADED_STATES = frozenset({_S.LOADED, _S.ACTIVE, _S.INACTIVE})


class DependencyUnavailable(DependencyError):
    """``chain[0]`` cannot come up: its chain of dependencies ends at a plugin that is
    missing (``why`` None) or that did not come up (``why`` says why)."""

    def __init__(self, chain: tuple[str, ...], why: str | None, level: str) -> None:
        self.chain, self.why, self.level = chain, why, level
        path = " -> ".join(chain)
        if why is None:
            super().__init__(f"missing dependency: {path} ({chain[-1]} is not available)")
        else:
            super().__init__(f"dependency {path} is not {level}" + (f": {why}" if why else ""))

    def via(self, name: str) -> DependencyUnavailable:
        """The same problem, seen from a plugin that depends on ``chain[0]``."""
        return DependencyUnavailable((name, *self.chain), self.why, self.level)


class BringUp:
    """One run of the three phases over some plugins; ``outcome`` says how each ended."""

    def __init__(self, host: Host, *, start: bool) -> None:
        self.host = host
        self.start = start
        self.level = "active" if start else "loaded"
        # Settled plugins: None when up, else why not.
        self.outcome: dict[str, PluginError | None] = {}
        # Plugins (instantiated, not settled) to bring up, to their dependencies.
        self.graph: dict[str, set[str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- phase 1 -------------------------------------------------------------------------
    async def load_closure(self, names: Iterable[str]) -> None:
        """Instantiate ``names`` and everything they depend on, concurrently."""
        wave = list(dict.fromkeys(names))
        seen = set(wave)
        while wave:
            fresh = [r for r in map(self._admit, wave) if r is not None and r.plugin is None]
            slow = [r for r in fresh if not self._instantiate_now(r)]
            if slow:  # only imports need awaiting: one task each, and only for them
                await asyncio.gather(*(self._instantiate(r) for r in slow))
            found: set[str] = set()
            for name in wave:
                if name in self.outcome:
                    continue
                record = self.host.records[name]
                if record.plugin is None:  # instantiating failed
                    self.outcome[name] = RecordedFailure(record.error or name)
                    continue
                self.graph[name] = set(record.dependencies)
                found.update(record.dependencies)
            wave = sorted(found - seen)
            seen.update(wave)

    def _admit(self, name: str) -> PluginRecord | None:
        """The record to bring up, or None with the outcome settled (missing, refused)."""
        try:
            record = self.host.record(name)
        except PluginNotFoundError as exc:
            self.outcome[name] = exc
            return None
        status = record.status
        if record.plugin is not None and status not in LOADED_STATES:
            self.outcome[name] = PluginLoadError(
                f"{name} is {status.value} ({record.error}); unload it first"
            )
            return None
        return record

    def _instantiate_now(self, record: PluginRecord) -> bool:
        """False when the plugin's code must be imported first (off the loop)."""
        try:
            return instantiate_now(self.host, record)
        except PluginError:  # the record keeps the reason
            return True

    async def _instantiate(self, record: PluginRecord) -> None:
        with contextlib.suppress(PluginError):  # the record keeps the reason
            await instantiate(self.host, record)

    # -- phase 2 -------------------------------------------------------------------------
    def break_cycles(self, lead: str | None = None) -> None:
        """Fail every plugin on a dependency cycle, naming the cycle (from ``lead``, the
        requested plugin, when it is on it)."""
        while (cycle := find_cycle(self.graph)) is not None:
            if lead in cycle:
                at = cycle.index(lead)
                cycle = [*cycle[at:-1], *cycle[:at], lead]
            reason = f"dependency cycle: {' -> '.join(cycle)}"
            for name in cycle[:-1]:
                record = self.host.records[name]
                self.host.fail(record, reason)
                self.outcome[name] = RecordedFailure(record.error or reason)
                del self.graph[name]

    # -- phase 3 -------------------------------------------------------------------------
    async def run(self, names: Iterable[str]) -> None:
        """Bring ``names`` up, dependencies first, independent plugins concurrently."""
        todo = [name for name in names if not self._settled(name)]
        if len(todo) == 1 and todo[0] not in self._tasks:
            await self._bring_up(todo[0])  # one plugin (start_plugin's): no task needed
        elif todo:
            await asyncio.gather(*(self._task(name) for name in todo))

    def _settled(self, name: str) -> bool:
        if name in self.outcome:
            return True
        status = self.host.records[name].status
        if status is _S.ACTIVE or (not self.start and status in LOADED_STATES):
            self.outcome[name] = None  # nothing to do: no task
            return True
        return False

    def _task(self, name: str) -> asyncio.Task[None]:
        """The one task bringing ``name`` up; every dependent awaits the same one."""
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = asyncio.create_task(self._bring_up(name))
        return task

    async def _bring_up(self, name: str) -> None:
        self.outcome[name] = await self._up(self.host.records[name])

    async def _up(self, record: PluginRecord) -> PluginError | None:
        deps = record.dependencies
        waits = [self._task(dep) for dep in deps if not self._settled(dep)]
        if waits:
            await asyncio.gather(*waits)
        problem = None
        for dep in deps:  # the first problem, in the order the plugin names them
            problem = self._dependency_problem(record, dep)
            if problem is not None:
                break
        fresh = record.status is _S.LOADING
        if problem is not None:
            if fresh:  # instantiated in this run: it cannot stay half-loaded
                self.host.fail(record, str(problem))
            return problem  # an already loaded plugin keeps its state
        try:
            if fresh:
                await self.host.step(record, "initialize")
            if self.start:
                await self.host.step(record, "start")
        except PluginError as exc:  # RecordedFailure, or refused with nothing changed
            return exc
        return None

    def _dependency_problem(self, record: PluginRecord, dep: str) -> PluginError | None:
        why = self.outcome[dep]
        if isinstance(why, DependencyUnavailable):
            return why.via(record.name)
        if isinstance(why, PluginNotFoundError):
            return DependencyUnavailable((record.name, dep), None, self.level)
        if why is not None:
            return DependencyUnavailable((record.name, dep), str(why), self.level)
        text = self.host.requirement_problem(record, dep)
        return DependencyError(f"{record.name}: {text}") if text else None


async def bring_up(host: Host, name: str, *, start: bool) -> None:
    """Load (and start, with ``start``) one plugin and its dependencies; raise why not."""
    run = BringUp(host, start=start)
    await run.load_closure([name])
    run.break_cycles(lead=name)
    await run.run([name])
    problem = run.outcome[name]
    if problem is not None:
        raise problem
