"""An isolated plugin's worker: the process its code runs in, never the host's.

Started by the host (:mod:`.link`) as ``python -I -B -m aitbc.plugins.isolated``, in the
kernel jail where the machine has one.  The job is the first line of stdin (JSON: the
plugin to load, its config and folders, its limits, what it may do, the descriptor of
the answer channel).  The worker limits itself (address space, CPU time, open files;
no program execution without a ``subprocess`` permission, by seccomp), dies with its
parent, loads and constructs the plugin exactly as the host would, and says
``ready`` (with the plugin's metadata and config schema) or ``failed``.  Then each line
of stdin is a request, run as its own task so events and health checks overlap as they
do in a host::

    > {"id": 3, "op": "start"}
    {"type": "answer", "id": 3, "true": true, "repr": "True"}
    > {"id": 4, "op": "handle_event", "event": "block", "data": {...}, "depth": 1}
    {"type": "publish", "event": "tx", "data": {...}, "depth": 2}   (the plugin published)
    {"type": "answer", "id": 4, "raised": "ValueError", "message": "bad block"}

Everything the worker says is the plugin's word (its code shares the process): the host
believes an answer only as what this plugin says about itself, and watches the process
from outside for the rest.  End of stdin means the host is gone or done: the worker exits.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..events import EventBus, EventHandler, deliver
from ..sandbox.worker import lower_limits
from .seccomp import deny_exec

_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("aitbc_worker_depth", default=0)
_LIFECYCLE = frozenset({"initialize", "start", "stop", "cleanup"})
_MAX_NOTES = 50  # refusals reported per worker: a loop of them is one story
_PR_SET_PDEATHSIG = 1


class _Channel:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.notes = 0

    def send(self, kind: str, **fields: Any) -> None:
        data = json.dumps({"type": kind, **fields}, separators=(",", ":"), default=repr)
        payload = data.encode("ascii") + b"\n"
        try:
            while payload:
                payload = payload[os.write(self.fd, payload) :]
        except OSError:
            os._exit(70)  # the host is gone: nobody to work for

    def refused(self, permission: str, what: str) -> None:
        if self.notes < _MAX_NOTES:
            self.notes += 1
            self.send("refused", permission=permission, what=what)


def _die_with_parent(parent: int | None) -> None:
    """SIGKILL when the parent dies: the host, or in the jail bubblewrap, which itself
    dies with the host (--die-with-parent) and takes its PID namespace with it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if parent is not None and os.getppid() != parent:  # the host died before the call
            os._exit(70)


def _watch(channel: _Channel, may: dict[str, Any]) -> None:
    """Record what the kernel refuses (the refusing is the jail's and seccomp's): the
    host shows it beside the plugin.  An audit hook cannot be removed once added."""
    network, execute = bool(may["network"]), bool(may["subprocess"])
    writable = tuple(str(p).rstrip("/") + "/" for p in may["writable"])
    anywhere = bool(may["filesystem"])

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect" and not network:
            channel.refused("network", f"connect to {args[1]!r}")
        elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.system"):
            if not execute:
                channel.refused("subprocess", f"run {str(args[0])[:200]}")
        elif event == "open" and not anywhere and len(args) >= 3:
            path, flags = args[0], args[2]
            if (
                isinstance(path, str)
                and isinstance(flags, int)
                and flags & (os.O_WRONLY | os.O_RDWR)
            ):
                full = os.path.abspath(path)  # noqa: PTH100 - the path as asked, unresolved
                if not (full + "/").startswith(writable):
                    channel.refused("filesystem", f"write {full}")

    sys.addaudithook(hook)


def main() -> None:
    # The host sends nothing after the job until the worker says ready, so no request
    # can be left in sys.stdin's buffer when the event loop takes the descriptor over.
    job = json.loads(sys.stdin.buffer.readline())
    channel = _Channel(int(job["channel"]))
    _die_with_parent(job.get("parent"))
    limits = job["limits"]
    lower_limits(limits["memory_mb"], limits["cpu_s"], limits["open_files"])
    may = job["may"]
    if not may["subprocess"]:
        why = deny_exec()
        if why is not None:
            channel.send("note", message=f"programs are not refused here: {why}")
    _watch(channel, may)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(_serve(job, channel))
    os._exit(0)  # threads the plugin left must not keep a finished worker alive


async def _serve(job: dict[str, Any], channel: _Channel) -> None:
    plugin = await _load(job, channel)
    if plugin is None:
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    running: dict[int, asyncio.Task[None]] = {}
    while line := await reader.readline():
        request = json.loads(line)
        if request["op"] == "cancel":
            task = running.get(request["target"])
            if task is not None:
                task.cancel()
            continue
        ident = request["id"]
        task = running[ident] = asyncio.create_task(_answer(plugin, request, channel))
        task.add_done_callback(functools.partial(_forget, running, ident))


def _forget(running: dict[int, asyncio.Task[None]], ident: int, _: object) -> None:
    running.pop(ident, None)


async def _load(job: dict[str, Any], channel: _Channel) -> Any:
    from .._instances import make_instance
    from ..context import PluginContext
    from ..discovery import DiscoveredPlugin, load_plugin_class
    from ..errors import PluginError

    found = DiscoveredPlugin(**job["found"])
    try:
        cls = load_plugin_class(found, job.get("class"))
        context = PluginContext(
            config=job["config"],
            data_dir=job["data_dir"],
            temp_dir=job["temp_dir"],
            logger=logging.getLogger(f"aitbc.plugins.plugin.{found.name}"),
            event_bus=_WorkerBus(channel, found.name),
            api_client=None,
        )
        plugin = make_instance(cls, context, found.location)
        schema = plugin.get_config_schema()
        channel.send("ready", metadata=plugin.metadata.to_dict(), config_schema=schema)
        return plugin
    except PluginError as exc:
        channel.send("failed", error=str(exc))
    except MemoryError:
        channel.send("failed", error="memory")
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        channel.send("failed", error=f"loading {found.name} failed: {type(exc).__name__}: {exc}")
    return None


async def _answer(plugin: Any, request: dict[str, Any], channel: _Channel) -> None:
    ident, op = request["id"], request["op"]
    try:
        if op in _LIFECYCLE:
            result = await getattr(plugin, op)()
        elif op == "health_check":
            result = await plugin.health_check()
        elif op == "handle_event":
            _DEPTH.set(int(request.get("depth", 0)))  # this task's own context
            result = await plugin.handle_event(request["event"], request["data"])
        elif op == "bus_event":
            _DEPTH.set(int(request.get("depth", 0)))
            result = await plugin.context.event_bus.forwarded(request["event"], request["data"])
        else:
            raise ValueError(f"unknown request {op!r}")
    except MemoryError:
        channel.send("answer", id=ident, memory=True)
    except SystemExit as exc:
        channel.send("answer", id=ident, exit="SystemExit", code=exc.code)
    except KeyboardInterrupt:
        channel.send("answer", id=ident, exit="KeyboardInterrupt")
    except asyncio.CancelledError:
        channel.send("answer", id=ident, cancelled=True)
    except Exception as exc:
        channel.send("answer", id=ident, raised=type(exc).__name__, message=str(exc))
    else:
        value = result if op == "health_check" and isinstance(result, dict) else None
        channel.send("answer", id=ident, true=result is True, repr=repr(result)[:500], value=value)


class _WorkerBus(EventBus):
    """The plugin's ``context.event_bus`` in a worker: what it publishes goes to the
    host, which delivers it as it would an in-process plugin's; what it subscribes to,
    the host forwards here (``bus_event`` requests)."""

    def __init__(self, channel: _Channel, name: str) -> None:
        super().__init__(timeout=None)
        self._channel = channel
        self.plugin_name = name
        self._forwarded: set[str] = set()

    def subscribe(
        self, event_type: str, handler: EventHandler, *, name: str | None = None
    ) -> Callable[[], None]:
        unsubscribe = super().subscribe(event_type, handler, name=name or self.plugin_name)
        if event_type not in self._forwarded:
            self._forwarded.add(event_type)
            self._channel.send("subscribe", event=event_type)
        return unsubscribe

    async def publish(self, event_type: str, data: dict[str, Any] | None = None) -> None:
        payload = dict(data or {})
        self.published.append((event_type, payload))
        self._channel.send("publish", event=event_type, data=payload, depth=_DEPTH.get())

    async def forwarded(self, event_type: str, data: dict[str, Any]) -> None:
        """An event of the host's bus this plugin subscribed to: to its handlers."""
        self._record(await deliver(self.subscribers_for(event_type), event_type, data, None))
