"""What the manager measures per plugin, as plain data: the event-handling latency
histogram (its buckets are Prometheus's defaults, so /metrics needs no conversion)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

#: Upper bounds in seconds (prometheus_client's default buckets), then +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: In-process deliveries are timed one in this many (timing each handler of every
#: broadcast would cost more than a thousand trivial handlers take); counts are exact.
LATENCY_SAMPLE_EVERY = 8


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def as_dict(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for count in self.counts:
            running += count
            cumulative.append(running)
        bounds = [*map(str, LATENCY_BUCKETS), "+Inf"]
        return {"buckets": dict(zip(bounds, cumulative, strict=True)), "count": running,
                "sum": self.total}  # fmt: skip
