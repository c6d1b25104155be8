"""One way to bound an awaitable in time on every supported Python, and to keep a
plugin's ``sys.exit()`` or ``KeyboardInterrupt`` from ending the host."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

from ._watchdog import WATCHDOG

T = TypeVar("T")
#: What plugin code may raise that is not an Exception but must not end the host.
EXITS = (SystemExit, KeyboardInterrupt)


class PluginExited(Exception):
    """Plugin code raised SystemExit or KeyboardInterrupt; ``original`` is it.  Made an
    ordinary exception inside the plugin's own coroutine: an asyncio task re-raises
    those two out of the event loop itself, ending the host."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__}({original})")
        self.original = original


async def contained(awaitable: Awaitable[T], limit: float | None = None) -> T:
    """Await ``awaitable`` with SystemExit and KeyboardInterrupt turned into PluginExited;
    a step of it that holds the event loop past ``limit`` seconds is stopped
    (:class:`PluginHeldTheLoop`)."""
    try:
        return await WATCHDOG.guard(awaitable, limit)
    except EXITS as exc:
        raise PluginExited(exc) from None


async def run_with_timeout(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await ``awaitable``; raise :class:`asyncio.TimeoutError` past ``timeout`` seconds.

    asyncio.timeout (3.11+) cancels in place; wait_for would wrap the awaitable
    in a new task, which costs measurably when thousands of plugins are started.
    """
    if timeout is None:
        return await contained(awaitable)
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await contained(awaitable, timeout)
    return await asyncio.wait_for(contained(awaitable, timeout), timeout)  # pragma: no cover
