"""Stopping plugin code that holds the event loop: a busy loop that never awaits.

An asyncio timeout fires only when the loop gets control back, which a ``while True:
pass`` in ``handle_event`` never gives.  So plugin code runs *marked*: each step of a
plugin's coroutine (each ``send`` into it) records its deadline, and a watcher thread
that finds a step past its deadline raises :class:`HeldTheLoop` in the loop's thread
(``PyThreadState_SetAsyncExc``, the interpreter's own way to raise in another thread).
A lock makes the check and the raise one act with the unmarking, and the unmarking
takes delivery of one raised too late, so the exception surfaces only inside the marked
step, never in the host's own code.

What it cannot stop: native code that does not return to Python (a C extension's
hang, ``time.sleep`` of an hour is interrupted only when it returns), and code that
catches ``BaseException`` and carries on (it is raised again at each look, and named).
Run such plugins with ``isolation: process``.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
_LOOK_EVERY_S = 0.05
_AGAIN_AFTER_S = 1.0  # raise again into code that caught it and went on


class HeldTheLoop(BaseException):
    """Raised into plugin code that ran past its deadline without awaiting.  A
    BaseException, so a plugin's ``except Exception`` does not swallow it."""


class PluginHeldTheLoop(Exception):
    """The plugin's step held the event loop past ``limit`` seconds and was stopped."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"blocked the event loop for more than {limit:g}s without awaiting")
        self.limit = limit


def _absorb() -> None:
    """Take delivery of a HeldTheLoop raised into this thread that has not surfaced yet:
    the interpreter raises it at its next check, which a backward jump makes.  (Clearing
    it with PyThreadState_SetAsyncExc(id, NULL) would leave the interpreter checking
    for it at every instruction from then on.)"""
    try:
        for _ in range(64):
            pass
    except HeldTheLoop:
        return


class Watchdog:
    """One watcher thread for a process: started on first use, idle when nothing runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._marked: dict[int, float] = {}  # loop thread id -> deadline (monotonic)
        self._fired: dict[int, float] = {}  # thread id -> when it was last raised into
        self._thread: threading.Thread | None = None
        self._stop = False  # end the thread once nothing is marked

    def _mark(self, deadline: float) -> int:
        ident = threading.get_ident()
        with self._lock:
            self._marked[ident] = deadline
            self._stop = False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="aitbc-plugin-watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return ident

    def _unmark(self, ident: int) -> None:
        with self._lock:
            self._marked.pop(ident, None)
            fired = self._fired.pop(ident, None) is not None
        if fired:
            _absorb()

    def stop_when_idle(self) -> None:
        """End the watcher thread now if nothing is marked (a host shutting down leaves
        no thread behind); the next marked call starts it again."""
        with self._lock:
            thread, self._stop = self._thread, True
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _watch(self) -> None:
        with self._lock:
            while True:
                if self._stop and not self._marked:
                    self._thread = None
                    return
                now = time.monotonic()
                for ident, deadline in self._marked.items():
                    last = self._fired.get(ident)
                    due = now >= deadline and (last is None or now - last >= _AGAIN_AFTER_S)
                    if due:  # under the lock: it is still in plugin code
                        self._fired[ident] = now
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(ident), ctypes.py_object(HeldTheLoop)
                        )
                soonest = min(self._marked.values(), default=None)
                wait = None if soonest is None else max(soonest - now, _LOOK_EVERY_S)
                self._wake.wait(wait)

    def call(self, function: Callable[[], T], limit: float | None) -> T:
        """``function()``, stopped when it runs past ``limit`` seconds."""
        if limit is None:
            return function()
        ident = self._mark(time.monotonic() + limit)
        try:
            try:
                return function()
            finally:
                self._unmark(ident)
        except HeldTheLoop:  # raised in the call, or in the unmarking right after it
            raise PluginHeldTheLoop(limit) from None

    def guard(self, awaitable: Awaitable[T], limit: float | None) -> Awaitable[T]:
        """``awaitable``, each of its steps stopped when it runs past ``limit`` seconds."""
        if limit is None:
            return awaitable
        return _Guarded(self, awaitable, limit)


class _Guarded(Awaitable[T]):
    def __init__(self, watchdog: Watchdog, awaitable: Awaitable[T], limit: float) -> None:
        self._watchdog, self._awaitable, self._limit = watchdog, awaitable, limit

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self._awaitable.__await__()
        sending: Any = None
        throwing: BaseException | None = None
        while True:
            ident = self._watchdog._mark(time.monotonic() + self._limit)
            try:
                try:
                    yielded = inner.send(sending) if throwing is None else inner.throw(throwing)
                finally:
                    self._watchdog._unmark(ident)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            except HeldTheLoop:  # in the step, or in the unmarking right after it
                raise PluginHeldTheLoop(self._limit) from None
            try:
                sending, throwing = (yield yielded), None
            except BaseException as exc:  # cancellation and the like: into the plugin
                sending, throwing = None, exc


WATCHDOG = Watchdog()

__all__ = ["WATCHDOG", "HeldTheLoop", "PluginHeldTheLoop", "Watchdog"]
