"""The AITBC plugin SDK: the interfaces of the AITBC plugin specification, made real.

Plugins import ``BasePlugin``, ``PluginMetadata`` and ``PluginContext`` (and the
specialised ``CLIPlugin``, ``BlockchainPlugin`` and ``AIPlugin``); hosts run them
with ``PluginManager``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Exports load on first use (PEP 562): `import aitbc.plugins` stays cheap for tools
# that only need a piece of it, and a plugin pays only for what it imports.
_EXPORTS = {
    "AIPlugin": ".kinds",
    "AITBC_VERSION": ".metadata",
    "BasePlugin": ".base",
    "BlockchainPlugin": ".kinds",
    "CLIPlugin": ".kinds",
    "ConfigError": ".errors",
    "DependencyError": ".errors",
    "DiscoveredPlugin": ".discovery",
    "ENTRY_POINT_GROUP": ".discovery",
    "EventBus": ".events",
    "IllegalTransitionError": ".errors",
    "PLUGIN_KINDS": ".kinds",
    "kind_of": ".kinds",
    "LegacyPluginAdapter": ".legacy",
    "ManagerConfig": ".config",
    "MetadataError": ".errors",
    "MountResult": ".cli",
    "Permission": ".permissions",
    "Permissions": ".permissions",
    "PluginContext": ".context",
    "PluginError": ".errors",
    "PluginLoadError": ".errors",
    "PluginManager": ".manager",
    "PluginMetadata": ".metadata",
    "PluginNotFoundError": ".errors",
    "PluginRegistry": ".registry",
    "PluginSettings": ".config",
    "PluginStatus": ".status",
    "RegistryEntry": ".registry",
    "RegistryError": ".errors",
    "SecretStr": ".secrets",
    "TRANSITIONS": ".status",
    "mount_cli_plugins": ".cli",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .base import BasePlugin
    from .cli import MountResult, mount_cli_plugins
    from .config import ManagerConfig, PluginSettings
    from .context import PluginContext
    from .discovery import ENTRY_POINT_GROUP, DiscoveredPlugin
    from .errors import (
        ConfigError,
        DependencyError,
        IllegalTransitionError,
        MetadataError,
        PluginError,
        PluginLoadError,
        PluginNotFoundError,
        RegistryError,
    )
    from .events import EventBus
    from .kinds import PLUGIN_KINDS, AIPlugin, BlockchainPlugin, CLIPlugin, kind_of
    from .legacy import LegacyPluginAdapter
    from .manager import PluginManager
    from .metadata import AITBC_VERSION, PluginMetadata
    from .permissions import Permission, Permissions
    from .registry import PluginRegistry, RegistryEntry
    from .secrets import SecretStr
    from .status import TRANSITIONS, PluginStatus

__all__ = [
    "AITBC_VERSION",
    "ENTRY_POINT_GROUP",
    "PLUGIN_KINDS",
    "TRANSITIONS",
    "AIPlugin",
    "BasePlugin",
    "BlockchainPlugin",
    "CLIPlugin",
    "ConfigError",
    "DependencyError",
    "DiscoveredPlugin",
    "EventBus",
    "IllegalTransitionError",
    "LegacyPluginAdapter",
    "ManagerConfig",
    "MetadataError",
    "MountResult",
    "Permission",
    "Permissions",
    "PluginContext",
    "PluginError",
    "PluginLoadError",
    "PluginManager",
    "PluginMetadata",
    "PluginNotFoundError",
    "PluginRegistry",
    "PluginSettings",
    "PluginStatus",
    "RegistryEntry",
    "RegistryError",
    "SecretStr",
    "__version__",
    "kind_of",
    "mount_cli_plugins",
]
