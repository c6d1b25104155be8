"""pytest fixtures for plugin tests (registered through the ``pytest11`` entry point).

``plugin_context`` is a real context in ``tmp_path``; ``create_plugin`` builds
plugins like ``PluginTestCase.create_plugin`` and winds them down after the test.
An ``async def`` test that uses one of these fixtures runs in a fresh event loop
(unless pytest-asyncio or anyio already handles it).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..base import BasePlugin
from ..context import PluginContext
from . import make_context, wind_down

_FIXTURES = frozenset({"plugin_context", "create_plugin"})


@pytest.fixture
def plugin_context(tmp_path: Path) -> PluginContext:
    return make_context(tmp_path)


@pytest.fixture
def create_plugin(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    created: list[BasePlugin] = []

    def factory(plugin_class: type[BasePlugin], config: dict[str, Any] | None = None) -> Any:
        plugin = plugin_class(make_context(tmp_path, plugin_class.__name__, config))
        created.append(plugin)
        return plugin

    yield factory

    async def wind_down_all() -> None:
        for plugin in reversed(created):
            await wind_down(plugin)

    asyncio.run(wind_down_all())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    claimed = {"asyncio", "anyio", "trio"} & set(pyfuncitem.keywords)
    if not inspect.iscoroutinefunction(test) or claimed:
        return None
    if not _FIXTURES & set(pyfuncitem.fixturenames):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(test(**arguments))
    return True
