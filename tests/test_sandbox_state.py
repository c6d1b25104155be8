"""The sandbox's process-state snapshot: every kind of process-wide change a plugin can
leave behind is named (with the replacement's file and line where it is a function),
putting things back makes it clean, and a lying ``__eq__`` fools nothing."""

from __future__ import annotations

import asyncio
import builtins
import gc
import io
import logging
import os
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aitbc.plugins as sdk
import pytest
from aitbc.plugins import BasePlugin, EventBus
from aitbc.plugins.events import deliver
from aitbc.plugins.sandbox.protocol import Problem
from aitbc.plugins.sandbox.state import state_changes, take_state

Undo = Callable[[], None]
HERE = str(Path(__file__).resolve())


# -- what hostile or careless plugins put in place -----------------------------------
def hook(*args: Any, **kwargs: Any) -> Any:
    return None


async def spy_publish(self: EventBus, event_type: str, data: dict[str, Any] | None = None) -> None:
    return None


async def fake_health(self: BasePlugin) -> dict[str, Any]:
    return {"status": "active"}


class Liar:
    """Equal to everything, hashed like what it replaced: fools any == comparison."""

    def __init__(self, like: object = None) -> None:
        self.like = like

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash(self.like)

    def __call__(self, *args: Any) -> None:
        return None


class LyingInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class QuietLogger(logging.Logger):
    pass


def swap(owner: Any, name: str, value: Any) -> Undo:
    """Set ``owner.name``; the undo puts back exactly what was there (or nothing)."""
    had = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, value)

    def undo() -> None:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)

    return undo


def call(do: Callable[[], Any], undo: Callable[[], Any]) -> Undo:
    do()

    def done() -> None:
        undo()

    return done


def removed(owner: Any, name: str) -> Undo:
    old = getattr(owner, name)
    delattr(owner, name)
    return lambda: setattr(owner, name, old)


def disable_logger() -> Undo:
    logger = logging.getLogger("aitbc.tests.existing")
    logger.disabled = True
    return lambda: setattr(logger, "disabled", False)


def add_root_handler() -> Undo:
    handler = logging.NullHandler()
    logging.root.addHandler(handler)
    return lambda: logging.root.removeHandler(handler)


def set_policy() -> Undo:
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    return lambda: asyncio.set_event_loop_policy(old)


def swap_code() -> Undo:
    old = EventBus.publish.__code__
    EventBus.publish.__code__ = spy_publish.__code__
    return lambda: setattr(EventBus.publish, "__code__", old)


def leave_cwd() -> Undo:
    old, here = Path.cwd(), Path(__file__).parent
    os.chdir(here if here != old else here.parent)
    return lambda: os.chdir(old)


def settrace(setter: Callable[[Any], None], getter: Callable[[], Any]) -> Undo:
    old = getter()
    setter(hook)
    return lambda: setter(old)


SOCKET_CONNECT = socket.socket.connect  # inherited from _socket.socket

HOOK = "test_sandbox_state.hook"
# fmt: off
# id -> (make the change, words of its problem, the function the problem points at)
CASES: dict[str, tuple[Callable[[], Undo], str, Callable[..., Any] | None]] = {
    "logging.disable": (
        partial(call, partial(logging.disable, logging.CRITICAL), partial(logging.disable, 0)),
        "logging was disabled: logging.disable(CRITICAL) is still in force (it was NOTSET)", None),
    "root level": (partial(swap, logging.root, "level", logging.CRITICAL + 1),
                   "the root logger's level was changed from ", None),
    "root handler": (add_root_handler, "the root logger's handlers changed (now (", None),
    "logger disabled": (disable_logger, "the logger 'aitbc.tests.existing' was disabled", None),
    "logger class": (
        partial(call, partial(logging.setLoggerClass, QuietLogger),
                partial(logging.setLoggerClass, logging.Logger)),
        "the logger class (logging.setLoggerClass) was replaced (now "
        "test_sandbox_state.QuietLogger (a class))", None),
    "logging function": (partial(swap, logging, "getLogger", hook),
                         f"logging.getLogger was replaced (now {HOOK})", hook),
    "policy": (set_policy,
               "the asyncio event loop policy was replaced (now an instance of asyncio.", None),
    "print": (partial(swap, builtins, "print", hook),
              f"builtins.print was replaced (now {HOOK})", hook),
    "builtin added": (partial(swap, builtins, "aitbc_helper", hook),
                      f"builtins.aitbc_helper was added ({HOOK})", hook),
    "builtin removed": (partial(removed, builtins, "input"), "builtins.input was removed", None),
    **{f"sys.{name}": (partial(swap, sys, name, hook),
                       f"sys.{name} was replaced (now {HOOK})", hook)
       for name in ("excepthook", "displayhook", "breakpointhook", "unraisablehook", "stdout")},
    "sys.settrace": (partial(settrace, sys.settrace, sys.gettrace),
                     "the trace function (sys.settrace) was ", hook),
    "sys.setprofile": (partial(settrace, sys.setprofile, sys.getprofile),
                       "the profile function (sys.setprofile) was ", hook),
    "threading.settrace": (partial(settrace, threading.settrace, threading.gettrace),
                           "the threads' trace function (threading.settrace) was ", hook),
    "threading.excepthook": (partial(swap, threading, "excepthook", hook),
                             f"threading.excepthook was replaced (now {HOOK})", hook),
    "signal handler": (
        partial(call, partial(signal.signal, signal.SIGUSR2, hook),
                partial(signal.signal, signal.SIGUSR2, signal.SIG_DFL)),
        f"the handler of SIGUSR2 was replaced (now {HOOK})", hook),
    "signal mask": (
        partial(call, partial(signal.pthread_sigmask, signal.SIG_BLOCK, [signal.SIGUSR2]),
                partial(signal.pthread_sigmask, signal.SIG_UNBLOCK, [signal.SIGUSR2])),
        "the blocked signals (signal.pthread_sigmask) changed (now (", None),
    "socket connect": (partial(swap, socket.socket, "connect", hook),
                       f"socket.socket.connect was replaced (now {HOOK})", hook),
    "socket function": (partial(swap, socket, "create_connection", hook),
                        f"socket.create_connection was replaced (now {HOOK})", hook),
    "socket timeout": (
        partial(call, partial(socket.setdefaulttimeout, 5),
                partial(socket.setdefaulttimeout, None)),
        "socket.getdefaulttimeout() was changed from None to 5.0", None),
    "BasePlugin.health_check": (
        partial(swap, BasePlugin, "health_check", fake_health),
        "aitbc.plugins.base.BasePlugin.health_check was replaced "
        "(now test_sandbox_state.fake_health)", fake_health),
    "EventBus.publish": (
        partial(swap, sdk.EventBus, "publish", spy_publish),
        "aitbc.plugins.events.EventBus.publish was replaced (now test_sandbox_state.spy_publish)",
        spy_publish),
    "EventBus code": (swap_code, "aitbc.plugins.events.EventBus.publish's code was replaced",
                      spy_publish),
    "SDK class attribute added": (partial(swap, EventBus, "publish_later", spy_publish),
                                  "aitbc.plugins.events.EventBus.publish_later was added",
                                  spy_publish),
    "SDK function": (partial(swap, sys.modules["aitbc.plugins.events"], "deliver", hook),
                     f"aitbc.plugins.events.deliver was replaced (now {HOOK})", hook),
    "gc": (partial(call, gc.disable, gc.enable), "gc.isenabled() was changed from True", None),
    "cwd": (leave_cwd, "the current directory (os.chdir) was changed from ", None),
}
# fmt: on


@contextmanager
def changed(case: str) -> Iterator[None]:
    undo = CASES[case][0]()
    try:
        yield
    finally:
        undo()


@pytest.fixture(autouse=True)
def _known_logger() -> None:
    logging.getLogger("aitbc.tests.existing")  # exists before each snapshot


@pytest.mark.parametrize("case", list(CASES))
def test_each_change_is_named_and_undoing_it_is_clean(case: str) -> None:
    _, words, located = CASES[case]
    before = take_state()
    with changed(case):
        problems = state_changes(before)
    assert problems, case
    assert all(p.kind == "state" for p in problems)
    assert words in problems[0].message, problems
    if located is not None:  # the replacement's own file and line
        assert (problems[0].file, problems[0].line) == (HERE, located.__code__.co_firstlineno)
    assert state_changes(before) == [], "undone, yet still reported"


def test_an_untouched_process_reports_nothing_and_the_snapshot_is_cheap() -> None:
    took = []
    for _ in range(3):
        began = time.perf_counter()
        before = take_state()
        took.append(time.perf_counter() - began)
        assert state_changes(before) == []
    assert min(took) < 0.05


def test_what_an_event_loop_does_between_steps_is_ignored() -> None:
    """A worker runs each step with run_until_complete: the loop sets its hooks anew."""
    loop = asyncio.new_event_loop()

    async def snapshot() -> Any:
        await asyncio.to_thread(time.sleep, 0)  # the default executor, made and used
        return take_state()

    async def compare(before: Any) -> list[Problem]:
        await asyncio.sleep(0)
        return state_changes(before)

    try:
        before = loop.run_until_complete(snapshot())
        assert loop.run_until_complete(compare(before)) == []
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def test_the_running_loops_settings_are_watched() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        before = take_state()
        loop.set_exception_handler(hook)
        loop.set_task_factory(hook)
        found = [p.message for p in state_changes(before)]
        loop.set_exception_handler(None)
        loop.set_task_factory(None)
        assert state_changes(before) == []
        return found

    found = asyncio.run(scenario())
    assert found == [
        "the loop's exception handler was set (now test_sandbox_state.hook)",
        "the loop's task factory was set (now test_sandbox_state.hook)",
    ]


def test_a_lying_eq_fools_nothing() -> None:
    before = take_state()
    undo = [
        swap(sys, "excepthook", Liar(sys.excepthook)),
        swap(builtins, "len", Liar(builtins.len)),
        swap(socket.socket, "connect", Liar(SOCKET_CONNECT)),
        swap(logging.root, "level", LyingInt(logging.root.level)),
    ]
    try:
        found = [p.message for p in state_changes(before)]
    finally:
        for step in reversed(undo):
            step()
    liar = "an instance of test_sandbox_state.Liar"
    assert f"sys.excepthook was replaced (now {liar})" in found
    assert f"builtins.len was replaced (now {liar})" in found
    assert f"socket.socket.connect was replaced (now {liar})" in found
    assert any(m.startswith("the root logger's level was replaced") for m in found), found
    assert len(found) == 4, found
    assert state_changes(before) == []


def test_putting_back_an_inherited_method_is_no_change() -> None:
    """``socket.socket.connect = saved`` after a wrap leaves the inherited method in the
    class's own dict: the same object, so nothing changed."""
    before = take_state()
    saved = socket.socket.connect
    socket.socket.connect = hook  # type: ignore[method-assign]
    socket.socket.connect = saved  # type: ignore[method-assign]
    try:
        assert state_changes(before) == []
    finally:
        del socket.socket.connect


def test_lazy_sdk_exports_and_new_loggers_are_not_changes() -> None:
    vars(sdk).pop("SecretStr", None)  # loaded again on first use (PEP 562)
    before = take_state()
    assert sdk.SecretStr is sys.modules["aitbc.plugins.secrets"].SecretStr
    logging.getLogger("aitbc.tests.made-after-the-snapshot").info("hello")
    assert state_changes(before) == []
    logging.getLogger("aitbc.tests.made-and-disabled").disabled = True
    assert [p.message for p in state_changes(before)] == [
        "the logger 'aitbc.tests.made-and-disabled' was disabled"
    ]
    logging.getLogger("aitbc.tests.made-and-disabled").disabled = False


def test_an_sdk_module_loaded_later_must_not_run_the_code_under_test() -> None:
    before = take_state()
    late = types.ModuleType("aitbc.plugins._late_for_the_test")
    late.helper = deliver  # type: ignore[attr-defined]  # SDK code: fine
    late.patched = hook  # type: ignore[attr-defined]  # the code under test's
    sys.modules[late.__name__] = late
    try:
        assert state_changes(before) == []  # no roots: nothing to tell them apart by
        problems = state_changes(before, [str(Path(__file__).resolve().parent)])
    finally:
        del sys.modules[late.__name__]
    assert problems == [
        Problem(
            "state",
            "aitbc.plugins._late_for_the_test.patched was replaced (now test_sandbox_state.hook)",
            HERE,
            hook.__code__.co_firstlineno,
        )
    ]


def test_a_replaced_stream_is_named() -> None:
    before = take_state()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", io.StringIO())
        found = [p.message for p in state_changes(before)]
    assert found == ["sys.stderr was replaced (now an instance of _io.StringIO)"]
