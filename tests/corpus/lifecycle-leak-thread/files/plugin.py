"""The lifecycle-leak-thread AITBC plugin (base kind).

It is a BasePlugin that runs the plugin lifecycle and counts the events it
handles.

Its configuration (the host's ``context.config``) is described by
``config_schema.json`` beside this module: ``get_config_schema()`` returns that
file, the host validates the configuration against it, and ``settings`` is the
configuration with the schema's defaults filled in.

Certification corpus case lifecycle-leak-thread: start() starts a thread 'poller' that
nothing ends, under the lifecycle check.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import Counter
from typing import Any

from aitbc.plugins import BasePlugin, PluginContext, PluginMetadata


def under_lifecycle_check() -> bool:
    """True only inside `aitbc-plugin certify`'s lifecycle check (its sandbox worker
    sets AITBC_CERTIFY_CHECK=lifecycle): this certification corpus case misbehaves there
    alone, so that its own tests pass and only that check fails."""
    return os.environ.get("AITBC_CERTIFY_CHECK") == "lifecycle"


class LifecycleLeakThreadPlugin(BasePlugin):
    """Runs the plugin lifecycle and counts the events it handles."""

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.settings: dict[str, Any] = self.load_settings()
        self.event_counts: Counter[str] = Counter()
        self._poller: threading.Thread | None = None

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="lifecycle-leak-thread",
            version="0.1.0",
            description="An AITBC plugin",
            author="lifecycle-leak-thread authors",
            license="MIT",
            keywords=["aitbc", "plugin"],
            min_aitbc_version="1.0.0",
            max_aitbc_version="2.0.0",
        )

    def load_settings(self) -> dict[str, Any]:
        """The host's configuration over the defaults in ``config_schema.json``."""
        properties = self.get_config_schema().get("properties", {})
        settings = {
            name: copy.deepcopy(option["default"])
            for name, option in properties.items()
            if isinstance(option, dict) and "default" in option
        }
        settings.update(self.context.config)
        return settings

    # -- lifecycle: every step returns True on success ---------------------------
    async def initialize(self) -> bool:
        self.context.logger.info("Initializing %s", self.metadata.name)
        self.settings = self.load_settings()
        self.event_counts.clear()
        return True

    async def start(self) -> bool:
        self.context.logger.info("Starting %s", self.metadata.name)
        if under_lifecycle_check() and self._poller is None:
            # bad on purpose: stop() and cleanup() never end this thread
            self._poller = threading.Thread(target=self._poll, name="poller", daemon=True)
            self._poller.start()
        return True

    def _poll(self) -> None:
        while True:
            time.sleep(0.05)

    async def stop(self) -> bool:
        self.context.logger.info("Stopping %s", self.metadata.name)
        return True

    async def cleanup(self) -> bool:
        self.context.logger.info("Cleaning up %s", self.metadata.name)
        return True

    async def health_check(self) -> dict[str, Any]:
        health = await super().health_check()
        health["events_handled"] = self.events_handled
        return health

    # -- events -------------------------------------------------------------------
    @property
    def events_handled(self) -> int:
        """How many events handle_event counted since initialize."""
        return sum(self.event_counts.values())

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Count the event (only the tracked_events, when that list is not empty)."""
        tracked = self.settings["tracked_events"]
        if tracked and event_type not in tracked:
            return
        self.event_counts[event_type] += 1
        if self.settings["log_events"]:
            self.context.logger.info(
                "%s: event %s with keys %s", self.metadata.name, event_type, sorted(data)
            )
