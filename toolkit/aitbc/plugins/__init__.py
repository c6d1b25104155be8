"""The AITBC plugin SDK: the interfaces of the AITBC plugin specification, made real.

Plugins import ``BasePlugin``, ``PluginMetadata`` and ``PluginContext`` (and the
specialised ``CLIPlugin``, ``BlockchainPlugin`` and ``AIPlugin``); hosts run them
with ``PluginManager``.
"""

from ._version import __version__
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
from .kinds import AIPlugin, BlockchainPlugin, CLIPlugin
from .legacy import LegacyPluginAdapter
from .manager import PluginManager
from .metadata import AITBC_VERSION, PluginMetadata
from .registry import PluginRegistry, RegistryEntry
from .secrets import SecretStr
from .status import TRANSITIONS, PluginStatus

__all__ = [
    "AITBC_VERSION",
    "ENTRY_POINT_GROUP",
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
    "mount_cli_plugins",
]
