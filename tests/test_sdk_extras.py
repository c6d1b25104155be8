"""Legacy adapter, CLI plugin mounting, and the testing harness."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import aitbc.plugins.legacy as legacy_module
import click
from aitbc.plugins import LegacyPluginAdapter, PluginManager, PluginStatus, mount_cli_plugins
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


class OldStyle:
    name = "old-style"
    version = "0.3.0"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")

    async def run(self) -> bool:
        self.calls.append("run")
        return True

    def teardown(self) -> None:
        self.calls.append("teardown")


def test_legacy_adapter_runs_old_methods_and_warns_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(legacy_module, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = LegacyPluginAdapter(OldStyle())
        LegacyPluginAdapter(OldStyle())
    assert [w.category for w in caught] == [DeprecationWarning]
    assert first.metadata.name == "old-style" and first.metadata.version == "0.3.0"

    async def go() -> None:
        assert await first.initialize() is True
        assert await first.start() is True
        assert await first.stop() is True
        assert await first.cleanup() is True

    asyncio.run(go())
    assert first.legacy.calls == ["setup", "run", "teardown"]
    assert first.status is PluginStatus.UNLOADED


def test_cli_plugins_mount_into_a_host_group(manager_config: Any) -> None:
    config = manager_config(
        {"agent-cli": {"enabled": True, "config": {"default_agent_type": "task"}}}
    )
    config["plugin_paths"] = [str(REPO / "examples" / "plugins")]

    @click.group()
    def host() -> None:
        """The host's CLI."""

    @host.command()
    def agent() -> None:
        """The host's own 'agent' command, which a plugin must not replace."""

    @click.group()
    def other_host() -> None:
        pass

    async def go() -> tuple[Any, Any]:
        async with PluginManager(config) as manager:
            return mount_cli_plugins(manager, host), mount_cli_plugins(manager, other_host)

    clash, mounted = asyncio.run(go())
    assert clash.mounted == {} and "agent" in clash.skipped
    assert mounted.mounted == {"agent": "agent-cli"}
    result = CliRunner().invoke(other_host, ["agent", "create", "--name", "bob"])
    assert result.exit_code == 0, result.output
    assert result.output == "Creating agent: bob (task)\n"


SPEC_TEST = """
import pytest
from aitbc.plugins import BasePlugin, PluginMetadata
from aitbc.plugins.testing import PluginTestCase


class MyPlugin(BasePlugin):
    def get_metadata(self):
        return PluginMetadata(name="my-plugin", version="1.0.0", description="Example plugin",
                              author="Developer Name", license="MIT")
    async def initialize(self):
        return True
    async def start(self):
        return True
    async def stop(self):
        return True
    async def cleanup(self):
        return True


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

    async def test_an_async_failure_is_reported(self):
        plugin = self.create_plugin(MyPlugin)
        assert await plugin.initialize() is False

    def test_context_is_real(self):
        import os
        plugin = self.create_plugin(MyPlugin, config={"x": 1})
        assert plugin.context.config == {"x": 1}
        assert os.path.isdir(plugin.context.data_dir) and os.path.isdir(plugin.context.temp_dir)


async def test_fixture_style(create_plugin):
    plugin = create_plugin(MyPlugin)
    await plugin.initialize()
    await plugin.start()
    assert (await plugin.health_check())["status"] == "active"


async def test_fixture_style_failure(create_plugin):
    plugin = create_plugin(MyPlugin)
    assert await plugin.start() is True  # illegal before initialize: must fail


def test_context_fixture(plugin_context):
    assert plugin_context.event_bus is not None
"""


def test_spec_test_block_runs_sync_and_async_tests(tmp_path: Path) -> None:
    (tmp_path / "test_spec_block.py").write_text(textwrap.dedent(SPEC_TEST))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(tmp_path / "test_spec_block.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    # Two deliberate failures prove async tests really run (a coroutine never awaited passes).
    assert "2 failed, 6 passed" in summary, result.stdout
    assert "test_an_async_failure_is_reported" in result.stdout
    assert "IllegalTransitionError" in result.stdout
