"""A plugin instance from what its module gives (a class, a legacy class, a
``create_plugin(context)`` factory): one place, so the host's process and an isolated
worker (which imports only this, not the manager) say the same words for a failure."""

from __future__ import annotations

from typing import Any

from ._timeouts import EXITS
from .base import BasePlugin
from .context import PluginContext
from .errors import MetadataError, PluginLoadError
from .legacy import LegacyPluginAdapter, looks_like_legacy_plugin


def make_instance(cls: Any, context: PluginContext, location: str) -> BasePlugin:
    """The plugin, from what its module gave (a class, a legacy class, a factory); the
    same words for a failure in the host's process and in an isolated worker."""
    if isinstance(cls, type) and issubclass(cls, BasePlugin):
        try:
            return cls(context)
        except MetadataError:
            raise
        except (Exception, *EXITS) as exc:
            raise PluginLoadError(
                f"constructing {cls.__name__} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(cls, type) and looks_like_legacy_plugin(cls):
        return LegacyPluginAdapter(cls(), context)
    if callable(cls) and not isinstance(cls, type):  # create_plugin(context)
        try:
            made = cls(context)
        except (Exception, *EXITS) as exc:
            raise PluginLoadError(
                f"create_plugin(context) failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(made, BasePlugin):
            return made
        raise PluginLoadError(f"create_plugin(context) returned {type(made).__name__}, "
                              "not a BasePlugin")  # fmt: skip
    raise PluginLoadError(f"{location} is not a BasePlugin subclass")
