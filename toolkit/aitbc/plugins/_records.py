"""What the manager knows about each plugin, as plain data."""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from ._metrics import LatencyHistogram
from .base import BasePlugin
from .discovery import DiscoveredPlugin
from .errors import PluginError
from .status import PluginStatus


class RecordedFailure(PluginError):
    """A lifecycle step failed (or loading, or a dependency cycle); the plugin's
    record already holds the reason."""


@dataclass
class PluginRecord:
    """One plugin's state in a manager: its instance (while loaded) and its history."""

    name: str
    found: DiscoveredPlugin
    plugin: BasePlugin | None = None
    # The status to report while there is no instance: UNLOADED, or ERROR when the
    # plugin could not even be constructed.
    absent_status: PluginStatus = PluginStatus.UNLOADED
    error: str | None = None
    error_count: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    health: dict[str, Any] | None = None
    dependencies: dict[str, SpecifierSet] = field(default_factory=dict)
    temp_dir: str | None = None
    # Every failure (lifecycle, health, events) with its time: the error rate.
    failures: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=1000))
    # Isolated plugins: what the kernel refused them, worker restarts, and the host-bus
    # subscriptions made for their worker (removed when the instance goes).
    refusals: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    restarts: int = 0
    events: int = 0  # deliveries to it
    event_errors: int = 0  # deliveries it failed
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    unsubscribers: list[Callable[[], None]] = field(default_factory=list)

    def note_failure(self, reason: str) -> None:
        self.failures.append((time.monotonic(), reason))

    def recent_failures(self, window: float) -> int:
        since = time.monotonic() - window
        return sum(1 for at, _ in self.failures if at >= since)

    @property
    def last_failure(self) -> str | None:
        return self.failures[-1][1] if self.failures else None

    @property
    def status(self) -> PluginStatus:
        return self.plugin.status if self.plugin is not None else self.absent_status

    def set_dependencies(self, requirements: list[Requirement]) -> None:
        merged: dict[str, SpecifierSet] = {}
        for req in requirements:
            merged[req.name] = merged.get(req.name, SpecifierSet()) & req.specifier
        self.dependencies = merged

    def release(self) -> None:
        """Forget the instance (an isolated one's worker is killed, if still there) and
        remove its temporary directory."""
        for unsubscribe in self.unsubscribers:
            unsubscribe()
        self.unsubscribers.clear()
        worker = getattr(self.plugin, "worker", None)
        if worker is not None:
            worker.stop()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir = None
        self.plugin = None
        self.absent_status = PluginStatus.UNLOADED

    def describe(self, window: float = 60.0, degraded_after: int = 5) -> dict[str, Any]:
        plugin = self.plugin
        recent = self.recent_failures(window)
        worker = getattr(plugin, "worker", None)
        return {
            "name": self.name,
            "status": self.status.value,
            "version": plugin.metadata.version if plugin is not None else self.found.version,
            "source": self.found.source,
            "location": self.found.location,
            "health": self.health,
            "timings": dict(self.timings),
            "error_count": self.error_count + (plugin.error_count if plugin is not None else 0),
            "last_error": self.error or self.last_failure,
            "errors_in_window": recent,
            "degraded": recent >= degraded_after,
            "isolated": worker is not None,
            "restarts": self.restarts,
            "refused": list(self.refusals),
        }

    def metrics(self) -> dict[str, Any]:
        """Its counters and measurements; memory is its worker's (isolated only: an
        in-process plugin shares the host's, which the host's metrics give)."""
        worker = getattr(self.plugin, "worker", None)
        return {
            "status": self.status.value,
            "step_seconds": dict(self.timings),
            "events": self.events,
            "event_errors": self.event_errors,
            "errors": self.error_count + (self.plugin.error_count if self.plugin else 0),
            "restarts": self.restarts,
            "memory_bytes": worker.memory_bytes() if worker is not None else None,
            "health": self.health,
            "event_latency_seconds": self.latency.as_dict(),
            "isolated": worker is not None,
        }
