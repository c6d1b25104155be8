"""What the manager's helpers share: the manager's state, and the few services
(fail, step, teardown, dispatch, ...) they call.  PluginManager owns one Host and
hands it to _loading, _bringup and _bulk, which never see the manager itself."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from ._metrics import LATENCY_SAMPLE_EVERY
from ._records import PluginRecord, RecordedFailure
from ._timeouts import EXITS, PluginExited, run_with_timeout
from ._watchdog import PluginHeldTheLoop
from .base import BasePlugin
from .config import ManagerConfig
from .discovery import DiscoveredPlugin, discover
from .errors import IllegalTransitionError, PluginLoadError, PluginNotFoundError
from .events import Deliveries, EventBus, EventHandler, deliver
from .secrets import RedactingFilter, Redactor
from .status import PluginStatus

_S = PluginStatus
RESTART_BACKOFF_S = 0.5  # before the first restart of a dead worker; doubled each time
RESTART_BACKOFF_MAX_S = 30.0
#: How deep the current event delivery is nested (events published by handlers).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("aitbc_event_depth", default=0)


class Host:
    """Settings, per-plugin records and errors, logging, and the lifecycle services."""

    def __init__(
        self,
        settings: ManagerConfig,
        *,
        event_bus: EventBus,
        api_client: Any,
        environ: Mapping[str, str] | None,
    ) -> None:
        self.settings = settings
        self.event_bus = event_bus
        self.api_client = api_client
        self.environ = environ
        self.plugins: dict[str, BasePlugin] = {}
        self.records: dict[str, PluginRecord] = {}
        self.errors: dict[str, str] = {}
        self.redactor = Redactor()
        self._log_filter = RedactingFilter(self.redactor)
        self.log = self.logger("aitbc.plugins.manager")
        self.discovered: dict[str, DiscoveredPlugin] | None = None
        self.deliveries = Deliveries()  # every event handler task, by receiver
        self.dropped_events: dict[str, int] = {}  # event type -> dropped as too deep
        # Isolated plugins: their publishes being delivered, their pending restarts.
        self.background: set[asyncio.Task[Any]] = set()
        self.restart: Callable[[str], Awaitable[bool]] | None = None  # set by the manager
        self.starting: asyncio.Semaphore | None = None  # workers starting at once
        self.deliveries_made = 0  # one in LATENCY_SAMPLE_EVERY is timed per plugin

    def logger(self, name: str) -> logging.Logger:
        """A logger that never shows a configured secret."""
        logger = logging.getLogger(name)
        if self._log_filter not in logger.filters:
            logger.addFilter(self._log_filter)
        return logger

    # -- which plugins exist -------------------------------------------------------------
    def discover(self) -> list[DiscoveredPlugin]:
        found = discover(self.settings.plugin_paths)
        self.discovered = {}
        for plugin in found:
            first = self.discovered.setdefault(plugin.name, plugin)
            if first is not plugin:
                self.log.warning(
                    "two plugins are named %s: %s is used, %s is ignored",
                    plugin.name, first.location, plugin.location,
                )  # fmt: skip
        return found

    def record(self, name: str) -> PluginRecord:
        """The plugin's record, discovering (again) when the name is new."""
        record = self.records.get(name)
        if record is not None:
            return record
        if self.discovered is None or name not in self.discovered:
            self.discover()
        assert self.discovered is not None
        if name not in self.discovered:
            raise PluginNotFoundError(f"no plugin named {name!r} in plugin_paths or entry points")
        record = self.records[name] = PluginRecord(name, self.discovered[name])
        return record

    # -- failures and steps --------------------------------------------------------------
    def fail(self, record: PluginRecord, reason: str) -> None:
        """Put the plugin in ERROR with ``reason`` (redacted), and log it."""
        reason = self.redactor.text(reason)
        record.error = reason
        record.note_failure(reason)
        self.errors[record.name] = reason
        plugin = record.plugin
        if plugin is None:
            record.error_count += 1
            record.absent_status = _S.ERROR
        elif plugin.status is _S.ERROR:
            plugin.last_error = reason
        else:
            plugin._record_failure(reason)
        self.log.warning("plugin %s: %s", record.name, reason)

    def discard(self, record: PluginRecord) -> None:
        if record.plugin is not None:
            record.error_count += record.plugin.error_count
        self.plugins.pop(record.name, None)
        record.release()

    async def step(self, record: PluginRecord, step: str) -> None:
        """Run one lifecycle step, bounded in time; raise RecordedFailure when it fails."""
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
        except (Exception, *EXITS) as exc:  # a plugin's sys.exit() never ends the host
            reason = describe_exception(step, exc, timeout)
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
            if step in ("stop", "cleanup"):  # its event handlers stop with it
                await self.end_deliveries(record.name)
        if reason is not None:
            self.fail(record, f"{record.name}: {reason}")
            raise RecordedFailure(f"{record.name}: {reason}")
        record.error = None

    async def teardown(self, record: PluginRecord) -> None:
        """Stop if active, then clean up, then release the instance: a failed cleanup
        still unloads (its reason stays in the record, and is raised), so the plugin
        can be loaded again."""
        if record.status is _S.ACTIVE:
            # A failed stop leaves ERROR, and ERROR -> UNLOADING is legal: clean up anyway.
            with contextlib.suppress(RecordedFailure):
                await self.step(record, "stop")
        if record.status is _S.LOADING:
            self.discard(record)
            return
        try:
            await self.step(record, "cleanup")
        finally:
            self.discard(record)

    async def end_deliveries(self, receiver: str | None = None) -> None:
        """End ``receiver``'s event handler tasks (everyone's: None)."""
        for name in await self.deliveries.end(receiver):
            self.log.warning("plugin %s: an event handler ignored cancellation", name)
            record = self.records.get(name)
            if record is not None:
                record.note_failure("an event handler ignored cancellation and is still running")

    def requirement_problem(self, record: PluginRecord, dep: str) -> str | None:
        """Why the loaded ``dep`` does not satisfy ``record``'s requirement, if it does not."""
        dep_record = self.records.get(dep)
        if dep_record is None or dep_record.plugin is None:
            return f"dependency {dep} is not loaded"
        version = dep_record.plugin.metadata.version
        wanted = record.dependencies[dep]
        if not wanted.contains(version, prereleases=True):
            return f"requires {dep}{wanted}, found {version}"
        return None

    # -- isolated plugins ------------------------------------------------------------------
    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def publish_from(self, name: str, event_type: str, data: dict[str, Any], depth: int) -> None:
        """An isolated plugin published: delivered as an in-process plugin's publish is,
        at the depth of the event it was handling."""

        async def publish() -> None:
            token = _DEPTH.set(depth)
            try:
                await self.dispatch(event_type, data, name)
            finally:
                _DEPTH.reset(token)

        self._in_background(publish())

    def refused(self, record: PluginRecord, permission: str, what: str) -> None:
        note = f"refused: {what} (no {permission} permission)"
        if note not in record.refusals:
            record.refusals.append(note)
            self.log.warning("plugin %s: %s", record.name, note)

    def worker_died(self, record: PluginRecord, reason: str) -> None:
        """An isolated plugin's worker ended on its own: the plugin goes to ERROR with
        the reason and, with ``restart: on-failure``, is started again after a backoff."""
        if record.plugin is None or record.status is _S.UNLOADED:
            return
        self.fail(record, f"{record.name}: {reason}")
        settings = self.settings.plugins.get(record.name)
        if settings is None or settings.restart != "on-failure" or self.restart is None:
            return
        if record.restarts >= settings.max_restarts:
            self.log.warning("plugin %s: not restarted again (max_restarts %d reached)",
                             record.name, settings.max_restarts)  # fmt: skip
            return
        record.restarts += 1
        delay = min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** (record.restarts - 1))
        restart = self.restart

        async def again() -> None:
            await asyncio.sleep(delay)
            self.log.info("plugin %s: restarting (attempt %d)", record.name, record.restarts)
            await restart(record.name)

        self._in_background(again())

    async def end_background(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)

    # -- events --------------------------------------------------------------------------
    async def dispatch(self, event_type: str, data: dict[str, Any], source: str | None) -> None:
        """To every active plugin but ``source``, and the host's subscribers.  Events
        published from handlers nest; past ``max_event_depth`` they are dropped and
        counted, so two plugins re-publishing to each other cannot flood the host."""
        depth = _DEPTH.get()
        if depth >= self.settings.max_event_depth:
            dropped = self.dropped_events[event_type] = self.dropped_events.get(event_type, 0) + 1
            if dropped == 1 or dropped % 1000 == 0:
                self.log.warning(
                    "event %s from %s dropped: published %d levels deep (max_event_depth);"
                    " %d dropped so far", event_type, source or "the host", depth, dropped,
                )  # fmt: skip
            if source in self.records:
                self.records[source].note_failure(f"event {event_type} dropped: too deep")
            return
        token = _DEPTH.set(depth + 1)  # handler tasks copy the context: they see it
        try:
            await self._deliver(event_type, data, source)
        finally:
            _DEPTH.reset(token)

    async def _deliver(self, event_type: str, data: dict[str, Any], source: str | None) -> None:
        self.deliveries_made += 1
        timed = not self.deliveries_made % LATENCY_SAMPLE_EVERY
        receivers: list[tuple[str, EventHandler]] = []
        add = receivers.append
        for name, record in self.records.items():  # one pass: this runs per broadcast
            plugin = record.plugin
            # plugin.status without the property call (BasePlugin keeps it there)
            if plugin is None or name == source or plugin.__dict__.get("_status") is not _S.ACTIVE:
                continue
            record.events += 1
            add((name, _timed(record) if timed else plugin.handle_event))
        receivers += self.event_bus.subscribers_for(event_type)
        failures = await deliver(
            receivers, event_type, data, self.settings.delivery_timeout, self.deliveries
        )
        for failure in failures:
            failed = self.records.get(failure.receiver)
            if failed is not None:
                failed.error_count += 1
                failed.event_errors += 1
                failed.note_failure(f"handling {event_type} failed: {failure.reason}")
            self.log.warning(
                "event %s: %s failed: %s", event_type, failure.receiver, failure.reason
            )


def _timed(record: PluginRecord) -> EventHandler:
    """The plugin's handle_event, its latency observed (a coroutine function, as
    handle_event is: delivery treats it the same way)."""
    assert record.plugin is not None
    handle, observe = record.plugin.handle_event, record.latency.observe

    async def timed(event_type: str, data: dict[str, Any]) -> None:
        began = time.perf_counter()
        try:
            await handle(event_type, data)
        finally:
            observe(time.perf_counter() - began)

    return timed


def event_depth() -> int:
    """How deep the event being delivered now is (0 outside any delivery)."""
    return _DEPTH.get()


def describe_exception(step: str, exc: BaseException, timeout: float) -> str:
    from .isolated.link import WorkerFailed

    if isinstance(exc, WorkerFailed):
        return f"{step}: {exc}"
    if isinstance(exc, asyncio.TimeoutError):
        return f"{step} timed out after {timeout:g}s"
    if isinstance(exc, PluginExited):
        exc = exc.original
    if isinstance(exc, SystemExit):
        return f"{step} called sys.exit({exc.code!r}); the host goes on"
    if isinstance(exc, PluginHeldTheLoop):
        return f"{step} {exc}; it was stopped"
    return f"{step} raised {type(exc).__name__}: {exc}"
