"""The event bus a plugin receives in its context.

Delivery is concurrent and bounded: one handler's exception or slowness never
stops the others, and ``publish`` returns within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None] | None]

_log = logging.getLogger("aitbc.plugins.events")


@dataclass(frozen=True)
class DeliveryFailure:
    """A handler that raised or overran the timeout while receiving an event."""

    receiver: str
    event_type: str
    reason: str


@dataclass(frozen=True)
class _Subscription:
    event_type: str
    handler: EventHandler
    name: str


async def deliver(
    receivers: Iterable[tuple[str, EventHandler]],
    event_type: str,
    data: dict[str, Any],
    timeout: float | None,
) -> list[DeliveryFailure]:
    """Call every receiver concurrently; return the ones that failed, never raise.

    All handlers start together, so one deadline for the whole delivery gives each
    of them ``timeout`` seconds; handlers still running then are cancelled.  (One
    timer per handler would cost more than the delivery itself for trivial handlers.)
    """
    failures: list[DeliveryFailure] = []
    tasks: dict[asyncio.Future[Any], str] = {}
    create_task = asyncio.get_running_loop().create_task
    for name, handler in receivers:
        try:
            result = handler(event_type, data)
        except Exception as exc:
            failures.append(DeliveryFailure(name, event_type, f"{type(exc).__name__}: {exc}"))
            continue
        if asyncio.iscoroutine(result):
            tasks[create_task(result)] = name
        elif inspect.isawaitable(result):
            tasks[asyncio.ensure_future(result)] = name
    if not tasks:
        return failures
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
        failures.append(DeliveryFailure(tasks[task], event_type, f"timed out after {timeout}s"))
    if pending:
        await asyncio.wait(pending)  # let cancellation finish; no task outlives delivery
    for task in done:
        error = task.exception()
        if error is not None:
            reason = f"{type(error).__name__}: {error}"
            failures.append(DeliveryFailure(tasks[task], event_type, reason))
    return failures


class EventBus:
    """Publish/subscribe between a host and its plugins.

    A standalone bus (as :class:`~aitbc.plugins.testing.PluginTestCase` gives a
    plugin) delivers to its subscribers and keeps every published event in
    ``published`` so tests can assert on it.  A :class:`PluginManager` gives each
    plugin a bus that also delivers to the other active plugins' ``handle_event``.
    """

    def __init__(self, *, timeout: float | None = 30.0) -> None:
        self.timeout = timeout
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[DeliveryFailure] = []
        self._subscriptions: list[_Subscription] = []

    def subscribe(
        self, event_type: str, handler: EventHandler, *, name: str | None = None
    ) -> Callable[[], None]:
        """Call ``handler(event_type, data)`` for each event of that type (``"*"``: all).

        Returns a function that removes the subscription.
        """
        sub = _Subscription(event_type, handler, name or str(getattr(handler, "__qualname__", "?")))
        self._subscriptions.append(sub)

        def unsubscribe() -> None:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

        return unsubscribe

    def subscribers_for(self, event_type: str) -> list[tuple[str, EventHandler]]:
        return [
            (s.name, s.handler) for s in self._subscriptions if s.event_type in ("*", event_type)
        ]

    async def publish(self, event_type: str, data: dict[str, Any] | None = None) -> None:
        """Deliver an event to every subscriber, concurrently; failures are logged, not raised."""
        payload = dict(data or {})
        self.published.append((event_type, payload))
        failures = await deliver(
            self.subscribers_for(event_type), event_type, payload, self.timeout
        )
        self._record(failures)

    def _record(self, failures: list[DeliveryFailure]) -> None:
        for failure in failures:
            _log.warning(
                "event %s: handler %s failed: %s",
                failure.event_type,
                failure.receiver,
                failure.reason,
            )
        self.failures.extend(failures)


Dispatch = Callable[[str, dict[str, Any], "str | None"], Awaitable[None]]


class PluginEventBus(EventBus):
    """The bus in a managed plugin's context: ``publish`` goes through the manager's
    dispatch (the host's subscribers and every *other* active plugin's ``handle_event``);
    ``subscribe`` subscribes on the host's bus."""

    def __init__(self, host_bus: EventBus, dispatch: Dispatch, plugin_name: str) -> None:
        super().__init__(timeout=host_bus.timeout)
        self._host_bus = host_bus
        self._dispatch = dispatch
        self.plugin_name = plugin_name

    def subscribe(
        self, event_type: str, handler: EventHandler, *, name: str | None = None
    ) -> Callable[[], None]:
        return self._host_bus.subscribe(event_type, handler, name=name or self.plugin_name)

    async def publish(self, event_type: str, data: dict[str, Any] | None = None) -> None:
        payload = dict(data or {})
        self.published.append((event_type, payload))
        await self._dispatch(event_type, payload, self.plugin_name)
