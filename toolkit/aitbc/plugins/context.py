"""PluginContext: what a host hands each plugin at construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PluginContext:
    """Runtime context provided to plugins"""

    config: dict[str, Any]
    data_dir: str
    temp_dir: str
    logger: Any
    event_bus: Any
    api_client: Any = None
