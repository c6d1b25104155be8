"""The event bus a plugin receives in its context.

Delivery is concurrent and bounded: one handler's exception or slowness never
stops the others, and ``publish`` returns within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._timeouts import EXITS, PluginExited, contained
from ._watchdog import WATCHDOG

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


#: How long cancelled handlers get to finish before their coroutines are closed.
CANCEL_GRACE_S = 0.2


class Deliveries:
    """Event-handler tasks, by receiver: none may outlive its deadline, its plugin's
    stop or the manager's shutdown.  A task that ignores cancellation has its coroutine
    closed (GeneratorExit at its ``await``); one that ignores that too is reported.

    A delivery registers its whole task table once (not a callback per task: a
    broadcast to 1,000 plugins would pay for 1,000 of them), and takes it back when it
    returns; what outlived it stays here until ended."""

    def __init__(self) -> None:
        self._running: list[dict[asyncio.Task[Any], str]] = []  # the deliveries in flight
        self._left: dict[asyncio.Task[Any], str] = {}  # tasks that outlived a delivery

    def open(self, tasks: dict[asyncio.Task[Any], str]) -> None:
        self._running.append(tasks)

    def close(self, tasks: dict[asyncio.Task[Any], str], left: set[asyncio.Task[Any]]) -> None:
        self._running.remove(tasks)
        self._left.update((task, tasks[task]) for task in left)

    def _owned(self, receiver: str | None) -> dict[asyncio.Task[Any], str]:
        owned = {t: n for table in self._running for t, n in table.items() if not t.done()}
        owned.update((t, n) for t, n in self._left.items() if not t.done())
        self._left = {t: n for t, n in self._left.items() if not t.done()}
        return {t: n for t, n in owned.items() if receiver is None or n == receiver}

    async def end(self, receiver: str | None = None) -> list[str]:
        """Stop ``receiver``'s tasks (every task: None); the receivers still running."""
        owned = self._owned(receiver)
        left = await end_tasks(set(owned))
        self._left.update((task, owned[task]) for task in left)
        return sorted({owned[task] for task in left})


async def end_tasks(tasks: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks``; close the coroutines of those that ignore it.  The ones left."""
    if not tasks:
        return set()
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=CANCEL_GRACE_S)
    for task in pending:  # it caught CancelledError: end it where it waits
        with contextlib.suppress(RuntimeError):  # "coroutine ignored GeneratorExit"
            task.get_coro().close()
        task.cancel()  # wakes the task from the future it waited on, to see it is over
    if pending:
        _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE_S)
    for task in tasks - pending:  # retrieved, so asyncio logs nothing about them
        if not task.cancelled():
            task.exception()
    return pending


_COROUTINE_CODE: dict[Any, bool] = {}  # by code object: asked per handler per event


def _is_coroutine_function(handler: Any) -> bool:
    """inspect.iscoroutinefunction, remembered by code object (shared by every closure
    and bound method of one ``def``, so the table stays as small as the code base)."""
    code = getattr(getattr(handler, "__func__", handler), "__code__", None)
    if code is None:
        return inspect.iscoroutinefunction(handler)
    known = _COROUTINE_CODE.get(code)
    if known is None:
        known = _COROUTINE_CODE[code] = inspect.iscoroutinefunction(handler)
    return known


async def deliver(
    receivers: Iterable[tuple[str, EventHandler]],
    event_type: str,
    data: dict[str, Any],
    timeout: float | None,
    owner: Deliveries | None = None,
) -> list[DeliveryFailure]:
    """Call every receiver concurrently; return the ones that failed, never raise.

    All handlers start together, so one deadline for the whole delivery gives each
    of them ``timeout`` seconds; handlers still running then are cancelled, and closed
    if they ignore it.  (One timer per handler would cost more than the delivery
    itself for trivial handlers.)  A handler's ``sys.exit()`` is its failure, never
    the host's end.  ``owner`` keeps the tasks, so a plugin's stop ends them too.
    """
    failures: list[DeliveryFailure] = []
    tasks: dict[asyncio.Task[Any], str] = {}
    create_task = asyncio.get_running_loop().create_task
    for name, handler in receivers:
        try:
            if _is_coroutine_function(handler):  # calling it runs none of its code
                result = handler(event_type, data)
            else:  # a plain function may hold the loop itself
                result = WATCHDOG.call(lambda h=handler: h(event_type, data), timeout)  # type: ignore[misc]
        except (Exception, *EXITS) as exc:
            failures.append(DeliveryFailure(name, event_type, f"{type(exc).__name__}: {exc}"))
            continue
        if inspect.isawaitable(result):
            tasks[create_task(contained(result, timeout))] = name
    if not tasks:
        return failures
    if owner is not None:
        owner.open(tasks)
    left: set[asyncio.Task[Any]] = set()
    try:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            failures.append(DeliveryFailure(tasks[task], event_type, f"timed out after {timeout}s"))
        left = await end_tasks(pending)
    finally:
        if owner is not None:
            owner.close(tasks, left)
    for task in left:
        why = "ignored cancellation and closing; still running"
        failures.append(DeliveryFailure(tasks[task], event_type, why))
    for task in done:
        error = task.exception()
        if isinstance(error, PluginExited):
            error = error.original
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
