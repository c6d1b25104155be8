"""1,000 trivial plugins, installed the way pip installs them: a module and a
``*.dist-info`` with METADATA and entry_points.txt each, in one site directory."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_MODULE = """
import asyncio
from aitbc.plugins import BasePlugin, PluginMetadata


class Plugin(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(name="{name}", version="1.0.0", description="", author="",
                              license="MIT")

    async def initialize(self) -> bool:
        await asyncio.sleep(0)
        return True

    async def start(self) -> bool:
        await asyncio.sleep(0)
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True

    async def handle_event(self, event_type: str, data: dict) -> None:
        await asyncio.sleep(0)
"""


def install_trivial_plugins(site: Path, count: int) -> list[str]:
    """Write ``count`` plugin distributions into ``site`` and put it on sys.path."""
    site.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name, module = f"bench-plugin-{i}", f"bench_plugin_{i}"
        (site / f"{module}.py").write_text(PLUGIN_MODULE.format(name=name))
        info = site / f"{module}-1.0.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n")
        (info / "entry_points.txt").write_text(f"[aitbc.plugins]\n{name} = {module}:Plugin\n")
        names.append(name)
    if str(site) not in sys.path:
        sys.path.insert(0, str(site))
    return names
