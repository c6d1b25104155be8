"""The spec's migration adapter: old-style plugin objects behind BasePlugin."""

from __future__ import annotations

import inspect
import logging
import tempfile
import warnings
from typing import Any

from .base import BasePlugin
from .context import PluginContext
from .events import EventBus
from .metadata import PluginMetadata

_warned = False

# Old-style method names, tried in order, for each lifecycle step.
_LEGACY_METHODS = {
    "initialize": ("initialize", "setup", "init", "load"),
    "start": ("start", "run", "activate"),
    "stop": ("stop", "deactivate"),
    "cleanup": ("cleanup", "teardown", "close", "unload"),
}


def looks_like_legacy_plugin(obj: Any) -> bool:
    """A class that is no BasePlugin but has some of the old lifecycle methods."""
    return inspect.isclass(obj) and any(
        callable(getattr(obj, m, None)) for names in _LEGACY_METHODS.values() for m in names
    )


def _standalone_context() -> PluginContext:
    directory = tempfile.mkdtemp(prefix="aitbc-legacy-")
    return PluginContext(
        config={},
        data_dir=directory,
        temp_dir=directory,
        logger=logging.getLogger("aitbc.plugins.legacy"),
        event_bus=EventBus(),
    )


class LegacyPluginAdapter(BasePlugin):
    """Wraps a legacy (pre-spec) plugin object so a manager can run it.

    Each lifecycle step calls the legacy object's method of that role when it has
    one (sync or async; a None return counts as success), else succeeds.
    Deprecated: warns once per process.
    """

    def __init__(
        self,
        legacy_plugin: Any,
        context: PluginContext | None = None,
        metadata: PluginMetadata | None = None,
    ) -> None:
        global _warned
        if not _warned:
            _warned = True
            warnings.warn(
                f"{type(legacy_plugin).__name__} is a legacy plugin; port it to BasePlugin "
                "(LegacyPluginAdapter will be removed in a future AITBC release)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.legacy = legacy_plugin
        self._given_metadata = metadata
        super().__init__(context or _standalone_context())

    def get_metadata(self) -> PluginMetadata:
        if self._given_metadata is not None:
            return self._given_metadata
        own = getattr(self.legacy, "get_metadata", None)
        if callable(own):
            found = own()
            if isinstance(found, PluginMetadata):
                return found
            if isinstance(found, dict):
                return PluginMetadata(**found)
        legacy = self.legacy
        return PluginMetadata(
            name=str(getattr(legacy, "name", type(legacy).__name__.replace("_", "-"))),
            version=str(getattr(legacy, "version", "0.0.0")),
            description=str(getattr(legacy, "description", type(legacy).__doc__ or "")).strip(),
            author=str(getattr(legacy, "author", "unknown")),
            license=str(getattr(legacy, "license", "unknown")),
        )

    async def _call_legacy(self, step: str) -> bool:
        for method_name in _LEGACY_METHODS[step]:
            method = getattr(self.legacy, method_name, None)
            if callable(method):
                result = method()
                if inspect.isawaitable(result):
                    result = await result
                return result is None or bool(result)
        return True

    async def initialize(self) -> bool:
        return await self._call_legacy("initialize")

    async def start(self) -> bool:
        return await self._call_legacy("start")

    async def stop(self) -> bool:
        return await self._call_legacy("stop")

    async def cleanup(self) -> bool:
        return await self._call_legacy("cleanup")

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        handler = getattr(self.legacy, "handle_event", None) or getattr(
            self.legacy, "on_event", None
        )
        if callable(handler):
            result = handler(event_type, data)
            if inspect.isawaitable(result):
                await result
