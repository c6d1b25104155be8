"""BasePlugin: the interface every plugin implements, and its lifecycle state machine.

A subclass writes plain ``async def initialize/start/stop/cleanup``; the class
wraps them (in ``__init_subclass__``) so each call moves ``status`` through the
spec's transitions whether a manager, a test or the plugin itself makes the call.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .context import PluginContext
from .errors import IllegalTransitionError
from .metadata import PluginMetadata
from .status import PluginStatus, check_transition

_S = PluginStatus
LIFECYCLE_STEPS = ("initialize", "start", "stop", "cleanup")

# step -> (states it may start from, state while running or None, state on success)
_STEP_RULES: dict[str, tuple[frozenset[PluginStatus], PluginStatus | None, PluginStatus]] = {
    "initialize": (frozenset({_S.UNLOADED, _S.LOADING}), _S.LOADING, _S.LOADED),
    "start": (frozenset({_S.LOADED, _S.INACTIVE}), None, _S.ACTIVE),
    "stop": (frozenset({_S.ACTIVE}), None, _S.INACTIVE),
    "cleanup": (
        frozenset({_S.LOADED, _S.INACTIVE, _S.ERROR, _S.UNLOADING}),
        _S.UNLOADING,
        _S.UNLOADED,
    ),
}

StepMethod = Callable[["BasePlugin"], Awaitable[Any]]


def process_memory_bytes() -> int:
    """Resident memory of this process in bytes (the plugin shares it with its host)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _wrap_step(step: str, method: StepMethod) -> StepMethod:
    allowed_from, during, on_success = _STEP_RULES[step]

    @functools.wraps(method)
    async def run_step(self: BasePlugin) -> Any:
        # A subclass override calling super().start() is the same step, not a new one.
        if self.__dict__.get("_lifecycle_step") == step:
            return await method(self)
        current = self.status
        if current not in allowed_from:
            raise IllegalTransitionError(
                f"{self.__class__.__name__}.{step}() called while {current.value}"
            )
        if during is not None and current is not during:
            self.status = during
        self.__dict__["_lifecycle_step"] = step
        try:
            result = await method(self)
        except BaseException as exc:
            self._record_failure(f"{step} raised {type(exc).__name__}: {exc}")
            raise
        finally:
            self.__dict__.pop("_lifecycle_step", None)
        if result is True:
            self.status = on_success
            # The SDK's own clock, in its own slot: a plugin's _start_time is its own.
            if step == "start":
                self.__dict__[_STARTED_AT] = time.monotonic()
            elif step == "stop":
                self.__dict__.pop(_STARTED_AT, None)
        else:
            self._record_failure(f"{step} returned {result!r}, expected True")
        return result

    run_step.__aitbc_lifecycle_step__ = step  # type: ignore[attr-defined]
    return run_step


#: Where the SDK keeps the monotonic time of the last successful start (never a name a
#: plugin would choose: the upstream starter kit's plugins keep their own _start_time).
_STARTED_AT = "_aitbc_started_at"


def _foreign_status(value: object) -> str:
    kind = type(value)
    if kind.__name__ == "PluginStatus":  # a look-alike enum of the plugin's own
        return (f"{kind.__module__}.PluginStatus is not aitbc.plugins.PluginStatus: "
                "import it from aitbc.plugins")  # fmt: skip
    return f"status must be a PluginStatus, not {kind.__name__}"


class BasePlugin(ABC):
    """Base interface that all plugins must implement"""

    _status: PluginStatus
    _error_count: int = 0
    last_error: str | None = None

    def __init__(self, context: PluginContext):
        self.context = context
        self.status = PluginStatus.UNLOADED
        self.metadata = self.get_metadata()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for step in LIFECYCLE_STEPS:
            method = cls.__dict__.get(step)
            if (
                method is not None
                and inspect.iscoroutinefunction(method)
                and not getattr(method, "__isabstractmethod__", False)
                and not hasattr(method, "__aitbc_lifecycle_step__")
            ):
                setattr(cls, step, _wrap_step(step, method))

    # -- state -------------------------------------------------------------------------
    @property
    def status(self) -> PluginStatus:
        status: PluginStatus = self.__dict__.get("_status", PluginStatus.UNLOADED)
        return status

    @status.setter
    def status(self, new: PluginStatus) -> None:
        if not isinstance(new, PluginStatus):
            reason = _foreign_status(new)
            # Kept where a host (or certification) finds it even when the plugin's own
            # code swallows the error and just returns False (the starter kit does).
            caller = sys._getframe(1)
            self.__dict__["_status_misuse"] = (reason, caller.f_code.co_filename, caller.f_lineno)
            raise TypeError(reason)
        current = self.__dict__.get("_status")
        if current is None:
            if new is not PluginStatus.UNLOADED:
                raise IllegalTransitionError(
                    f"{self.__class__.__name__}: a new plugin starts UNLOADED, not {new.value}"
                )
        elif current is not new:
            check_transition(current, new, self.__class__.__name__)
        self.__dict__["_status"] = new

    def _record_failure(self, reason: str) -> None:
        """Count a failure and move to ERROR where the state machine allows it."""
        self._error_count = self._error_count + 1
        self.last_error = reason
        if PluginStatus.ERROR is not self.status:
            try:
                check_transition(self.status, PluginStatus.ERROR)
            except IllegalTransitionError:
                return
            self.__dict__["_status"] = PluginStatus.ERROR

    @property
    def error_count(self) -> int:
        return self._error_count

    # -- the spec's interface -----------------------------------------------------------
    @abstractmethod
    def get_metadata(self) -> PluginMetadata:
        """Return plugin metadata"""

    @abstractmethod
    async def initialize(self) -> bool:
        """Initialize the plugin"""

    @abstractmethod
    async def start(self) -> bool:
        """Start the plugin"""

    @abstractmethod
    async def stop(self) -> bool:
        """Stop the plugin"""

    @abstractmethod
    async def cleanup(self) -> bool:
        """Cleanup plugin resources"""

    async def health_check(self) -> dict[str, Any]:
        """Return plugin health status.

        ``uptime`` is seconds since the last successful start (None while not active);
        ``memory_usage`` is the resident memory of the process hosting the plugin, in bytes.
        """
        started = self.__dict__.get(_STARTED_AT)
        active = self.status is PluginStatus.ACTIVE and started is not None
        return {
            "status": self.status.value,
            "uptime": time.monotonic() - started if active and started is not None else None,
            "memory_usage": process_memory_bytes(),
            "error_count": self._error_count,
        }

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:  # noqa: B027
        """Handle system events (optional)"""

    def get_config_schema(self) -> dict[str, Any]:
        """Return configuration schema (optional).

        By default, the ``config_schema.json`` beside the plugin's module, else ``{}``.
        """
        module = sys.modules.get(type(self).__module__)
        module_file = getattr(module, "__file__", None)
        if module_file is None:
            return {}
        schema_path = Path(module_file).with_name("config_schema.json")
        if not schema_path.is_file():
            return {}
        loaded = json.loads(schema_path.read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else {}
