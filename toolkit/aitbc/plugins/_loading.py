"""Turning a discovered plugin into a validated instance: import (off the event
loop), context, construction, metadata, compatibility and config checks."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ._records import PluginRecord
from ._timeouts import run_with_timeout
from .base import BasePlugin
from .config import default_data_dir, validate_document
from .context import PluginContext
from .discovery import DiscoveredPlugin, is_module_imported, load_plugin_class
from .errors import ConfigError, MetadataError, PluginError, PluginLoadError
from .events import PluginEventBus
from .legacy import LegacyPluginAdapter, looks_like_legacy_plugin
from .metadata import parse_dependency
from .status import PluginStatus

_S = PluginStatus

if TYPE_CHECKING:
    from .manager import PluginManager


async def _import(manager: PluginManager, found: DiscoveredPlugin) -> type[Any]:
    if is_module_imported(found):
        return load_plugin_class(found)
    # Plugin imports run off the loop: a slow import never delays other plugins' events.
    loop = asyncio.get_running_loop()
    return await run_with_timeout(
        loop.run_in_executor(None, load_plugin_class, found), manager.settings.lifecycle_timeout
    )


async def instantiate(manager: PluginManager, record: PluginRecord) -> None:
    """Import, construct and validate; the plugin ends LOADING (or the record ERROR)."""
    name = record.name
    settings = manager.settings.plugins.get(name)
    started = time.perf_counter()
    try:
        if settings is not None and not settings.enabled:
            raise PluginLoadError(f"{name} is disabled in the configuration (enabled: false)")
        try:
            cls = await _import(manager, record.found)
        except asyncio.TimeoutError:
            raise PluginLoadError(
                f"importing {record.found.location} took longer than "
                f"{manager.settings.lifecycle_timeout:g}s"
            ) from None
        config = manager.settings.plugin_config(name, manager._redactor, manager._environ)
        record.plugin = _construct(manager, cls, name, config, record)
        plugin = record.plugin
        if plugin.metadata.name != name:
            raise PluginLoadError(
                f"{record.found.location} calls itself {plugin.metadata.name!r}, not {name!r}"
            )
        incompatible = plugin.metadata.incompatibility()
        if incompatible:
            raise PluginLoadError(f"{name} {plugin.metadata.version} {incompatible}")
        schema = plugin.get_config_schema()
        if schema:
            validate_document(config, schema, f"plugins.{name}.config", manager._redactor)
        deps = [parse_dependency(d) for d in plugin.metadata.dependencies]
        if settings is not None:
            deps += [parse_dependency(d) for d in settings.dependencies]
        record.set_dependencies(deps)
        plugin.status = _S.LOADING
    except (PluginError, ConfigError) as exc:
        manager._discard(record)
        manager._fail(record, str(exc))
        raise
    except Exception as exc:
        manager._discard(record)
        reason = f"loading {name} failed: {type(exc).__name__}: {exc}"
        manager._fail(record, reason)
        raise PluginLoadError(reason) from exc
    finally:
        record.timings["load"] = time.perf_counter() - started
    manager.plugins[name] = record.plugin


def _construct(
    manager: PluginManager, cls: type[Any], name: str, config: dict[str, Any], record: PluginRecord
) -> BasePlugin:
    data_root = manager.settings.data_dir or default_data_dir()
    data_dir = data_root / name
    data_dir.mkdir(parents=True, exist_ok=True)
    record.temp_dir = tempfile.mkdtemp(prefix=f"aitbc-{name}-")
    context = PluginContext(
        config=config,
        data_dir=str(data_dir),
        temp_dir=record.temp_dir,
        logger=manager._logger(f"aitbc.plugins.plugin.{name}"),
        event_bus=PluginEventBus(manager.event_bus, manager._dispatch, name),
        api_client=manager.api_client,
    )
    if isinstance(cls, type) and issubclass(cls, BasePlugin):
        try:
            return cls(context)
        except MetadataError:
            raise
        except Exception as exc:
            raise PluginLoadError(
                f"constructing {cls.__name__} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if looks_like_legacy_plugin(cls):
        return LegacyPluginAdapter(cls(), context)
    raise PluginLoadError(f"{record.found.location} is not a BasePlugin subclass")
