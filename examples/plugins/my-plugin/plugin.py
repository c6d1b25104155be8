"""The spec's Example Plugin Implementation, with a counter of events it has seen."""

from typing import Any

from aitbc.plugins import BasePlugin, PluginMetadata


class MyPlugin(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="my-plugin",
            version="1.0.0",
            description="Example plugin",
            author="Developer Name",
            license="MIT",
        )

    async def initialize(self) -> bool:
        self.context.logger.info("Initializing my-plugin")
        self.events_seen = 0
        return True

    async def start(self) -> bool:
        self.context.logger.info("Starting my-plugin")
        return True

    async def stop(self) -> bool:
        self.context.logger.info("Stopping my-plugin")
        return True

    async def cleanup(self) -> bool:
        self.context.logger.info("Cleaning up my-plugin")
        return True

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        self.events_seen += 1

    async def health_check(self) -> dict[str, Any]:
        health = await super().health_check()
        health["events_seen"] = self.events_seen
        return health
