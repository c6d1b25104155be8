"""The host's monitoring as an operator scrapes it: a real manager serving /health and
/metrics over real HTTP on loopback, /metrics read back by prometheus_client's own
parser; the same numbers as plain data from manager.metrics()."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import ConfigError, PluginManager
from aitbc.plugins._metrics import LATENCY_SAMPLE_EVERY
from aitbc.plugins.sandbox.jail import isolation
from prometheus_client.parser import text_string_to_metric_families
from test_host_isolated import forget_modules_under, write_plugin

EVENTS = 2 * LATENCY_SAMPLE_EVERY


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_metrics_over_http_parsed_by_prometheus_client(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "steady")
    write_plugin(plugins, "failing", event="raise ValueError('cannot')")
    write_plugin(plugins, "walled")
    walled = {"isolation": "process"} if isolation().jailed else {}
    config = {
        "plugins": {"steady": {"enabled": True}, "failing": {"enabled": True},
                    "walled": {"enabled": True, **walled}},
        "plugin_paths": [str(plugins)], "data_dir": str(tmp_path / "data"),
        "health_check_interval": 3600, "monitoring": {"port": 0},
    }  # fmt: skip

    async def scrape() -> dict[str, Any]:
        async with PluginManager(config) as manager:
            for height in range(EVENTS):
                await manager.broadcast_event("block.new", {"height": height})
            await manager.check_health()
            url = manager.monitoring_url
            assert url is not None and url.startswith("http://127.0.0.1:")
            loop = asyncio.get_running_loop()  # the server asks this loop for its data
            pages = {path: await loop.run_in_executor(None, fetch, url + path)
                     for path in ("/metrics", "/health", "/nothing")}  # fmt: skip
            return {"pages": pages, "data": manager.metrics(), "url": url}

    try:
        seen = asyncio.run(scrape())
    finally:
        forget_modules_under(tmp_path)
    status, kind, text = seen["pages"]["/metrics"]
    assert status == 200 and kind.startswith("text/plain; version=")
    got = samples(text)
    for name in ("steady", "failing", "walled"):
        assert got[("aitbc_plugin_events_total", (("plugin", name),))] == EVENTS
        assert got[("aitbc_plugin_up", (("plugin", name), ("status", "active")))] == 1.0
        timed = ("aitbc_plugin_event_latency_seconds_count", (("plugin", name),))
        assert got[timed] == EVENTS // LATENCY_SAMPLE_EVERY  # sampled deliveries
        assert ("aitbc_plugin_step_duration_seconds", (("plugin", name), ("step", "start"))) in got
    assert got[("aitbc_plugin_event_errors_total", (("plugin", "failing"),))] == EVENTS
    assert got[("aitbc_plugin_event_errors_total", (("plugin", "steady"),))] == 0
    assert got[("aitbc_host_memory_bytes", ())] > 0
    if walled:  # its own worker's memory, read from /proc; in-process ones have none
        assert got[("aitbc_plugin_memory_bytes", (("plugin", "walled"),))] > 1_000_000
        assert ("aitbc_plugin_memory_bytes", (("plugin", "steady"),)) not in got
    # The same numbers as plain data.
    data = seen["data"]["plugins"]
    assert data["failing"]["event_errors"] == EVENTS and data["steady"]["events"] == EVENTS
    assert data["walled"]["isolated"] is bool(walled)

    status, kind, body = seen["pages"]["/health"]
    health = json.loads(body)
    assert status == 200 and kind == "application/json"
    assert health["status"] == "degraded" and health["unhealthy"] == ["failing"]
    assert health["plugins"]["steady"]["status"] == "active"
    assert seen["pages"]["/nothing"][0] == 404
    # After shutdown nothing listens any more.
    with pytest.raises(OSError):
        urllib.request.urlopen(seen["url"] + "/health", timeout=2)


def test_a_port_in_use_is_one_clear_config_error(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    config = {"plugins": {}, "data_dir": str(tmp_path), "monitoring": {"port": port}}

    async def start() -> None:
        manager = PluginManager(config)
        try:
            await manager.startup()
        finally:
            await manager.shutdown()

    with taken, pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
        asyncio.run(start())


@pytest.mark.parametrize(
    ("monitoring", "where"),
    [
        ({"port": 70000}, "config.monitoring.port"),
        ({"host": ""}, "config.monitoring.host"),
        ({"bind": "0.0.0.0"}, "config.monitoring"),
    ],
)
def test_bad_monitoring_settings_are_refused(monitoring: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PluginManager({"plugins": {}, "monitoring": monitoring})
    assert where in str(refused.value)
