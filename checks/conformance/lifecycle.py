"""The conformance steps of the `lifecycle` certification check.

`aitbc-plugin certify` runs this file inside a sandbox worker: a separate process of
the plugin's own environment (its wheel and the SDK installed), limited in address
space and CPU time, with a wall-clock limit per step and overall, in the kernel jail,
with nothing in its environment that says it is a certification.  The steps run in
the order of STEPS, each when the supervisor asks for it, on one event loop, and stop
at the first that fails; the check reports that step and why (see README.md beside
this file).

Before the plugin is even imported, the first step notes what the process holds
(threads, asyncio tasks, files, sockets) and its process-wide state (logging, builtins,
sys and threading hooks, signal handlers, the event loop policy, the socket module, the
SDK's own classes and functions).  The last step, after cleanup, reports whatever is
new or changed since: made or changed at import, in the constructor or in any step,
it is the plugin's to undo.

Standard library and the SDK only: this file runs where your plugin runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from aitbc.plugins import ENTRY_POINT_GROUP, BasePlugin, EventBus, PluginContext, PluginStatus
from aitbc.plugins.sandbox import worker
from aitbc.plugins.sandbox.leaks import (
    Snapshot,
    frame_location,
    host_threads,
    settle_and_find_leaks,
    take_snapshot,
)
from aitbc.plugins.sandbox.state import state_changes, take_state
from aitbc.plugins.sandbox.worker import Session, Step

#: The event the handle_event step delivers.
PING_EVENT = "aitbc.certify.ping"
PING_DATA: dict[str, Any] = {"sent_by": "aitbc-plugin certify"}


def _code_roots(module: str) -> list[str]:
    """Where the plugin's code lives: its top-level package (or module file)."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [str(Path(p).resolve()) for p in spec.submodule_search_locations]
    return [str(Path(spec.origin).resolve())] if spec.origin else []


async def import_plugin(session: Session) -> None:
    """Load the class through its entry point, as a host that installed the wheel does."""
    # What exists now is not the plugin's to clean up or restore; anything new or
    # changed after cleanup is, even what its import or its constructor did.
    session.values["state"] = take_state()
    session.values["before"] = take_snapshot()
    name = session.params["name"]
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if len(found) != 1:
        where = ", ".join(ep.value for ep in found) or "none"
        session.fail("import", f"expected one entry point {name!r} in {ENTRY_POINT_GROUP}: {where}")
    entry_point = found[0]
    expected = session.params.get("entry_point")
    if expected and entry_point.value.replace(" ", "") != expected.replace(" ", ""):
        session.fail("import", f"entry point {name!r} is {entry_point.value!r}, not {expected!r}")
    session.code_roots = _code_roots(entry_point.module)
    plugin_class = entry_point.load()
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, BasePlugin)):
        session.fail("import", f"{entry_point.value} is not a BasePlugin subclass")
    session.values["class"] = plugin_class


async def construct(session: Session) -> None:
    """A real context: data and temporary folders, a logger, an event bus; no config."""
    name = session.params["name"]
    data_dir, temp_dir = session.workdir / "data" / name, session.workdir / "plugin-tmp" / name
    data_dir.mkdir(parents=True)
    temp_dir.mkdir(parents=True)
    context = PluginContext(
        config={},
        data_dir=str(data_dir),
        temp_dir=str(temp_dir),
        logger=logging.getLogger(f"aitbc.plugin.{name}"),
        event_bus=EventBus(timeout=session.limits.step_timeout_s),
        api_client=None,
    )
    plugin = session.values["class"](context)
    _expect_status(session, plugin, PluginStatus.UNLOADED, "construction")
    session.values["plugin"] = plugin


def _misused_status(session: Session, plugin: Any) -> None:
    """The real reason when the plugin set a status that is not the SDK's (a look-alike
    enum of its own), even if its code swallowed the error and returned False."""
    misuse = plugin.__dict__.pop("_status_misuse", None)
    if isinstance(misuse, tuple) and len(misuse) == 3:
        reason, file, line = misuse
        session.fail("status", str(reason), file=str(file), line=int(line))


def _expect_status(session: Session, plugin: Any, expected: PluginStatus, after: str) -> None:
    _misused_status(session, plugin)
    status = plugin.status
    if status is not expected:
        shown = getattr(status, "value", status)
        session.fail("status", f"status is {shown!r} after {after}, expected {expected.value!r}")


def lifecycle_step(method: str, expected: PluginStatus) -> Step:
    """Call ``plugin.<method>()``: it must return True and leave ``expected`` status."""

    async def step(session: Session) -> None:
        plugin = session.values["plugin"]
        result = await getattr(plugin, method)()
        _misused_status(session, plugin)
        if result is not True:
            session.fail("returned-false", f"returned {result!r}, expected True")
        _expect_status(session, plugin, expected, method)

    step.__qualname__ = f"lifecycle_step.{method}"
    return step


async def health_check(session: Session) -> None:
    """A started plugin reports itself active."""
    health = await session.values["plugin"].health_check()
    if not isinstance(health, dict):
        session.fail("health", f"health_check returned {type(health).__name__}, not a dict")
    if health.get("status") != "active":
        reported = health.get("status")
        session.fail("health", f"health_check reported status {reported!r}, expected 'active'")


async def handle_event(session: Session) -> None:
    """An event is delivered (and does not stop the plugin)."""
    plugin = session.values["plugin"]
    await plugin.handle_event(PING_EVENT, dict(PING_DATA))
    _expect_status(session, plugin, PluginStatus.ACTIVE, "handle_event")


async def _baseline(session: Session, grace: float) -> Snapshot:
    """The snapshot of the import step, and what the host itself runs now: the worker's
    task for this step (each step runs in one of its own), and the loop's default
    executor, ended here (``asyncio.to_thread`` borrows it from the host) so that its
    threads are gone.  A job still running in that executor is the plugin's leak."""
    before: Snapshot = session.values["before"]
    hosts = {t for t in asyncio.all_tasks() if _runs(t, worker.run_step)}
    before = replace(before, tasks=before.tasks | hosts)
    loop = asyncio.get_running_loop()
    shutdown = loop.create_task(loop.shutdown_default_executor())
    done, _ = await asyncio.wait({shutdown}, timeout=grace)
    if done:
        return before
    frames = sys._current_frames()
    for thread in sorted(host_threads(), key=lambda t: t.name):
        if thread.is_alive() and thread.ident is not None:
            file, line = frame_location(frames.get(thread.ident), session.code_roots)
            message = f"leaked thread {thread.name!r}: a job of the event loop's default executor"
            session.problem("leak.thread", f"{message} still runs", file=file, line=line)
    # Our own shutdown, waiting for that job, is not a leak of the plugin's.
    ours = {t for t in threading.enumerate() if _shuts_down(t, loop)}
    return replace(before, threads=before.threads | ours, tasks=before.tasks | {shutdown})


def _runs(task: asyncio.Task[Any], function: Callable[..., Any]) -> bool:
    return getattr(task.get_coro(), "cr_code", None) is getattr(function, "__code__", None)


def _shuts_down(thread: threading.Thread, loop: asyncio.AbstractEventLoop) -> bool:
    """The helper thread of ``loop.shutdown_default_executor()``."""
    target = getattr(thread, "_target", None)  # kept until the thread ends
    return getattr(target, "__self__", None) is loop and (
        getattr(target, "__name__", None) == "_do_shutdown"
    )


async def nothing_left(session: Session) -> None:
    """After cleanup: no thread, asyncio task, file or socket the plugin made remains, and
    the process-wide state is as it was before the plugin was imported."""
    grace = min(1.0, session.limits.step_timeout_s / 4)
    before = await _baseline(session, grace)
    for problem in await settle_and_find_leaks(before, session.code_roots, grace):
        session.problems.append(problem)
    for problem in state_changes(session.values["state"], session.code_roots):
        session.problems.append(problem)


STEPS: list[tuple[str, Step]] = [
    ("import", import_plugin),
    ("construct", construct),
    ("initialize", lifecycle_step("initialize", PluginStatus.LOADED)),
    ("start", lifecycle_step("start", PluginStatus.ACTIVE)),
    ("health_check", health_check),
    ("handle_event", handle_event),
    ("stop", lifecycle_step("stop", PluginStatus.INACTIVE)),
    # A plugin must survive a restart: hosts stop and start plugins without reloading.
    ("start again", lifecycle_step("start", PluginStatus.ACTIVE)),
    ("stop again", lifecycle_step("stop", PluginStatus.INACTIVE)),
    ("cleanup", lifecycle_step("cleanup", PluginStatus.UNLOADED)),
    ("after cleanup", nothing_left),
]
