"""An isolated plugin as the manager sees it: a BasePlugin whose every call is a
request to its worker.  The lifecycle state machine is the host's own (BasePlugin's
wrappers), so statuses and transitions are exactly an in-process plugin's; return
values and exceptions come back with the same repr, type name and message, so the
manager's texts are the same too.  Only the blast radius differs."""

from __future__ import annotations

import functools
from typing import Any

from .._host import event_depth
from .._timeouts import PluginExited
from ..base import BasePlugin
from ..context import PluginContext
from ..metadata import PluginMetadata
from ..sandbox.diagnosis import memory_reason
from .link import Worker, WorkerFailed


class PluginRaised(Exception):
    """Base of the exceptions re-raised from a worker; each carries the original's type
    name (``ValueError``), so that ``type(exc).__name__`` reads as it did there."""


@functools.cache
def _raised_type(name: str) -> type[PluginRaised]:
    return type(name, (PluginRaised,), {"__module__": "aitbc.plugins.isolated.remote"})


class _Shown:
    """A value returned in the worker, shown with the repr it had there."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def result_of(answer: dict[str, Any], limits_memory_mb: int) -> Any:
    """The worker's answer as the call's outcome: a value, or the exception it raised."""
    if answer.get("memory"):
        raise WorkerFailed(memory_reason(limits_memory_mb))
    exit_kind = answer.get("exit")
    if exit_kind == "SystemExit":
        raise PluginExited(SystemExit(answer.get("code")))
    if exit_kind == "KeyboardInterrupt":
        raise PluginExited(KeyboardInterrupt())
    if answer.get("cancelled"):
        raise WorkerFailed("the call was cancelled in its worker")
    raised = answer.get("raised")
    if isinstance(raised, str) and raised.isidentifier():
        raise _raised_type(raised)(str(answer.get("message", "")))
    if answer.get("true") is True:
        return True
    return _Shown(str(answer.get("repr", "None"))[:500])


class IsolatedPlugin(BasePlugin):
    """The manager's handle on a plugin that runs in its own worker process."""

    def __init__(
        self,
        context: PluginContext,
        worker: Worker,
        metadata: PluginMetadata,
        config_schema: dict[str, Any],
    ) -> None:
        self.worker = worker
        self._metadata = metadata
        self._config_schema = config_schema
        super().__init__(context)

    def get_metadata(self) -> PluginMetadata:
        return self._metadata

    def get_config_schema(self) -> dict[str, Any]:
        return self._config_schema

    async def _ask(self, op: str, **fields: Any) -> Any:
        return result_of(await self.worker.call(op, **fields), self.worker.limits.memory_mb)

    async def initialize(self) -> bool:
        return await self._ask("initialize")  # type: ignore[no-any-return]

    async def start(self) -> bool:
        return await self._ask("start")  # type: ignore[no-any-return]

    async def stop(self) -> bool:
        return await self._ask("stop")  # type: ignore[no-any-return]

    async def cleanup(self) -> bool:
        if self.worker.death is not None:
            return True  # nothing left to clean: the kernel reclaimed what the worker held
        try:
            return await self._ask("cleanup")  # type: ignore[no-any-return]
        finally:
            await self.worker.close()

    async def health_check(self) -> dict[str, Any]:
        answer = await self.worker.call("health_check")
        result_of(answer, self.worker.limits.memory_mb)  # raises what it raised
        health = dict(answer.get("value") or {})
        # Seen from outside, not the plugin's word: its status here, its worker's memory.
        health["status"] = self.status.value
        health["memory_usage"] = self.worker.memory_bytes()
        health["isolated"] = True
        return health

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        await self._ask("handle_event", event=event_type, data=data, depth=event_depth())

    async def forward(self, event_type: str, data: dict[str, Any]) -> None:
        """An event of the host's bus the plugin subscribed to in its worker."""
        await self._ask("bus_event", event=event_type, data=data, depth=event_depth())
