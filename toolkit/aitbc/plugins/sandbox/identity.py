"""Comparing and naming values (and changes of them) untrusted code may have made,
without running that code.

:func:`same` is identity (exact builtin scalars and tuples of them by value), so an
object whose ``__eq__`` lies cannot pass for another; :func:`describe` and
:func:`origin` read only what the interpreter itself keeps (a function's code, a
class's own dict), never a property or ``__repr__`` the value defines.  Standard
library only: this runs inside the sandbox worker.
"""

from __future__ import annotations

import enum
import functools
import types
from collections.abc import Callable
from typing import Any

from .protocol import Problem

ABSENT: Any = object()  # a name that does not exist (None is a value)
#: Exact types whose ``==`` is the interpreter's own, so it cannot lie.
SCALARS = (int, float, str, bytes, bool, type(None))
# The descriptors themselves: immune to a replaced __class__ or a metaclass's properties.
MODULE_DICT = vars(types.ModuleType)["__dict__"]
TYPE_DICT = vars(type)["__dict__"]
TYPE_MRO = vars(type)["__mro__"]
TYPE_BASES = vars(type)["__bases__"]
_TYPE_QUALNAME = vars(type)["__qualname__"]
_TYPE_MODULE = vars(type)["__module__"]
# What is named after the function it wraps (a callable object is named by its class).
_WRAPPERS: tuple[type, ...] = (types.FunctionType, types.MethodType, staticmethod, classmethod)
_WRAPPERS += (property, functools.partial)


class Unreadable:
    """A value that could not be read: never the same as anything."""

    def __init__(self, error: BaseException) -> None:
        self.error = type(error).__name__


def read(reader: Callable[[], Any]) -> Any:
    try:
        return reader()
    except Exception as exc:  # e.g. a deleted current directory
        return Unreadable(exc)


def same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) in SCALARS:
        return bool(a == b)
    if type(a) is tuple:
        return len(a) == len(b) and all(map(same, a, b))
    # A bound method is made anew on each lookup: an event loop sets its asynchronous
    # generator hooks again, as new bound methods, each time it runs.
    return type(a) is types.MethodType and a.__self__ is b.__self__ and a.__func__ is b.__func__


def code(value: Any) -> Any:
    """The code object a function (or a method wrapper of one) runs, else None."""
    if type(value) in (staticmethod, classmethod):
        value = value.__func__
    elif type(value) is property:
        value = value.fget
    return value.__code__ if type(value) is types.FunctionType else None


def function(value: Any, depth: int = 0) -> types.FunctionType | None:
    """The Python function behind ``value`` (a method, a wrapper, a callable object)."""
    kind = type(value)
    if kind is types.FunctionType:
        return value  # type: ignore[no-any-return]
    if depth > 4:
        return None
    if kind in (staticmethod, classmethod, types.MethodType):
        return function(value.__func__, depth + 1)
    if kind is property:
        return function(value.fget, depth + 1)
    if kind is functools.partial:
        return function(value.func, depth + 1)
    for base in TYPE_MRO.__get__(kind):  # a callable object: its class's __call__
        call = TYPE_DICT.__get__(base).get("__call__")
        if call is not None:
            return function(call, depth + 1) if base not in (object, type) else None
    return None


def origin(value: Any) -> tuple[str | None, int | None]:
    """Where the function behind ``value`` is defined, when there is one."""
    found = function(value)
    if found is None:
        return None, None
    return found.__code__.co_filename, found.__code__.co_firstlineno


def text(value: Any) -> str:
    return value if type(value) is str else "?"


def class_name(cls: type) -> str:
    return f"{text(_TYPE_MODULE.__get__(cls))}.{text(_TYPE_QUALNAME.__get__(cls))}"


def describe(value: Any) -> str:
    """Words for a value: ``module.qualname`` of a function or class, else its type."""
    try:
        if type(value) in SCALARS:
            shown = repr(value)
            return shown if len(shown) <= 80 else shown[:77] + "..."
        found = function(value) if type(value) in _WRAPPERS else None
        if found is not None:
            return f"{text(found.__module__)}.{text(found.__qualname__)}"
        if isinstance(value, type):
            return f"{class_name(value)} (a class)"
        if isinstance(value, enum.Enum):
            return f"{class_name(type(value))}.{text(value._name_)}"
        if type(value) is Unreadable:
            return f"unreadable ({value.error})"
        if type(value) is tuple:
            return "(" + ", ".join(describe(v) for v in value) + ")"
        return f"an instance of {class_name(type(value))}"
    except Exception:  # whatever a hostile object does, the change is still reported
        return "an object"


def change(label: str, old: Any, new: Any, *, inherited: bool = False) -> Problem:
    """The problem of ``label`` going from ``old`` to ``new`` (either may be ABSENT)."""
    file, line = origin(new) if new is not ABSENT else (None, None)
    if new is ABSENT:
        message = f"{label} was removed"
    elif old is ABSENT and inherited:  # an override of what the class inherited
        message = f"{label} was replaced (now {describe(new)})"
    elif old is ABSENT:
        message = f"{label} was added ({describe(new)})"
    elif type(new) is tuple:
        message = f"{label} changed (now {describe(new)})"
    elif type(old) in SCALARS and type(new) in SCALARS:
        message = f"{label} was changed from {describe(old)} to {describe(new)}"
    elif old is None:
        message = f"{label} was set (now {describe(new)})"
    elif new is None:
        message = f"{label} was cleared (was {describe(old)})"
    else:
        message = f"{label} was replaced (now {describe(new)})"
    return Problem("state", message, file, line)


def code_changes(
    label: str, before: dict[str, Any], codes: dict[str, Any], now: dict[str, Any]
) -> list[Problem]:
    """Functions of ``before`` still there in ``now``, but running other code."""
    problems = []
    for name, old in codes.items():
        new = code(now.get(name))
        if now.get(name) is before[name] and new is not old:  # same function, new body
            where = (new.co_filename, new.co_firstlineno)
            problems.append(Problem("state", f"{label}.{name}'s code was replaced", *where))
    return problems
