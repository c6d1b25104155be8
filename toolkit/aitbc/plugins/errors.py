"""The SDK's exception hierarchy: every error the SDK raises on purpose is a PluginError."""

from __future__ import annotations


class PluginError(Exception):
    """Base class of every error the SDK raises on purpose."""


class MetadataError(PluginError, ValueError):
    """Invalid :class:`PluginMetadata`; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"invalid plugin metadata: {field}: {message}")


class ConfigError(PluginError, ValueError):
    """Invalid manager or plugin configuration; ``where`` is a dotted path into the document."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"invalid configuration at {where}: {message}" if where else message)


class IllegalTransitionError(PluginError, RuntimeError):
    """A lifecycle transition the state machine does not allow."""


class PluginNotFoundError(PluginError, LookupError):
    """No plugin of that name is configured, installed or in a plugin directory."""


class PluginLoadError(PluginError):
    """A plugin could not be imported, constructed or validated."""


class DependencyError(PluginError):
    """A plugin dependency is missing, disabled, incompatible or part of a cycle."""


class RegistryError(PluginError, ValueError):
    """A registry document that does not follow the spec's Registry Format."""
