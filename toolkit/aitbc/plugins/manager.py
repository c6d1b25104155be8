"""PluginManager: the spec's central plugin management system, for hosts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ._graph import find_cycle, priority_groups
from ._records import PluginRecord
from ._timeouts import run_with_timeout
from .base import BasePlugin
from .config import DEFAULT_PRIORITY, ManagerConfig, validate_document
from .context import PluginContext
from .discovery import (
    DiscoveredPlugin,
    discover,
    is_module_imported,
    load_plugin_class,
)
from .errors import (
    ConfigError,
    DependencyError,
    IllegalTransitionError,
    MetadataError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
)
from .events import EventBus, EventHandler, deliver
from .legacy import LegacyPluginAdapter, looks_like_legacy_plugin
from .metadata import parse_dependency
from .registry import PluginRegistry
from .secrets import RedactingFilter, Redactor
from .status import PluginStatus

_S = PluginStatus
_LOADED_STATES = frozenset({_S.LOADED, _S.ACTIVE, _S.INACTIVE})


class _StepFailed(PluginError):
    """A lifecycle step failed; the plugin's record already holds the reason."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aitbc" / "plugins"


class PluginEventBus(EventBus):
    """The bus in a managed plugin's context: ``publish`` reaches the host's subscribers
    and every other active plugin's ``handle_event``."""

    def __init__(self, manager: PluginManager, plugin_name: str) -> None:
        super().__init__(timeout=manager.settings.lifecycle_timeout)
        self._manager = manager
        self.plugin_name = plugin_name

    def subscribe(self, event_type: str, handler: Any, *, name: str | None = None) -> Any:
        return self._manager.event_bus.subscribe(event_type, handler, name=name)

    async def publish(self, event_type: str, data: dict[str, Any] | None = None) -> None:
        self.published.append((event_type, dict(data or {})))
        await self._manager._dispatch(event_type, dict(data or {}), source=self.plugin_name)


class PluginManager:
    """Central plugin management system"""

    def __init__(
        self,
        config: Mapping[str, Any] | ManagerConfig | None = None,
        *,
        api_client: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.settings = (
            config if isinstance(config, ManagerConfig) else ManagerConfig.from_mapping(config)
        )
        self.plugins: dict[str, BasePlugin] = {}
        self.plugin_registry = PluginRegistry()
        if self.settings.registry is not None:
            self.plugin_registry.load_file(self.settings.registry)
        self.api_client = api_client
        self.event_bus = EventBus(timeout=self.settings.lifecycle_timeout)
        self._environ = environ
        self._redactor = Redactor()
        self._log_filter = RedactingFilter(self._redactor)
        self.log = self._logger("aitbc.plugins.manager")
        self._records: dict[str, PluginRecord] = {}
        self._errors: dict[str, str] = {}
        self._discovered: dict[str, DiscoveredPlugin] | None = None
        self._ops_lock: asyncio.Lock | None = None
        self._health_task: asyncio.Task[None] | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> PluginManager:
        return cls(ManagerConfig.from_file(path, environ=kwargs.get("environ")), **kwargs)

    # -- discovery ----------------------------------------------------------------------
    def discover_plugins(self) -> list[dict[str, Any]]:
        """Every available plugin as plain data; no plugin code is imported."""
        found = discover(self.settings.plugin_paths)
        self._discovered = {}
        for plugin in found:
            self._discovered.setdefault(plugin.name, plugin)
        return [plugin.as_dict() for plugin in found]

    def _record(self, name: str) -> PluginRecord:
        record = self._records.get(name)
        if record is not None:
            return record
        if self._discovered is None or name not in self._discovered:
            self.discover_plugins()
        assert self._discovered is not None
        if name not in self._discovered:
            raise PluginNotFoundError(f"no plugin named {name!r} in plugin_paths or entry points")
        record = self._records[name] = PluginRecord(name, self._discovered[name])
        return record

    # -- the spec's methods -------------------------------------------------------------
    async def load_plugin(self, plugin_name: str) -> bool:
        """Load a plugin by name"""
        return await self._guarded(plugin_name, self._ensure_loaded, plugin_name, ())

    async def start_plugin(self, plugin_name: str) -> bool:
        """Start a plugin"""
        return await self._guarded(plugin_name, self._ensure_started, plugin_name, ())

    async def stop_plugin(self, plugin_name: str) -> bool:
        """Stop a plugin"""
        return await self._guarded(plugin_name, self._stop, plugin_name)

    async def unload_plugin(self, plugin_name: str) -> bool:
        """Unload a plugin"""
        return await self._guarded(plugin_name, self._unload, plugin_name)

    def get_plugin_status(self, plugin_name: str) -> PluginStatus:
        """Get plugin status; raises PluginNotFoundError for a plugin nobody knows."""
        record = self._records.get(plugin_name)
        if record is not None:
            return record.status
        if plugin_name in self.settings.plugins:
            return _S.UNLOADED
        self._record(plugin_name)
        return _S.UNLOADED

    def list_plugins(self) -> list[str]:
        """List all loaded plugins"""
        return list(self.plugins)

    async def broadcast_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Broadcast event to all plugins"""
        await self._dispatch(event_type, data, source=None)

    # -- host additions ----------------------------------------------------------------
    def get_plugin_error(self, plugin_name: str) -> str | None:
        """Why the last lifecycle call on this plugin failed (None after a success)."""
        return self._errors.get(plugin_name)

    def health_report(self) -> dict[str, dict[str, Any]]:
        """Status, last health check, step timings and error counts, per known plugin."""
        report = {name: record.describe() for name, record in self._records.items()}
        return self._redactor.data(report)  # type: ignore[no-any-return]

    async def check_health(self) -> dict[str, dict[str, Any]]:
        """Run every active plugin's ``health_check`` now (concurrently, bounded in time)."""
        active = [r for r in self._records.values() if r.status is _S.ACTIVE]

        async def one(record: PluginRecord) -> None:
            assert record.plugin is not None
            try:
                result = await run_with_timeout(
                    record.plugin.health_check(), self.settings.lifecycle_timeout
                )
                record.health = self._redactor.data(dict(result))
            except Exception as exc:
                record.error_count += 1
                reason = _describe_exception("health_check", exc, self.settings.lifecycle_timeout)
                record.health = {"status": "error", "error": self._redactor.text(reason)}

        await asyncio.gather(*(one(r) for r in active))
        return self.health_report()

    async def startup(self) -> None:
        """Load and start the enabled plugins (``auto_load``), then run health checks."""
        if self.settings.auto_load:
            async with self._lock():
                await self._auto_load()
        if self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())

    async def shutdown(self) -> None:
        """Stop and unload every plugin, dependents first, in reverse start-up order."""
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None
        async with self._lock():
            await self._shutdown_all()

    async def __aenter__(self) -> PluginManager:
        await self.startup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- internals: guarding -----------------------------------------------------------
    def _lock(self) -> asyncio.Lock:
        if self._ops_lock is None:
            self._ops_lock = asyncio.Lock()
        return self._ops_lock

    async def _guarded(self, name: str, operation: Any, *args: Any) -> bool:
        async with self._lock():
            try:
                await operation(*args)
            except Exception as exc:
                reason = self._redactor.text(str(exc) or type(exc).__name__)
                self._errors[name] = reason
                self.log.warning("plugin %s: %s", name, reason)
                return False
        self._errors.pop(name, None)
        return True

    def _logger(self, name: str) -> logging.Logger:
        logger = logging.getLogger(name)
        if self._log_filter not in logger.filters:
            logger.addFilter(self._log_filter)
        return logger

    def _fail(self, record: PluginRecord, reason: str) -> None:
        reason = self._redactor.text(reason)
        record.error = reason
        plugin = record.plugin
        if plugin is None:
            record.error_count += 1
            record.absent_status = _S.ERROR
        elif plugin.status is _S.ERROR:
            plugin.last_error = reason
        else:
            plugin._record_failure(reason)
        self.log.warning("plugin %s: %s", record.name, reason)

    # -- internals: one plugin -----------------------------------------------------------
    async def _import(self, found: DiscoveredPlugin) -> type[Any]:
        if is_module_imported(found):
            return load_plugin_class(found)
        # Plugin imports run off the loop: a slow import never delays other plugins' events.
        loop = asyncio.get_running_loop()
        return await run_with_timeout(
            loop.run_in_executor(None, load_plugin_class, found), self.settings.lifecycle_timeout
        )

    async def _instantiate(self, record: PluginRecord) -> None:
        """Import, construct and validate; the plugin ends LOADING (or the record ERROR)."""
        name = record.name
        settings = self.settings.plugins.get(name)
        started = time.perf_counter()
        try:
            if settings is not None and not settings.enabled:
                raise PluginLoadError(f"{name} is disabled in the configuration (enabled: false)")
            try:
                cls = await self._import(record.found)
            except asyncio.TimeoutError:
                raise PluginLoadError(
                    f"importing {record.found.location} took longer than "
                    f"{self.settings.lifecycle_timeout:g}s"
                ) from None
            config = self.settings.plugin_config(name, self._redactor, self._environ)
            record.plugin = self._construct(cls, name, config, record)
            plugin = record.plugin
            if plugin.metadata.name != name:
                raise PluginLoadError(
                    f"{record.found.location} calls itself {plugin.metadata.name!r}, not {name!r}"
                )
            incompatible = plugin.metadata.incompatibility()
            if incompatible:
                raise PluginLoadError(f"{name} {plugin.metadata.version} {incompatible}")
            schema = plugin.get_config_schema()
            if schema:
                validate_document(config, schema, f"plugins.{name}.config", self._redactor)
            deps = [parse_dependency(d) for d in plugin.metadata.dependencies]
            if settings is not None:
                deps += [parse_dependency(d) for d in settings.dependencies]
            record.set_dependencies(deps)
            plugin.status = _S.LOADING
        except (PluginError, ConfigError) as exc:
            self._discard(record)
            self._fail(record, str(exc))
            raise
        except Exception as exc:
            self._discard(record)
            reason = f"loading {name} failed: {type(exc).__name__}: {exc}"
            self._fail(record, reason)
            raise PluginLoadError(reason) from exc
        finally:
            record.timings["load"] = time.perf_counter() - started
        self.plugins[name] = record.plugin

    def _construct(
        self, cls: type[Any], name: str, config: dict[str, Any], record: PluginRecord
    ) -> BasePlugin:
        data_root = self.settings.data_dir or default_data_dir()
        data_dir = data_root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        record.temp_dir = tempfile.mkdtemp(prefix=f"aitbc-{name}-")
        context = PluginContext(
            config=config,
            data_dir=str(data_dir),
            temp_dir=record.temp_dir,
            logger=self._logger(f"aitbc.plugins.plugin.{name}"),
            event_bus=PluginEventBus(self, name),
            api_client=self.api_client,
        )
        if isinstance(cls, type) and issubclass(cls, BasePlugin):
            try:
                return cls(context)
            except MetadataError:
                raise
            except Exception as exc:
                raise PluginLoadError(
                    f"constructing {cls.__name__} failed: {type(exc).__name__}: {exc}"
                ) from exc
        if looks_like_legacy_plugin(cls):
            return LegacyPluginAdapter(cls(), context)
        raise PluginLoadError(f"{record.found.location} is not a BasePlugin subclass")

    def _discard(self, record: PluginRecord) -> None:
        if record.plugin is not None:
            record.error_count += record.plugin.error_count
        self.plugins.pop(record.name, None)
        record.release()

    async def _step(self, record: PluginRecord, step: str) -> None:
        plugin = record.plugin
        if plugin is None:
            raise PluginLoadError(f"{record.name} is not loaded")
        timeout = self.settings.lifecycle_timeout
        started = time.perf_counter()
        reason: str | None = None
        try:
            result = await run_with_timeout(getattr(plugin, step)(), timeout)
        except IllegalTransitionError as exc:
            raise PluginLoadError(str(exc)) from None
        except Exception as exc:
            reason = _describe_exception(step, exc, timeout)
        else:
            elapsed = time.perf_counter() - started
            if result is not True:
                reason = f"{step} returned {result!r}, expected True"
            elif elapsed > timeout:
                reason = (
                    f"{step} blocked the event loop for {elapsed:.1f}s "
                    f"(lifecycle_timeout is {timeout:g}s)"
                )
        finally:
            record.timings[step] = time.perf_counter() - started
        if reason is not None:
            self._fail(record, f"{record.name}: {reason}")
            raise _StepFailed(f"{record.name}: {reason}")
        record.error = None

    def _requirement_problem(self, record: PluginRecord, dep: str) -> str | None:
        dep_record = self._records.get(dep)
        if dep_record is None or dep_record.plugin is None:
            return f"dependency {dep} is not loaded"
        version = dep_record.plugin.metadata.version
        wanted = record.dependencies[dep]
        if not wanted.contains(version, prereleases=True):
            return f"requires {dep}{wanted}, found {version}"
        return None

    async def _ensure_loaded(self, name: str, chain: tuple[str, ...]) -> PluginRecord:
        if name in chain:
            raise DependencyError(f"dependency cycle: {' -> '.join((*chain, name))}")
        try:
            record = self._record(name)
        except PluginNotFoundError:
            if not chain:
                raise
            raise DependencyError(
                f"missing dependency: {' -> '.join((*chain, name))} ({name} is not available)"
            ) from None
        status = record.status
        if status in _LOADED_STATES:
            return record
        if status is not _S.UNLOADED and record.plugin is not None:
            raise PluginLoadError(f"{name} is {status.value} ({record.error}); unload it first")
        await self._instantiate(record)
        for dep in record.dependencies:
            try:
                await self._ensure_loaded(dep, (*chain, name))
            except PluginError as exc:
                self._fail(record, str(exc))
                raise DependencyError(str(exc)) from None
            problem = self._requirement_problem(record, dep)
            if problem:
                self._fail(record, f"{name}: {problem}")
                raise DependencyError(f"{name}: {problem}")
        await self._step(record, "initialize")
        return record

    async def _ensure_started(self, name: str, chain: tuple[str, ...]) -> None:
        record = await self._ensure_loaded(name, chain)
        if record.status is _S.ACTIVE:
            return
        for dep in record.dependencies:
            await self._ensure_started(dep, (*chain, name))
        await self._step(record, "start")

    def _dependents(self, name: str) -> list[PluginRecord]:
        return [r for r in self._records.values() if name in r.dependencies and r.plugin]

    async def _stop(self, name: str) -> None:
        record = self._records.get(name)
        if record is None or record.plugin is None:
            raise PluginLoadError(f"{name} is not loaded")
        if record.status is not _S.ACTIVE:
            if record.status in _LOADED_STATES:
                return
            raise PluginLoadError(f"{name} is {record.status.value}; nothing to stop")
        for dependent in self._dependents(name):
            if dependent.status is _S.ACTIVE:
                await self._stop(dependent.name)
        await self._step(record, "stop")

    async def _unload(self, name: str) -> None:
        record = self._records.get(name)
        if record is None or record.plugin is None:
            if record is not None:  # an instance that never got built: just forget the error
                record.absent_status, record.error = _S.UNLOADED, None
            return
        for dependent in self._dependents(name):
            await self._unload(dependent.name)
        await self._teardown(record)

    async def _teardown(self, record: PluginRecord) -> None:
        """Stop if active, then clean up; release the instance only when cleanup worked."""
        if record.status is _S.ACTIVE:
            # A failed stop leaves ERROR, and ERROR -> UNLOADING is legal: clean up anyway.
            with contextlib.suppress(_StepFailed):
                await self._step(record, "stop")
        if record.status is _S.LOADING:
            self._discard(record)
            return
        await self._step(record, "cleanup")
        self._discard(record)

    # -- internals: many plugins ---------------------------------------------------------
    async def _auto_load(self) -> None:
        wanted = [name for name, s in self.settings.plugins.items() if s.enabled]
        attempted: set[str] = set()
        pending = list(wanted)
        # Phase 1: import and construct every plugin needed, concurrently.
        while pending:
            attempted.update(pending)
            await asyncio.gather(*(self._try_instantiate(name) for name in pending))
            pending = sorted(
                {
                    dep
                    for name in pending
                    if (record := self._records.get(name)) and record.plugin is not None
                    for dep in record.dependencies
                }
                - attempted
            )
        ready = {
            name: record
            for name in attempted
            if (record := self._records.get(name)) is not None and record.status is _S.LOADING
        }
        # Phase 2: cycles fail every plugin on them, with the chain named.
        graph = {name: set(r.dependencies) for name, r in ready.items()}
        while (cycle := find_cycle(graph)) is not None:
            for name in cycle[:-1]:
                self._fail(ready[name], f"dependency cycle: {' -> '.join(cycle)}")
                graph.pop(name, None)
        # Phase 3: initialize and start, by priority, dependencies first, concurrently.
        priority = {
            name: self.settings.plugins[name].priority
            if name in self.settings.plugins
            else DEFAULT_PRIORITY
            for name in graph
        }
        done: dict[str, asyncio.Task[bool]] = {}
        for group in priority_groups(graph, priority):
            for name in group:
                waits = [done[d] for d in graph[name] if d in done]
                done[name] = asyncio.create_task(self._bring_up(ready[name], waits))
            await asyncio.gather(*(done[name] for name in group))

    async def _try_instantiate(self, name: str) -> None:
        try:
            record = self._record(name)
        except PluginNotFoundError as exc:
            self._errors[name] = str(exc)
            self.log.warning("plugin %s: %s", name, exc)
            return
        if record.status is not _S.UNLOADED:
            return
        with contextlib.suppress(PluginError):  # the record keeps the reason
            await self._instantiate(record)

    async def _bring_up(self, record: PluginRecord, waits: list[asyncio.Task[bool]]) -> bool:
        if waits:
            await asyncio.gather(*waits)
        try:
            for dep in record.dependencies:
                dep_record = self._records.get(dep)
                if dep_record is None or dep_record.status is not _S.ACTIVE:
                    why = dep_record.error if dep_record else self._errors.get(dep)
                    raise DependencyError(
                        f"dependency {record.name} -> {dep} is not active"
                        + (f": {why}" if why else "")
                    )
                problem = self._requirement_problem(record, dep)
                if problem:
                    raise DependencyError(f"{record.name}: {problem}")
            await self._step(record, "initialize")
            await self._step(record, "start")
        except _StepFailed:
            return False
        except PluginError as exc:
            self._fail(record, str(exc))
            return False
        return True

    async def _shutdown_all(self) -> None:
        loaded = {name: r for name, r in self._records.items() if r.plugin is not None}
        graph = {name: {d for d in r.dependencies if d in loaded} for name, r in loaded.items()}
        dependents: dict[str, list[str]] = {name: [] for name in loaded}
        for name, deps in graph.items():
            for dep in deps:
                dependents[dep].append(name)
        priority = {
            name: self.settings.plugins[name].priority
            if name in self.settings.plugins
            else DEFAULT_PRIORITY
            for name in graph
        }
        done: dict[str, asyncio.Task[None]] = {}
        for group in reversed(priority_groups(graph, priority)):
            for name in reversed(group):
                waits = [done[d] for d in dependents[name] if d in done]
                done[name] = asyncio.create_task(self._tear_down_after(loaded[name], waits))
            await asyncio.gather(*(done[name] for name in group))

    async def _tear_down_after(self, record: PluginRecord, waits: list[asyncio.Task[None]]) -> None:
        if waits:
            await asyncio.gather(*waits)
        with contextlib.suppress(PluginError):  # kept in the record; the others go on
            await self._teardown(record)

    async def _dispatch(self, event_type: str, data: dict[str, Any], source: str | None) -> None:
        receivers: list[tuple[str, EventHandler]] = [
            (name, record.plugin.handle_event)
            for name, record in self._records.items()
            if record.plugin is not None and record.status is _S.ACTIVE and name != source
        ]
        receivers += self.event_bus.subscribers_for(event_type)
        failures = await deliver(receivers, event_type, data, self.settings.lifecycle_timeout)
        for failure in failures:
            record = self._records.get(failure.receiver)
            if record is not None:
                record.error_count += 1
            self.log.warning(
                "event %s: %s failed: %s", event_type, failure.receiver, failure.reason
            )

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_check_interval)
            await self.check_health()


def _describe_exception(step: str, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"{step} timed out after {timeout:g}s"
    return f"{step} raised {type(exc).__name__}: {exc}"
