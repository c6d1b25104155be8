"""Stopping plugin code that holds the event loop: a busy loop that never awaits.

An asyncio timeout fires only when the loop gets control back, which a ``while True:
pass`` in ``handle_event`` never gives.  So plugin code runs *marked*: each step of a
plugin's coroutine (each ``send`` into it) records its deadline, and a watcher thread
that finds a step past its deadline raises :class:`HeldTheLoop` in the loop's thread
(``PyThreadState_SetAsyncExc``, the interpreter's own way to raise in another thread).
The watcher looks every 50 ms; a step it sees
running on two looks ``limit`` seconds apart is stopped.  A lock makes its decision and
raise one act with the step's leaving, and the leaving takes delivery of one raised too
late, so the exception surfaces only inside the marked step, never in the host's code.

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


class _Slot:
    """One loop thread's marking: ``seq`` is odd while a marked step runs."""

    __slots__ = ("fired", "ident", "limit", "seq")

    def __init__(self, ident: int) -> None:
        self.ident, self.seq, self.limit, self.fired = ident, 0, 0.0, False


class Watchdog:
    """One watcher thread for a process: started on first use, ended at a host's
    shutdown.  Entering a marked step costs two attribute writes and no lock; leaving
    it takes the lock, which the watcher holds while it decides and raises, so the
    raise lands inside the step or is taken delivery of on the way out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot] = {}
        self._local = threading.local()
        self._thread: threading.Thread | None = None
        self._stop = False

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot(threading.get_ident())
            with self._lock:
                self._slots[slot.ident] = slot
        if self._thread is None or self._stop:
            with self._lock:
                self._stop = False
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._watch, name="aitbc-plugin-watchdog", daemon=True
                    )
                    self._thread.start()
        return slot

    def _enter(self, limit: float) -> _Slot:
        slot = self._slot()
        slot.limit = limit
        slot.seq += 1  # odd: inside
        return slot

    def _leave(self, slot: _Slot) -> None:
        with self._lock:
            slot.seq += 1  # even: outside
            fired, slot.fired = slot.fired, False
        if fired:
            _absorb()

    def stop_when_idle(self) -> None:
        """End the watcher thread (a host shutting down leaves no thread behind); the
        next marked call starts it again."""
        with self._lock:
            thread, self._stop = self._thread, True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _watch(self) -> None:
        seen: dict[int, tuple[int, float, float]] = {}  # ident -> (seq, first seen, last raise)
        while True:
            time.sleep(_LOOK_EVERY_S)
            with self._lock:
                if self._stop:
                    self._thread = None
                    return
                now = time.monotonic()
                for ident, slot in self._slots.items():
                    seq = slot.seq
                    if not seq % 2:
                        seen.pop(ident, None)
                        continue
                    was = seen.get(ident)
                    if was is None or was[0] != seq:
                        seen[ident] = (seq, now, 0.0)
                        continue
                    _, since, raised = was
                    if now - since >= slot.limit and now - raised >= _AGAIN_AFTER_S:
                        slot.fired = True  # under the lock: it is still in the step
                        seen[ident] = (seq, since, now)
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(ident), ctypes.py_object(HeldTheLoop)
                        )

    def call(self, function: Callable[[], T], limit: float | None) -> T:
        """``function()``, stopped when it runs past ``limit`` seconds."""
        if limit is None:
            return function()
        slot = self._enter(limit)
        try:
            try:
                return function()
            finally:
                self._leave(slot)
        except HeldTheLoop:  # raised in the call, or in the leaving right after it
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
        enter, leave, limit = self._watchdog._enter, self._watchdog._leave, self._limit
        sending: Any = None
        throwing: BaseException | None = None
        while True:
            slot = enter(limit)
            try:
                try:
                    yielded = inner.send(sending) if throwing is None else inner.throw(throwing)
                finally:
                    leave(slot)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            except HeldTheLoop:  # in the step, or in the leaving right after it
                raise PluginHeldTheLoop(limit) from None
            try:
                sending, throwing = (yield yielded), None
            except BaseException as exc:  # cancellation and the like: into the plugin
                sending, throwing = None, exc


WATCHDOG = Watchdog()

__all__ = ["WATCHDOG", "HeldTheLoop", "PluginHeldTheLoop", "Watchdog"]
