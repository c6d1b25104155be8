"""Process-wide state (logging, builtins, hooks, signals, patched modules), and what changed.

A conformance run takes a :class:`ProcessState` before the code under test is imported
and compares after it says it has cleaned up: whatever it left changed is a problem,
named.  Everything is held by strong reference and compared by identity (exact builtin
scalars by value), so neither a reused id nor an object whose ``__eq__`` lies can pass
for the original.  Take both from the same thread, inside the same event loop: the
running loop's own machinery (its asynchronous generator hooks, for one) is then the
same in both.  Standard library only: this runs inside the sandbox worker.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import gc
import logging
import os
import signal
import socket
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .identity import (
    ABSENT,
    MODULE_DICT,
    TYPE_BASES,
    TYPE_DICT,
    TYPE_MRO,
    change,
    class_name,
    code,
    code_changes,
    describe,
    origin,
    read,
    same,
    text,
)
from .leaks import within
from .protocol import Problem

SDK = "aitbc.plugins"
# Names the interpreter or the standard library add to a class by themselves, lazily.
_LAZY_CLASS_NAMES = frozenset({
    "__annotations__", "__annotate__", "__annotate_func__", "__annotations_cache__",
    "__slotnames__", "__non_callable_proto_members__", "__protocol_attrs__",
})  # fmt: skip
_MODULE_HOOKS = frozenset({"__getattr__", "__dir__"})


@dataclass(frozen=True)
class Watch:
    """A module whose attributes must stay: ``everything`` or only the public names;
    ``additions`` reported or not; classes defined under ``classes`` watched too."""

    name: str
    everything: bool = False
    additions: bool = False
    classes: str | None = None


#: The standard library's process-wide modules (the SDK's are added as found).
WATCHED = (
    Watch("builtins", everything=True, additions=True),
    Watch("socket", everything=True, additions=True, classes="socket"),
    Watch("_socket", everything=True, additions=True),
    Watch("ssl", everything=True, additions=True, classes="ssl"),
    Watch("asyncio", classes="asyncio"),
    Watch("logging", classes="logging"),
    Watch("threading", classes="threading"),
    Watch("signal"),
)


@dataclass(frozen=True)
class _Module:
    watch: Watch
    module: types.ModuleType
    kind: type
    names: dict[str, Any]
    codes: dict[str, Any]


@dataclass(frozen=True)
class _Class:
    label: str
    cls: type
    meta: type
    bases: tuple[type, ...]
    names: dict[str, Any]
    codes: dict[str, Any]


@dataclass(frozen=True)
class ProcessState:
    """What :func:`take_state` saw; only :func:`state_changes` reads it."""

    values: dict[str, Any]  # label -> value, one per item of _items()
    modules: tuple[_Module, ...]
    classes: tuple[_Class, ...]
    loggers: dict[int, tuple[logging.Logger, bool]]  # id -> (logger, disabled)
    sdk_modules: frozenset[str]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _loop_read(get: Callable[[asyncio.AbstractEventLoop], Any]) -> Callable[[], Any]:
    return lambda: None if (loop := _running_loop()) is None else get(loop)


def _policy() -> Any:
    with warnings.catch_warnings():  # deprecated from 3.14, still what asyncio uses
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop_policy()


def _current_loop() -> Any:
    # The policy's record, read without get_event_loop(), which may create a loop.
    return getattr(getattr(_policy(), "_local", None), "_loop", None)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal without a name of its own
        return f"signal {number}"


def _signal_mask() -> tuple[str, ...]:
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        return ()
    blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    return tuple(_signal_name(n) for n in blocked)


def _signals() -> list[int]:
    fixed = {int(signal.SIGKILL), int(signal.SIGSTOP)}  # no handler can be set
    return [n for n in sorted(int(s) for s in signal.valid_signals()) if n not in fixed]


def _items() -> list[tuple[str, Callable[[], Any]]]:
    """Every single value that must stay, with the words for it."""
    root = logging.root
    items: list[tuple[str, Callable[[], Any]]] = [
        ("sys.excepthook", lambda: sys.excepthook),
        ("sys.displayhook", lambda: sys.displayhook),
        ("sys.breakpointhook", lambda: sys.breakpointhook),
        ("sys.unraisablehook", lambda: sys.unraisablehook),
        ("sys.stdin", lambda: sys.stdin),
        ("sys.stdout", lambda: sys.stdout),
        ("sys.stderr", lambda: sys.stderr),
        ("the trace function (sys.settrace)", sys.gettrace),
        ("the profile function (sys.setprofile)", sys.getprofile),
        ("the asynchronous generator hooks", lambda: tuple(sys.get_asyncgen_hooks())),
        ("the threads' trace function (threading.settrace)", threading.gettrace),
        ("the threads' profile function (threading.setprofile)", threading.getprofile),
        ("the asyncio event loop policy", _policy),
        ("the current event loop (asyncio.set_event_loop)", _current_loop),
        ("the loop's exception handler", _loop_read(lambda loop: loop.get_exception_handler())),
        ("the loop's task factory", _loop_read(lambda loop: loop.get_task_factory())),
        ("the loop's debug mode", _loop_read(lambda loop: loop.get_debug())),
        ("logging.disable", lambda: root.manager.disable),
        ("the root logger's level", lambda: root.level),
        ("the root logger's handlers", lambda: tuple(root.handlers)),
        ("the root logger's handlers' levels", lambda: tuple(h.level for h in root.handlers)),
        ("the root logger's filters", lambda: tuple(root.filters)),
        ("the root logger's disabled flag", lambda: root.disabled),
        ("the logger class (logging.setLoggerClass)", logging.getLoggerClass),
        ("the log record factory", logging.getLogRecordFactory),
        ("the blocked signals (signal.pthread_sigmask)", _signal_mask),
        ("faulthandler.is_enabled()", faulthandler.is_enabled),
        ("gc.isenabled()", gc.isenabled),
        ("the current directory (os.chdir)", os.getcwd),
        ("socket.getdefaulttimeout()", socket.getdefaulttimeout),
    ]
    for number in _signals():
        handler = functools.partial(signal.getsignal, number)
        items.append((f"the handler of {_signal_name(number)}", handler))
    return items


def _public(name: str) -> bool:
    return not name.startswith("_") or name in _MODULE_HOOKS


def _module(watch: Watch, module: types.ModuleType) -> _Module:
    names = {
        k: v
        for k, v in MODULE_DICT.__get__(module).items()
        if type(k) is str and (watch.everything or _public(k))
    }
    codes = {k: c for k, v in names.items() if (c := code(v)) is not None}
    return _Module(watch, module, type(module), names, codes)


def _class(cls: type) -> _Class:
    names = {k: v for k, v in TYPE_DICT.__get__(cls).items() if type(k) is str}
    codes = {k: c for k, v in names.items() if (c := code(v)) is not None}
    return _Class(class_name(cls), cls, type(cls), TYPE_BASES.__get__(cls), names, codes)


def _sdk_modules() -> dict[str, types.ModuleType]:
    return {
        name: module
        for name, module in sorted(sys.modules.items())
        if (name == SDK or name.startswith(f"{SDK}.")) and isinstance(module, types.ModuleType)
    }


def _watches() -> list[Watch]:
    # The sandbox's own modules in full: a patched leak finder would hide leaks.
    sdk = [
        Watch(name, everything=name.startswith(f"{SDK}.sandbox"), additions=True, classes=SDK)
        for name in _sdk_modules()
    ]
    return [*WATCHED, *sdk]


def _loggers() -> dict[int, tuple[logging.Logger, bool]]:
    found = list(logging.root.manager.loggerDict.values())
    return {id(lg): (lg, lg.disabled) for lg in found if isinstance(lg, logging.Logger)}


def take_state() -> ProcessState:
    """Everything :func:`state_changes` compares, by strong reference (a few ms)."""
    values = {label: read(reader) for label, reader in _items()}
    modules, classes = [], {}
    for watch in _watches():
        module = sys.modules.get(watch.name)
        if not isinstance(module, types.ModuleType):
            continue
        view = _module(watch, module)
        modules.append(view)
        for value in view.names.values():
            if watch.classes and isinstance(value, type) and id(value) not in classes:
                owner = TYPE_DICT.__get__(value).get("__module__")
                if type(owner) is str and (owner + ".").startswith(watch.classes + "."):
                    classes[id(value)] = _class(value)
    sdk = frozenset(m.watch.name for m in modules if m.watch.classes == SDK)
    return ProcessState(values, tuple(modules), tuple(classes.values()), _loggers(), sdk)


def _level(value: Any) -> str:
    return text(logging.getLevelName(value)) if type(value) is int else describe(value)


def _item_change(label: str, old: Any, new: Any) -> Problem:
    if label == "logging.disable" and type(new) is int and type(old) is int and new > old:
        message = f"logging was disabled: logging.disable({_level(new)}) is still in force"
        return Problem("state", f"{message} (it was {_level(old)})")
    if label == "the root logger's level" and type(new) is int:
        return Problem("state", f"{label} was changed from {_level(old)} to {_level(new)}")
    return change(label, old, new)


def _dict_changes(
    label: str, before: dict[str, Any], now: dict[str, Any], added: Callable[[str, Any], bool]
) -> list[Problem]:
    problems = []
    for name, old in before.items():
        new = now.get(name, ABSENT)
        if not same(old, new):
            problems.append(change(f"{label}.{name}", old, new))
    for name, new in now.items():
        if name not in before and added(name, new):
            problems.append(change(f"{label}.{name}", ABSENT, new))
    return problems


def _reexported(name: str, value: Any) -> bool:
    """An SDK package's lazy export, or a submodule import: not a patch."""
    if isinstance(value, types.ModuleType):
        return True
    return any(
        MODULE_DICT.__get__(module).get(name, ABSENT) is value for module in _sdk_modules().values()
    )


def _module_changes(view: _Module) -> list[Problem]:
    label, problems = view.watch.name, []
    if sys.modules.get(label) is not view.module:
        problems.append(change(f"sys.modules[{label!r}]", view.module, sys.modules.get(label)))
    if type(view.module) is not view.kind:
        problems.append(change(f"the class of module {label}", view.kind, type(view.module)))
    now = _module(view.watch, view.module).names

    def added(name: str, value: Any) -> bool:
        if not view.watch.additions or label == "builtins":
            return view.watch.additions
        if isinstance(value, types.ModuleType):  # a submodule, imported
            return False
        return not (view.watch.classes == SDK and _reexported(name, value))

    problems += _dict_changes(label, view.names, now, added)
    return problems + code_changes(label, view.names, view.codes, now)


def _inherited(cls: type, name: str) -> Any:
    for base in TYPE_MRO.__get__(cls)[1:]:
        value = TYPE_DICT.__get__(base).get(name, ABSENT)
        if value is not ABSENT:
            return value
    return ABSENT


def _class_changes(view: _Class) -> list[Problem]:
    problems = []
    if type(view.cls) is not view.meta:
        problems.append(change(f"the metaclass of {view.label}", view.meta, type(view.cls)))
    bases = TYPE_BASES.__get__(view.cls)
    if not same(view.bases, bases):
        problems.append(change(f"the base classes of {view.label}", view.bases, bases))
    now = {k: v for k, v in TYPE_DICT.__get__(view.cls).items() if type(k) is str}
    for name, old in view.names.items():
        if not same(old, now.get(name, ABSENT)):
            problems.append(change(f"{view.label}.{name}", old, now.get(name, ABSENT)))
    for name, new in now.items():
        if name in view.names or name in _LAZY_CLASS_NAMES:
            continue
        inherited = _inherited(view.cls, name)
        if new is not inherited:  # putting back what it inherited is no change
            label = f"{view.label}.{name}"
            problems.append(change(label, ABSENT, new, inherited=inherited is not ABSENT))
    return problems + code_changes(view.label, view.names, view.codes, now)


def _logger_changes(before: ProcessState) -> list[Problem]:
    problems = []
    for key, (logger, disabled) in _loggers().items():
        old = before.loggers.get(key)
        was = old[1] if old is not None and old[0] is logger else False
        if not same(disabled, was):
            what = "disabled" if disabled is True else f"changed (disabled = {describe(disabled)})"
            name = text(logger.name)
            problems.append(Problem("state", f"the logger {name!r} was {what}"))
    return problems


def _late_sdk_changes(before: ProcessState, roots: Sequence[str]) -> list[Problem]:
    """SDK modules first loaded after the snapshot: nothing to compare with, but none of
    their functions may run code of the code under test."""
    problems = []
    for name, module in _sdk_modules().items():
        if name in before.sdk_modules:
            continue
        view = _module(Watch(name), module)
        places: list[tuple[str, Iterable[tuple[str, Any]]]] = [(name, view.names.items())]
        for value in view.names.values():
            if isinstance(value, type) and TYPE_DICT.__get__(value).get("__module__") == name:
                places.append((class_name(value), TYPE_DICT.__get__(value).items()))
        for label, entries in places:
            for key, value in entries:
                file, line = origin(value)
                if type(key) is str and file is not None and within(file, list(roots)):
                    problems.append(Problem("state", f"{label}.{key} was replaced "
                                            f"(now {describe(value)})", file, line))  # fmt: skip
    return problems


def state_changes(before: ProcessState, roots: Sequence[str] = ()) -> list[Problem]:
    """One problem per item that differs from ``before``; ``roots`` (the code under
    test's folders) also finds patches in SDK modules imported since ``before``."""
    problems = []
    for label, reader in _items():
        old, new = before.values.get(label, ABSENT), read(reader)
        if not same(old, new):
            problems.append(_item_change(label, old, new))
    for view in before.modules:
        problems += _module_changes(view)
    for cls in before.classes:
        problems += _class_changes(cls)
    problems += _logger_changes(before)
    if roots:
        problems += _late_sdk_changes(before, roots)
    return problems
