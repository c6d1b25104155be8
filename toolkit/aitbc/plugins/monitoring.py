"""The host's monitoring endpoint: ``/health`` as JSON and ``/metrics`` in Prometheus's
text format, written by prometheus_client (the ``monitoring`` extra), from the
manager's own plain data (:meth:`PluginManager.metrics`, ``health_report``).

Served from a thread (the standard library's WSGI server), bound to loopback unless
the configuration says otherwise; each request takes its snapshot on the manager's
event loop, so it never reads state the loop is changing.  Turned on by the config's
``monitoring`` section, started by ``startup()`` and stopped by ``shutdown()``.
"""

from __future__ import annotations

import asyncio
import json
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .errors import ConfigError

SNAPSHOT_TIMEOUT_S = 5.0
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Watched(Protocol):
    """What the endpoint reads (a PluginManager)."""

    def health_report(self) -> dict[str, dict[str, Any]]: ...

    def metrics(self) -> dict[str, Any]: ...


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core  # the metric families: not imported by the package
    except ImportError:
        raise ConfigError(
            "monitoring needs prometheus_client: pip install 'aitbc-plugins[monitoring]'",
            "config.monitoring",
        ) from None
    return prometheus_client


class MonitoringServer:
    """``/health`` and ``/metrics`` for one manager, on ``host:port`` (0: any free)."""

    def __init__(self, manager: Watched, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.manager = manager
        self.host, self.port = host, port
        self._prometheus = _prometheus()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve (from the manager's event loop)."""
        self._loop = asyncio.get_running_loop()
        try:
            server = make_server(self.host, self.port, self._app, _Server, _QuietHandler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}",
                              "config.monitoring") from None  # fmt: skip
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="aitbc-monitoring", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- requests (in the server's threads) -------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        assert self._loop is not None

        async def take() -> dict[str, Any]:
            return {"health": self.manager.health_report(), "metrics": self.manager.metrics()}

        return asyncio.run_coroutine_threadsafe(take(), self._loop).result(SNAPSHOT_TIMEOUT_S)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path not in ("/health", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /health or /metrics\n"]
        try:
            snapshot = self._snapshot()
        except Exception:  # the loop is gone or too busy: say so, never hang the scraper
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"the host did not answer in time\n"]
        if path == "/health":
            body = json.dumps(_health(snapshot["health"]), default=str).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        registry = self._prometheus.CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._prometheus, snapshot["metrics"]))
        start_response("200 OK", [("Content-Type", self._prometheus.CONTENT_TYPE_LATEST)])
        return [self._prometheus.generate_latest(registry)]


def _health(report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    bad = sorted(n for n, r in report.items() if r["status"] == "error" or r["degraded"])
    return {"status": "degraded" if bad else "ok", "unhealthy": bad, "plugins": report}


class _Collector:
    """One scrape's metrics, from one snapshot of the manager's data."""

    def __init__(self, prometheus: Any, metrics: dict[str, Any]) -> None:
        self._core = prometheus.core
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        core, plugins = self._core, self._metrics["plugins"]
        host = self._metrics["host"]
        up = core.GaugeMetricFamily("aitbc_plugin_up", "1 when the plugin is active",
                                    labels=["plugin", "status"])  # fmt: skip
        steps = core.GaugeMetricFamily(
            "aitbc_plugin_step_duration_seconds", "Duration of the last lifecycle step",
            labels=["plugin", "step"],
        )  # fmt: skip
        events = core.CounterMetricFamily("aitbc_plugin_events", "Events delivered",
                                          labels=["plugin"])  # fmt: skip
        event_errors = core.CounterMetricFamily(
            "aitbc_plugin_event_errors", "Events the plugin failed to handle", labels=["plugin"]
        )
        errors = core.CounterMetricFamily("aitbc_plugin_errors", "Failures of every kind",
                                          labels=["plugin"])  # fmt: skip
        restarts = core.CounterMetricFamily("aitbc_plugin_restarts", "Worker restarts",
                                            labels=["plugin"])  # fmt: skip
        memory = core.GaugeMetricFamily(
            "aitbc_plugin_memory_bytes",
            "Resident memory of the plugin's worker (isolated)",
            labels=["plugin"],
        )
        healthy = core.GaugeMetricFamily(
            "aitbc_plugin_healthy",
            "1 when the last health check reported active",
            labels=["plugin"],
        )
        latency = core.HistogramMetricFamily(
            "aitbc_plugin_event_latency_seconds",
            "Event handling time (in-process: sampled deliveries)", labels=["plugin"],
        )  # fmt: skip
        for name, data in sorted(plugins.items()):
            up.add_metric([name, data["status"]], 1.0 if data["status"] == "active" else 0.0)
            for step, seconds in sorted(data["step_seconds"].items()):
                steps.add_metric([name, step], seconds)
            events.add_metric([name], data["events"])
            event_errors.add_metric([name], data["event_errors"])
            errors.add_metric([name], data["errors"])
            restarts.add_metric([name], data["restarts"])
            if data["memory_bytes"] is not None:
                memory.add_metric([name], data["memory_bytes"])
            health = data["health"] or {}
            if health:
                healthy.add_metric([name], 1.0 if health.get("status") == "active" else 0.0)
            hist = data["event_latency_seconds"]
            latency.add_metric([name], list(hist["buckets"].items()), hist["sum"])
        dropped = core.CounterMetricFamily("aitbc_host_dropped_events",
                                           "Events dropped as nested too deep",
                                           labels=["event_type"])  # fmt: skip
        for event_type, count in sorted(host["dropped_events"].items()):
            dropped.add_metric([event_type], count)
        host_memory = core.GaugeMetricFamily("aitbc_host_memory_bytes",
                                             "Resident memory of the host process")  # fmt: skip
        host_memory.add_metric([], host["memory_bytes"])
        yield from (up, steps, events, event_errors, errors, restarts, memory, healthy, latency,
                    dropped, host_memory)  # fmt: skip
