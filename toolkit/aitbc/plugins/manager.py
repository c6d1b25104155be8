"""PluginManager: the spec's central plugin management system, for hosts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._bulk import auto_load, shutdown_all
from ._loading import instantiate
from ._records import PluginRecord, StepFailed
from ._timeouts import run_with_timeout
from .base import BasePlugin
from .config import ManagerConfig
from .discovery import (
    DiscoveredPlugin,
    discover,
)
from .errors import (
    DependencyError,
    IllegalTransitionError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
)
from .events import EventBus, EventHandler, deliver
from .registry import PluginRegistry
from .secrets import RedactingFilter, Redactor
from .status import PluginStatus

_S = PluginStatus
_LOADED_STATES = frozenset({_S.LOADED, _S.ACTIVE, _S.INACTIVE})


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
                await auto_load(self)
        if self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())

    async def shutdown(self) -> None:
        """Stop and unload every plugin, dependents first, in reverse start-up order."""
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None
        async with self._lock():
            await shutdown_all(self)

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
        self._errors[record.name] = reason
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
    async def _instantiate(self, record: PluginRecord) -> None:
        """Import, construct and validate; the plugin ends LOADING (or the record ERROR)."""
        await instantiate(self, record)

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
            raise StepFailed(f"{record.name}: {reason}")
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
            with contextlib.suppress(StepFailed):
                await self._step(record, "stop")
        if record.status is _S.LOADING:
            self._discard(record)
            return
        await self._step(record, "cleanup")
        self._discard(record)

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
