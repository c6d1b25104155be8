"""Turning a discovered plugin into a validated instance: import (off the event
loop), context, construction, metadata, compatibility and config checks."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from ._host import Host
from ._instances import make_instance
from ._records import PluginRecord
from ._timeouts import EXITS, PluginExited, run_with_timeout
from .base import BasePlugin
from .config import default_data_dir, validate_document
from .context import PluginContext
from .discovery import is_module_imported, load_plugin_class
from .errors import PluginError, PluginLoadError
from .events import PluginEventBus
from .isolated.launch import launch
from .metadata import parse_dependency
from .status import PluginStatus

_S = PluginStatus


def instantiate_now(host: Host, record: PluginRecord) -> bool:
    """Instantiate without awaiting when no plugin code needs importing (the common case
    for a host with many plugins: no task per plugin).  False, doing nothing, when an
    import is needed: then await :func:`instantiate`."""
    if _isolated(host, record):
        return False
    if _enabled(host, record) and not is_module_imported(record.found):
        return False
    with _recording(host, record):
        _check_enabled(host, record)
        _build(host, record, load_plugin_class(record.found, _class_name(host, record)))
    return True


async def instantiate(host: Host, record: PluginRecord) -> None:
    """Import, construct and validate; the plugin ends LOADING (or the record ERROR)."""
    with _recording(host, record):
        _check_enabled(host, record)
        if _isolated(host, record):  # its code runs in its worker, never here
            config = host.settings.plugin_config(record.name, host.redactor, host.environ)
            record.plugin = await launch(host, record, config)
            _validate(host, record, record.plugin, config)
        else:
            _build(host, record, await _import(host, record))


def _isolated(host: Host, record: PluginRecord) -> bool:
    return host.settings.isolation_of(record.name) == "process"


def _enabled(host: Host, record: PluginRecord) -> bool:
    settings = host.settings.plugins.get(record.name)
    return settings is None or settings.enabled


class PluginDisabled(PluginLoadError):
    """Refused, not failed: the plugin stays UNLOADED and the reason is kept."""


def _check_enabled(host: Host, record: PluginRecord) -> None:
    if not _enabled(host, record):
        raise PluginDisabled(f"{record.name} is disabled in the configuration (enabled: false)")


def _class_name(host: Host, record: PluginRecord) -> str | None:
    settings = host.settings.plugins.get(record.name)
    return settings.class_name if settings is not None else None


async def _import(host: Host, record: PluginRecord) -> Any:
    found, class_name = record.found, _class_name(host, record)
    if is_module_imported(found):
        return load_plugin_class(found, class_name)
    # Plugin imports run off the loop: a slow import never delays other plugins' events.
    loop = asyncio.get_running_loop()
    try:
        return await run_with_timeout(
            loop.run_in_executor(None, load_plugin_class, found, class_name),
            host.settings.lifecycle_timeout,
        )
    except asyncio.TimeoutError:
        raise PluginLoadError(
            f"importing {found.location} took longer than {host.settings.lifecycle_timeout:g}s"
        ) from None


@contextlib.contextmanager
def _recording(host: Host, record: PluginRecord) -> Iterator[None]:
    """On failure: discard the instance, put the reason in the record, raise a PluginError.
    The time taken is kept either way."""
    started = time.perf_counter()
    try:
        yield
    except PluginDisabled as exc:
        record.error = host.errors[record.name] = str(exc)
        raise
    except PluginError as exc:  # ConfigError included
        host.discard(record)
        host.fail(record, str(exc))
        raise
    except (Exception, *EXITS) as exc:  # sys.exit() at import or in the constructor too
        host.discard(record)
        shown: BaseException = exc.original if isinstance(exc, PluginExited) else exc
        reason = f"loading {record.name} failed: {type(shown).__name__}: {shown}"
        host.fail(record, reason)
        raise PluginLoadError(reason) from exc
    finally:
        record.timings["load"] = time.perf_counter() - started
    assert record.plugin is not None
    host.plugins[record.name] = record.plugin


def _build(host: Host, record: PluginRecord, cls: Any) -> None:
    name = record.name
    config = host.settings.plugin_config(name, host.redactor, host.environ)
    record.plugin = plugin = _construct(host, cls, name, config, record)
    _validate(host, record, plugin, config)


def _validate(host: Host, record: PluginRecord, plugin: BasePlugin, config: dict[str, Any]) -> None:
    name = record.name
    if plugin.metadata.name != name:
        raise PluginLoadError(
            f"{record.found.location} calls itself {plugin.metadata.name!r}, not {name!r}"
        )
    incompatible = plugin.metadata.incompatibility(host.settings.aitbc_version)
    if incompatible:
        raise PluginLoadError(f"{name} {plugin.metadata.version} {incompatible}")
    schema = plugin.get_config_schema()
    if schema:
        validate_document(config, schema, f"plugins.{name}.config", host.redactor)
    deps = [parse_dependency(d) for d in plugin.metadata.dependencies]
    settings = host.settings.plugins.get(name)
    if settings is not None:
        deps += [parse_dependency(d) for d in settings.dependencies]
    record.set_dependencies(deps)
    plugin.status = _S.LOADING


def _construct(
    host: Host, cls: Any, name: str, config: dict[str, Any], record: PluginRecord
) -> BasePlugin:
    data_root = host.settings.data_dir or default_data_dir()
    data_dir = data_root / name
    if not data_dir.is_dir():  # usually there from an earlier run: a stat, not a failed mkdir
        data_dir.mkdir(parents=True, exist_ok=True)
    record.temp_dir = tempfile.mkdtemp(prefix=f"aitbc-{name}-")
    context = PluginContext(
        config=config,
        data_dir=str(data_dir),
        temp_dir=record.temp_dir,
        logger=host.logger(f"aitbc.plugins.plugin.{name}"),
        event_bus=PluginEventBus(host.event_bus, host.dispatch, name),
        api_client=host.api_client,
    )
    return make_instance(cls, context, record.found.location)
