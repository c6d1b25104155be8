"""A small AITBC host: runs the example plugins through PluginManager.

Loads examples/config.yaml (plugins from ./plugins and one installed entry point),
starts them, broadcasts events, runs a CLI plugin's command, and prints health.
Run it from an environment where aitbc-plugins and examples/bitcoin-integration
are installed (`python3 .ci/dev.py demo` sets that up).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import click
from aitbc.plugins import PluginManager, mount_cli_plugins
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    line = "  ".join(c.upper().ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([line, *body])


async def show_monitoring(manager: PluginManager) -> bool:
    """What an operator's scraper sees: /health and a few /metrics lines."""
    url = manager.monitoring_url
    if url is None:
        return False

    def get(path: str) -> str:
        with urllib.request.urlopen(url + path, timeout=10) as response:
            return str(response.read().decode())

    loop = asyncio.get_running_loop()  # the endpoint asks this loop for its data
    health, metrics = [await loop.run_in_executor(None, get, p) for p in ("/health", "/metrics")]
    print(f"\n$ curl {url}/health   ->  status {json.loads(health)['status']!r}")
    print(f"$ curl {url}/metrics   (excerpt)")
    shown = ("aitbc_plugin_events_total", "aitbc_plugin_memory_bytes", "aitbc_plugin_up")
    for line in metrics.splitlines():
        if line.startswith(shown):
            print("  " + line)
    return json.loads(health)["status"] == "ok"


async def main() -> int:
    # The config reads the RPC password from the environment; it never shows up below.
    os.environ.setdefault("DEMO_RPC_PASSWORD", "correct-horse-battery-staple")
    manager = PluginManager.from_file(HERE / "config.yaml")
    print("Discovered plugins (no plugin code imported yet):")
    print(table(manager.discover_plugins(), ["name", "version", "source", "location"]))

    async with manager:
        print(f"\nStarted: {', '.join(manager.list_plugins())}")
        down = {n: r["last_error"] for n, r in manager.health_report().items()
                if r["status"] != "active"}  # fmt: skip
        if down:
            print(f"not active: {down}")
            return 1
        translator: Any = manager.plugins["translation-ai"]
        pairs = [{"source": "hello world", "target": "hallo welt"}]
        await manager.broadcast_event("translation.train", {"pairs": pairs})
        translated = await translator.predict({"text": "Hello World"})
        print("translation-ai after a broadcast:", translated)

        chain: Any = manager.plugins["bitcoin-integration"]
        tx = await chain.send_transaction({"from": "alice", "to": "bob", "amount": 20})
        print(f"bitcoin-integration sent {tx[:16]}..., bob has", await chain.get_balance("bob"))

        @click.group()
        def aitbc() -> None:
            """The host's command line."""

        mounted = mount_cli_plugins(manager, aitbc)
        result = CliRunner().invoke(aitbc, ["agent", "create", "--name", "demo-agent"])
        print(f"$ aitbc agent create --name demo-agent   (mounted: {mounted.mounted})")
        print(result.output.rstrip())

        health = await manager.check_health()
        seen = (health["my-plugin"]["health"] or {}).get("events_seen")
        print(f"my-plugin (isolated: {health['my-plugin']['isolated']}) saw {seen} events")
        rows = [
            {
                "plugin": name,
                "status": info["status"],
                "uptime_s": f"{(info['health'] or {}).get('uptime') or 0:.3f}",
                "memory_mib": f"{((info['health'] or {}).get('memory_usage') or 0) / 2**20:.1f}",
                "errors": info["error_count"],
                "start_ms": f"{info['timings'].get('start', 0) * 1000:.2f}",
            }
            for name, info in health.items()
        ]
        print("\nHealth:")
        print(table(rows, ["plugin", "status", "uptime_s", "memory_mib", "errors", "start_ms"]))
        healthy = all(info["status"] == "active" for info in health.values())
        healthy &= await show_monitoring(manager)
    print("\nAfter shutdown:", {n: manager.get_plugin_status(n).value for n in health})
    return 0 if healthy and len(health) == 4 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
