import pytest
from aitbc.plugins.testing import PluginTestCase

from my_plugin.plugin import MyPlugin


class TestMyPlugin(PluginTestCase):
    def test_plugin_metadata(self):
        plugin = self.create_plugin(MyPlugin)
        metadata = plugin.get_metadata()
        assert metadata.name == "my-plugin"
        assert metadata.version == "1.0.0"

    async def test_plugin_lifecycle(self):
        plugin = self.create_plugin(MyPlugin)
        assert await plugin.initialize() is True
        assert await plugin.start() is True
        assert await plugin.stop() is True
        assert await plugin.cleanup() is True

    async def test_plugin_health_check(self):
        plugin = self.create_plugin(MyPlugin)
        await plugin.initialize()
        await plugin.start()
        health = await plugin.health_check()
        assert health["status"] == "active"
