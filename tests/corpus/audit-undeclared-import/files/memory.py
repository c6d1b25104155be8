"""How much memory the plugin's process holds (for its health report, one day)."""

from __future__ import annotations


def resident_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20
