"""The spec's plugin testing framework.

``PluginTestCase`` runs both plain and ``async def test_*`` methods (under pytest
or unittest); ``create_plugin`` builds a plugin with a real context whose data
and temporary directories live in a per-test temporary directory.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import unittest
from pathlib import Path
from typing import Any, TypeVar

from ..base import BasePlugin
from ..context import PluginContext
from ..events import EventBus
from ..status import PluginStatus

P = TypeVar("P", bound=BasePlugin)

__all__ = ["PluginTestCase", "make_context"]


def make_context(
    root: Path, name: str = "plugin", config: dict[str, Any] | None = None, **extra: Any
) -> PluginContext:
    """A real context: data and temp directories under ``root``, a logger and an EventBus."""
    data_dir = root / "data" / name
    temp_dir = root / "tmp" / name
    data_dir.mkdir(parents=True, exist_ok=True)
    temp_dir.mkdir(parents=True, exist_ok=True)
    return PluginContext(
        config=dict(config or {}),
        data_dir=str(data_dir),
        temp_dir=str(temp_dir),
        logger=extra.pop("logger", logging.getLogger(f"aitbc.plugins.test.{name}")),
        event_bus=extra.pop("event_bus", EventBus()),
        api_client=extra.pop("api_client", None),
    )


async def wind_down(plugin: BasePlugin) -> None:
    """Stop and clean up a plugin a test left running, ignoring its failures."""
    try:
        if plugin.status is PluginStatus.ACTIVE:
            await plugin.stop()
        if plugin.status in (PluginStatus.LOADED, PluginStatus.INACTIVE, PluginStatus.ERROR):
            await plugin.cleanup()
    except Exception as exc:  # the test's own assertions already spoke
        logging.getLogger("aitbc.plugins.testing").debug("wind-down failed: %s", exc)


class PluginTestCase(unittest.IsolatedAsyncioTestCase):
    """Base class for plugin tests; see the spec's Testing section."""

    def setUp(self) -> None:
        super().setUp()
        self.tmp_path = Path(tempfile.mkdtemp(prefix="aitbc-plugin-test-"))
        self.addCleanup(shutil.rmtree, self.tmp_path, True)
        self._created: list[BasePlugin] = []

    async def asyncTearDown(self) -> None:
        for plugin in reversed(self._created):
            await wind_down(plugin)
        await super().asyncTearDown()

    def create_plugin(
        self, plugin_class: type[P], config: dict[str, Any] | None = None, **context: Any
    ) -> P:
        """Construct ``plugin_class`` with a real context; left running, it is wound down."""
        if not hasattr(self, "tmp_path"):  # a subclass whose setUp forgot super().setUp()
            PluginTestCase.setUp(self)
        name = plugin_class.__name__
        plugin = plugin_class(make_context(self.tmp_path, name, config, **context))
        self._created.append(plugin)
        return plugin
