"""One way to bound an awaitable in time on every supported Python."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_with_timeout(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await ``awaitable``; raise :class:`asyncio.TimeoutError` past ``timeout`` seconds.

    asyncio.timeout (3.11+) cancels in place; wait_for would wrap the awaitable
    in a new task, which costs measurably when thousands of plugins are started.
    """
    if timeout is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)  # pragma: no cover - 3.10 only
