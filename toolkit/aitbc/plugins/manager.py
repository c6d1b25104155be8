"""PluginManager: the spec's central plugin management system, for hosts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._bringup import LOADED_STATES, bring_up
from ._bulk import auto_load, shutdown_all
from ._host import Host, describe_exception
from ._records import PluginRecord
from ._timeouts import run_with_timeout
from ._watchdog import WATCHDOG
from .base import BasePlugin, process_memory_bytes
from .config import ManagerConfig
from .errors import PluginLoadError
from .events import EventBus
from .registry import PluginRegistry
from .status import PluginStatus

if TYPE_CHECKING:
    from .monitoring import MonitoringServer

_S = PluginStatus


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
        settings = (
            config if isinstance(config, ManagerConfig) else ManagerConfig.from_mapping(config)
        )
        # The state and services the helper modules share; the manager is its facade.
        self._host = host = Host(
            settings,
            event_bus=EventBus(timeout=settings.lifecycle_timeout),
            api_client=api_client,
            environ=environ,
        )
        self.settings = settings
        self.plugins: dict[str, BasePlugin] = host.plugins  # the same dict, not a copy
        self.plugin_registry = PluginRegistry()
        if settings.registry is not None:
            self.plugin_registry.load_file(settings.registry)
        self.log = host.log
        host.restart = self._restart
        self._ops_lock: asyncio.Lock | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._monitoring: MonitoringServer | None = None

    # A host may swap these after construction; plugins loaded later see the new ones.
    @property
    def api_client(self) -> Any:
        return self._host.api_client

    @api_client.setter
    def api_client(self, value: Any) -> None:
        self._host.api_client = value

    @property
    def event_bus(self) -> EventBus:
        return self._host.event_bus

    @event_bus.setter
    def event_bus(self, value: EventBus) -> None:
        self._host.event_bus = value

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> PluginManager:
        return cls(ManagerConfig.from_file(path, environ=kwargs.get("environ")), **kwargs)

    # -- discovery ----------------------------------------------------------------------
    def discover_plugins(self) -> list[dict[str, Any]]:
        """Every available plugin as plain data; no plugin code is imported."""
        return [plugin.as_dict() for plugin in self._host.discover()]

    # -- the spec's methods -------------------------------------------------------------
    async def load_plugin(self, plugin_name: str) -> bool:
        """Load a plugin by name"""
        return await self._guarded(plugin_name, self._bring_up, plugin_name, False)

    async def start_plugin(self, plugin_name: str) -> bool:
        """Start a plugin"""
        return await self._guarded(plugin_name, self._bring_up, plugin_name, True)

    async def stop_plugin(self, plugin_name: str) -> bool:
        """Stop a plugin"""
        return await self._guarded(plugin_name, self._stop, plugin_name)

    async def unload_plugin(self, plugin_name: str) -> bool:
        """Unload a plugin"""
        return await self._guarded(plugin_name, self._unload, plugin_name)

    def get_plugin_status(self, plugin_name: str) -> PluginStatus:
        """Get plugin status; raises PluginNotFoundError for a plugin nobody knows."""
        record = self._host.records.get(plugin_name)
        if record is not None:
            return record.status
        if plugin_name in self.settings.plugins:
            return _S.UNLOADED
        self._host.record(plugin_name)
        return _S.UNLOADED

    def list_plugins(self) -> list[str]:
        """List all loaded plugins"""
        return list(self.plugins)

    async def broadcast_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Broadcast event to all plugins"""
        await self._host.dispatch(event_type, data, source=None)

    # -- host additions ----------------------------------------------------------------
    def get_plugin_error(self, plugin_name: str) -> str | None:
        """Why the last lifecycle call on this plugin failed (None after a success)."""
        return self._host.errors.get(plugin_name)

    def health_report(self) -> dict[str, dict[str, Any]]:
        """Status, last health check, step timings and error counts of every plugin the
        configuration names (loaded or not, with why not) and every other known one.
        ``degraded``: ``degraded_after_errors`` failures or more within ``error_window``."""
        host, settings = self._host, self.settings
        report = {
            name: record.describe(settings.error_window, settings.degraded_after_errors)
            for name, record in host.records.items()
        }
        for name, entry in settings.plugins.items():
            if name not in report:
                report[name] = self._not_loaded(name, entry.enabled)
        return host.redactor.data(report)  # type: ignore[no-any-return]

    def _not_loaded(self, name: str, enabled: bool) -> dict[str, Any]:
        host = self._host
        if host.discovered is None:
            host.discover()
        found = (host.discovered or {}).get(name)
        if not enabled:
            reason = f"{name} is disabled in the configuration (enabled: false)"
        elif found is None:
            reason = f"no plugin named {name!r} in plugin_paths or entry points"
        else:
            reason = host.errors.get(name, "not loaded")
        return {
            "name": name, "status": (_S.UNLOADED if found or not enabled else _S.ERROR).value,
            "version": found.version if found else None,
            "source": found.source if found else None,
            "location": found.location if found else None, "health": None, "timings": {},
            "error_count": 0, "last_error": reason, "errors_in_window": 0, "degraded": False,
        }  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Per plugin: status, lifecycle step durations, events and errors counted,
        restarts, its worker's memory (isolated), last health, event-handling latency
        (a histogram); for the host: dropped events and its memory.  Plain data, as
        ``/metrics`` serves it (see :mod:`aitbc.plugins.monitoring`)."""
        host = self._host
        return {
            "plugins": {name: record.metrics() for name, record in host.records.items()},
            "host": {
                "dropped_events": dict(host.dropped_events),
                "memory_bytes": process_memory_bytes(),
            },
        }

    @property
    def monitoring_url(self) -> str | None:
        """Where ``/health`` and ``/metrics`` are served, when monitoring is on."""
        return self._monitoring.url if self._monitoring is not None else None

    async def check_health(self) -> dict[str, dict[str, Any]]:
        """Run every active plugin's ``health_check`` now (concurrently, bounded in time)."""
        active = [r for r in self._host.records.values() if r.status is _S.ACTIVE]
        redactor, timeout = self._host.redactor, self.settings.lifecycle_timeout

        async def one(record: PluginRecord) -> None:
            assert record.plugin is not None
            try:
                result = await run_with_timeout(record.plugin.health_check(), timeout)
                record.health = redactor.data(dict(result))
            except Exception as exc:  # PluginExited too: run_with_timeout contains exits
                record.error_count += 1
                reason = describe_exception("health_check", exc, timeout)
                record.health = {"status": "error", "error": redactor.text(reason)}

        await asyncio.gather(*(one(r) for r in active))
        return self.health_report()

    async def startup(self) -> None:
        """Load and start the enabled plugins (``auto_load``), then run health checks."""
        if self.settings.auto_load:
            async with self._lock():
                await auto_load(self._host)
        if self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())
        where = self.settings.monitoring
        if where is not None and self._monitoring is None:
            from .monitoring import MonitoringServer

            self._monitoring = MonitoringServer(self, where.host, where.port)
            self._monitoring.start()

    async def shutdown(self) -> None:
        """Stop and unload every plugin, dependents first, in reverse start-up order."""
        if self._monitoring is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._monitoring.stop)
            self._monitoring = None
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None
        await self._host.end_background()  # restarts pending, isolated plugins' publishes
        async with self._lock():
            await shutdown_all(self._host)
            await self._host.end_deliveries()  # the host's own subscribers' too
            await self._host.end_background()
        WATCHDOG.stop_when_idle()

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
        host = self._host
        async with self._lock():
            try:
                await operation(*args)
            except Exception as exc:
                reason = host.redactor.text(str(exc) or type(exc).__name__)
                host.errors[name] = reason
                self.log.warning("plugin %s: %s", name, reason)
                return False
        host.errors.pop(name, None)
        return True

    # -- internals: one plugin -----------------------------------------------------------
    async def _bring_up(self, name: str, start: bool) -> None:
        await bring_up(self._host, name, start=start)

    def _dependents(self, name: str) -> list[PluginRecord]:
        records = self._host.records.values()
        return [r for r in records if name in r.dependencies and r.plugin]

    async def _stop(self, name: str) -> None:
        record = self._host.records.get(name)
        if record is None or record.plugin is None:
            raise PluginLoadError(f"{name} is not loaded")
        if record.status is not _S.ACTIVE:
            if record.status in LOADED_STATES:
                return
            raise PluginLoadError(f"{name} is {record.status.value}; nothing to stop")
        for dependent in self._dependents(name):
            if dependent.status is _S.ACTIVE:
                await self._stop(dependent.name)
        await self._host.step(record, "stop")

    async def _unload(self, name: str) -> None:
        record = self._host.records.get(name)
        if record is None or record.plugin is None:
            if record is not None:  # an instance that never got built: just forget the error
                record.absent_status, record.error = _S.UNLOADED, None
            return
        for dependent in self._dependents(name):
            await self._unload(dependent.name)
        await self._host.teardown(record)

    async def _restart(self, name: str) -> bool:
        """A dead isolated plugin, unloaded and started again (``restart: on-failure``)."""
        await self.unload_plugin(name)
        return await self.start_plugin(name)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_check_interval)
            await self.check_health()
