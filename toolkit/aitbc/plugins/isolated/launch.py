"""Starting an isolated plugin: its worker in the jail shaped by the plugin's declared
permissions, the plugin loaded there, and its handle (IsolatedPlugin) for the manager.

The permissions are the plugin's metadata's, which only its code can say: the worker
is first started with none, and when the plugin declares some that change the jail
(network, programs, writable paths), it is started once more with them.  A plugin
must therefore not need its permissions while it is imported and constructed."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import WorkerLimits, default_data_dir
from ..context import PluginContext
from ..errors import PluginLoadError
from ..events import PluginEventBus
from ..metadata import PluginMetadata
from ..permissions import Permissions
from ..sandbox.diagnosis import memory_reason
from ..sandbox.jail import interpreter_paths
from .link import Shape, Worker, start_worker
from .proxy import IsolatedPlugin

if TYPE_CHECKING:
    from .._host import Host
    from .._records import PluginRecord


def shape_for(permissions: list[str]) -> Shape:
    declared = Permissions.parse(permissions)
    kinds = {entry.kind for entry in declared.entries}
    paths = tuple(
        Path(_fixed_prefix(entry.target))
        for entry in declared.entries
        if entry.kind == "filesystem" and entry.target
    )
    anywhere = any(e.kind == "filesystem" and not e.target for e in declared.entries)
    return Shape("network" in kinds, "subprocess" in kinds, anywhere, paths)


def _fixed_prefix(pattern: str) -> str:
    """The folder above a path pattern's first wildcard: what the jail can bind."""
    parts = []
    for part in Path(pattern).parts:
        if "*" in part or "?" in part:
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "/"


def limits_of(host: Host, name: str) -> WorkerLimits:
    settings = host.settings.plugins.get(name)
    return settings.limits if settings is not None else host.settings.limits


def _readable(record: PluginRecord) -> list[Path]:
    """What the worker must read although the jail hides it (home, /tmp): this Python
    (its environment and the interpreter it is made of), where it finds the SDK and
    installed plugins, and a directory plugin's folder."""
    # sys.path[0] is the host script's folder, which a worker run with -I does not use
    # (and which may be /tmp itself: bound read-only, it would cover the jail's own).
    places = [*interpreter_paths(Path(sys.executable))]
    places += [Path(p) for p in sys.path[0 if getattr(sys.flags, "safe_path", False) else 1 :] if p]
    if record.found.source == "directory":
        places.append(Path(record.found.location))
    covering = {Path("/"), Path("/tmp"), Path("/var/tmp"), Path.home()}  # noqa: S108
    return [p for p in places if p.exists() and p.resolve() not in covering]


async def launch(host: Host, record: PluginRecord, config: dict[str, Any]) -> IsolatedPlugin:
    name = record.name
    limits = limits_of(host, name)
    data_dir = (host.settings.data_dir or default_data_dir()) / name
    data_dir.mkdir(parents=True, exist_ok=True)
    record.temp_dir = tempfile.mkdtemp(prefix=f"aitbc-{name}-")
    scratch = Path(record.temp_dir) / "work"
    scratch.mkdir()
    settings = host.settings.plugins.get(name)
    job = {"found": record.found.as_dict(), "config": config,
           "class": settings.class_name if settings else None}  # fmt: skip
    async with _starting(host):
        return await _launch(host, record, config, limits, data_dir, scratch, job)


def _starting(host: Host) -> asyncio.Semaphore:
    """At most a few workers starting at once, so that a host with many isolated
    plugins does not have all of them compete for the CPU, each within its own
    deadline: each one's ``lifecycle_timeout`` starts when its turn comes."""
    if host.starting is None:
        host.starting = asyncio.Semaphore(max(2, os.cpu_count() or 2))
    return host.starting


async def _launch(
    host: Host,
    record: PluginRecord,
    config: dict[str, Any],
    limits: WorkerLimits,
    data_dir: Path,
    scratch: Path,
    job: dict[str, Any],
) -> IsolatedPlugin:
    name = record.name
    shape = Shape()
    while True:
        worker = await start_worker(
            name=name, job=job, shape=shape, limits=limits, scratch=scratch, data_dir=data_dir,
            readable=_readable(record), callbacks=_callbacks(host, record),
        )  # fmt: skip
        ready = await _ready(host, worker, name)
        try:
            metadata = PluginMetadata(**ready["metadata"])
            wanted = shape_for(metadata.permissions)
        except BaseException:
            await worker.close()
            raise
        if wanted == shape:
            break
        await worker.close()  # started again, with what the plugin declares
        shape = wanted
    worker.on_death = lambda reason: host.worker_died(record, reason)
    context = PluginContext(
        config=config,
        data_dir=str(data_dir),
        temp_dir=str(scratch),
        logger=host.logger(f"aitbc.plugins.plugin.{name}"),
        event_bus=PluginEventBus(host.event_bus, host.dispatch, name),
        api_client=host.api_client,
    )
    schema = ready.get("config_schema")
    return IsolatedPlugin(context, worker, metadata, schema if isinstance(schema, dict) else {})


async def _ready(host: Host, worker: Worker, name: str) -> dict[str, Any]:
    timeout = host.settings.lifecycle_timeout
    try:
        ready = await asyncio.wait_for(asyncio.shield(worker.ready), timeout)
    except asyncio.TimeoutError:
        worker.stop(f"loading {name} took longer than {timeout:g}s")
        await worker.close()
        raise PluginLoadError(f"loading {name} took longer than {timeout:g}s") from None
    if ready.get("type") != "ready" or not isinstance(ready.get("metadata"), dict):
        await worker.close()
        error = str(ready.get("error") or "its worker said nothing")
        if error == "memory":
            error = memory_reason(worker.limits.memory_mb)
        if ready.get("died") or error.startswith("its worker"):
            error = f"loading {name} failed: {error}"
        raise PluginLoadError(error)
    return ready


def _callbacks(host: Host, record: PluginRecord) -> dict[str, Any]:
    name = record.name

    def forward(event_type: str) -> None:
        async def to_worker(kind: str, data: dict[str, Any]) -> None:
            plugin = record.plugin
            if isinstance(plugin, IsolatedPlugin):
                await plugin.forward(kind, data)

        record.unsubscribers.append(host.event_bus.subscribe(event_type, to_worker, name=name))

    return {
        "on_publish": lambda kind, data, depth: host.publish_from(name, kind, data, depth),
        "on_subscribe": forward,
        "on_refused": lambda permission, what: host.refused(record, permission, what),
    }
